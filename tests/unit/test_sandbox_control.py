"""The sandbox Google's control API and mailbox pages answer loopback clients only: they
show every mailbox and can revoke grants or queue faults. (Flask's test client: no socket.)"""
from __future__ import annotations

import pytest

from sandbox import create_sandbox_app


@pytest.mark.parametrize("path", ["/sandbox/", "/sandbox/api/count", "/sandbox/api/messages"])
def test_the_control_side_refuses_a_client_that_is_not_on_loopback(path):
    client = create_sandbox_app().test_client()
    assert client.get(path, environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code == 403
    assert client.get(path, environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert client.get(path, environ_base={"REMOTE_ADDR": "::1"}).status_code == 200


def test_a_stranger_cannot_revoke_grants_or_queue_faults():
    app = create_sandbox_app()
    client = app.test_client()
    away = {"REMOTE_ADDR": "198.51.100.4"}
    assert client.post("/sandbox/api/faults", json=[{"method": "send", "status": 500}],
                       environ_base=away).status_code == 403
    assert client.post("/sandbox/api/revoke", json={"email": "a@example.com"},
                       environ_base=away).status_code == 403
    assert app.extensions["sandbox_state"].faults == []


def test_google_s_own_endpoints_stay_open_to_any_client():
    client = create_sandbox_app().test_client()
    answer = client.get("/gmail/v1/users/me/profile", environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert answer.status_code == 401  # asked for a token, not refused for its address

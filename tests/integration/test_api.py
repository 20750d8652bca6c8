"""The REST API: validation, error shape, team scoping, cancel / send-now / PATCH."""
from __future__ import annotations

import datetime as dt

import requests
from sqlalchemy import func, select

from scheduler.store.models import ApiToken, Message, MessageEvent


def _count(live, model=Message) -> int:
    with live.db.read() as s:
        return s.scalar(select(func.count()).select_from(model))


def _later(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat()


MESSAGE = {"to": "Grace Hopper <grace@example.org>", "subject": "Hello {{ first_name }}",
           "html": "<p>Hi {{ first_name }}, your code is {{ code }}.</p>",
           "data": {"first_name": "Grace", "code": "A-1"}}


def test_create__returns_the_scheduled_message(live_no_worker):
    api = live_no_worker.user()
    send_at = "2031-01-02T09:00:00+09:00"
    resp = api.post(live_no_worker.url + "/api/v1/messages", json={**MESSAGE, "send_at": send_at})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["status"] == "scheduled"
    assert body["to"] == "Grace Hopper <grace@example.org>"
    assert body["from"] == "ada@example.com"
    assert body["subject"] == "Hello Grace"
    assert dt.datetime.fromisoformat(body["release_at"]) == dt.datetime.fromisoformat(send_at)
    assert body["sent_at"] is None and body["gmail_message_id"] is None
    assert [e["type"] for e in body["events"]] == ["scheduled"]
    again = api.get(f"{live_no_worker.url}/api/v1/messages/{body['id']}").json()
    assert again == body


def test_create__past_time_is_due_now(live_no_worker):
    api = live_no_worker.user()
    before = dt.datetime.now(dt.UTC)
    body = api.post(live_no_worker.url + "/api/v1/messages",
                    json={**MESSAGE, "send_at": "2020-01-01T00:00:00Z"}).json()
    assert dt.datetime.fromisoformat(body["release_at"]) >= before


def _assert_error(resp, status, field=None, code=None):
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["message"]
    if field:
        assert err["field"] == field
    if code:
        assert err["code"] == code


def test_create__bad_input_is_4xx_naming_the_field_and_writes_nothing(live_no_worker):
    live = live_no_worker
    api = live.user()
    url = live.url + "/api/v1/messages"
    cases = [
        ({**MESSAGE, "to": "not an address"}, 422, "to"),
        ({**MESSAGE, "to": "a@b.c\r\nBcc: victim@example.com"}, 422, "to"),
        ({**MESSAGE, "to": "someone@"}, 422, "to"),
        ({**MESSAGE, "send_at": "2031-01-02T09:00:00"}, 422, "send_at"),
        ({**MESSAGE, "send_at": "next tuesday"}, 422, "send_at"),
        ({**MESSAGE, "delay_seconds": -5}, 422, "delay_seconds"),
        ({**MESSAGE, "delay_seconds": 5, "send_at": _later(5)}, 422, None),
        ({**MESSAGE, "subject": ""}, 422, "subject"),
        ({k: v for k, v in MESSAGE.items() if k != "html"}, 422, "html"),
        ({**MESSAGE, "data": [1, 2]}, 422, "data"),
        ({**MESSAGE, "from": "stranger@example.com"}, 422, "from"),
        ({**MESSAGE, "html": "<p>{% if x %}unclosed</p>"}, 422, "html"),
        ([MESSAGE], 422, None),
    ]
    for body, status, field in cases:
        _assert_error(api.post(url, json=body), status, field)
    malformed = api.post(url, data="{not json", headers={"Content-Type": "application/json"})
    _assert_error(malformed, 400, code="malformed")
    assert _count(live) == 0 and _count(live, MessageEvent) == 0


def test_create__template_syntax_error_names_the_line(live_no_worker):
    api = live_no_worker.user()
    resp = api.post(live_no_worker.url + "/api/v1/messages",
                    json={**MESSAGE, "html": "<p>ok</p>\n<p>{{ name }</p>"})
    _assert_error(resp, 422, "html")
    assert "line 2" in resp.json()["error"]["message"]


def test_create__missing_value_without_fallback_holds_and_names_it(live_no_worker):
    api = live_no_worker.user()
    body = api.post(live_no_worker.url + "/api/v1/messages",
                    json={**MESSAGE, "data": {"first_name": "Grace"}}).json()
    assert body["status"] == "held"
    assert "'code'" in body["error"]


def test_create__fallback_fills_the_gap(live_no_worker):
    api = live_no_worker.user()
    body = api.post(live_no_worker.url + "/api/v1/messages", json={
        **MESSAGE, "subject": "Hello {{ first_name | default('there') }}",
        "html": "<p>Hi</p>", "data": {}}).json()
    assert body["status"] == "scheduled" and body["subject"] == "Hello there"


def test_auth__missing_forged_or_revoked_token_is_401(live_no_worker):
    live = live_no_worker
    token = live.user().headers["Authorization"]
    url = live.url + "/api/v1/messages"
    _assert_error(requests.get(url, timeout=10), 401, code="unauthorized")
    _assert_error(requests.get(url, headers={"Authorization": "Bearer mr_forged"}, timeout=10),
                  401)
    _assert_error(requests.get(url, headers={"Authorization": token[:-2] + "xx"}, timeout=10),
                  401)
    with live.db.write() as s:
        s.execute(ApiToken.__table__.update().values(revoked_at=dt.datetime.now(dt.UTC)))
    _assert_error(requests.get(url, headers={"Authorization": token}, timeout=10), 401)


def test_team_scoping__another_teams_message_is_404_everywhere(live_no_worker):
    live = live_no_worker
    ada = live.user("ada@example.com")
    bob = live.user("bob@example.com")
    mid = ada.post(live.url + "/api/v1/messages", json=MESSAGE).json()["id"]
    base = f"{live.url}/api/v1/messages/{mid}"
    _assert_error(bob.get(base), 404, code="not_found")
    _assert_error(bob.post(base + "/cancel"), 404)
    _assert_error(bob.post(base + "/send-now"), 404)
    _assert_error(bob.patch(base, json={"subject": "pwned"}), 404)
    assert bob.get(live.url + "/api/v1/messages").json()["items"] == []
    assert ada.get(base).json()["status"] == "scheduled"
    _assert_error(ada.get(f"{live.url}/api/v1/messages/nope"), 404)


def test_list__paginates_with_a_cursor_and_filters_by_status(live_no_worker):
    live = live_no_worker
    api = live.user()
    ids = [api.post(live.url + "/api/v1/messages", json={**MESSAGE, "send_at": _later(3600)})
           .json()["id"] for _ in range(5)]
    api.post(f"{live.url}/api/v1/messages/{ids[0]}/cancel")
    seen, cursor = [], None
    while True:
        page = api.get(live.url + "/api/v1/messages",
                       params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    cancelled = api.get(live.url + "/api/v1/messages", params={"status": "cancelled"}).json()
    assert [m["id"] for m in cancelled["items"]] == [ids[0]]
    _assert_error(api.get(live.url + "/api/v1/messages", params={"status": "lost"}), 422,
                  "status")
    _assert_error(api.get(live.url + "/api/v1/messages", params={"limit": 501}), 422, "limit")
    _assert_error(api.get(live.url + "/api/v1/messages", params={"cursor": "garbage!"}), 422,
                  "cursor")


def test_cancel__then_again_is_409(live_no_worker):
    live = live_no_worker
    api = live.user()
    mid = api.post(live.url + "/api/v1/messages",
                   json={**MESSAGE, "delay_seconds": 600}).json()["id"]
    first = api.post(f"{live.url}/api/v1/messages/{mid}/cancel")
    assert first.status_code == 200 and first.json()["status"] == "cancelled"
    _assert_error(api.post(f"{live.url}/api/v1/messages/{mid}/cancel"), 409)
    _assert_error(api.post(f"{live.url}/api/v1/messages/{mid}/send-now"), 409)
    events = [e["type"] for e in api.get(f"{live.url}/api/v1/messages/{mid}").json()["events"]]
    assert events == ["scheduled", "cancelled"]


def test_patch__reschedules_and_edits_and_validates(live_no_worker):
    live = live_no_worker
    api = live.user()
    mid = api.post(live.url + "/api/v1/messages",
                   json={**MESSAGE, "delay_seconds": 600}).json()["id"]
    url = f"{live.url}/api/v1/messages/{mid}"
    new_time = "2032-05-01T08:30:00-04:00"
    resp = api.patch(url, json={"send_at": new_time, "subject": "Changed {{ first_name }}"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert dt.datetime.fromisoformat(body["release_at"]) == dt.datetime.fromisoformat(new_time)
    assert body["subject"] == "Changed Grace"
    _assert_error(api.patch(url, json={"send_at": "2032-05-01T08:30:00"}), 422, "send_at")
    _assert_error(api.patch(url, json={"status": "sent"}), 422, "status")
    _assert_error(api.patch(url, data="[", headers={"Content-Type": "application/json"}), 400)
    assert api.get(url).json()["subject"] == "Changed Grace"


def test_unknown_api_route_answers_in_the_error_shape(live_no_worker):
    resp = requests.get(live_no_worker.url + "/api/v1/nothing-here", timeout=10)
    _assert_error(resp, 404, code="not_found")


def test_openapi_document_describes_every_api_route(live_no_worker):
    """Every route is in the generated document, with a schema for its request body,
    its every success answer and its every error status."""
    import re

    from app import create_app
    live = live_no_worker
    doc = requests.get(live.url + "/api/v1/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.1")
    documented = {(re.sub(r"{[^}]+}", "{id}", path), method)
                  for path, ops in doc["paths"].items() for method in ops}
    app = create_app(live.wiring)
    routes = {(re.sub(r"<[^>]+>", "{id}", rule.rule[len("/api/v1"):]), method.lower())
              for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/")
              and not rule.rule.endswith("openapi.json")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes - documented == set()
    assert documented == routes
    schemas = doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                if status != "204":
                    schema = answer["content"]["application/json"]["schema"]
                    refs = re.findall(r'"#/components/schemas/([^"]+)"', str(schema)
                                      .replace("'", '"'))
                    assert all(r in schemas for r in refs), (path, method, status)
            assert "401" in op["responses"] and "422" in op["responses"], (path, method)
            if method in ("post", "put", "patch") and "import" not in path and (
                    "/cancel" not in path and "/send-now" not in path
                    and "rotate" not in path and "/share" not in path
                    and "/resume" not in path and "/warmup" not in path
                    and "/pause" not in path):
                assert "requestBody" in op, (path, method)
    # The limits of the models are in the document.
    message = schemas["NewMessage"]["properties"]
    assert message["delay_seconds"]["anyOf"][0]["maximum"] == 5 * 366 * 24 * 3600
    assert schemas["NewMessage"]["additionalProperties"] is False
    assert "from" in message  # the alias, as clients write it


def test_auth__records_when_a_token_was_last_used(live_no_worker):
    live = live_no_worker
    api = live.user()
    from sqlalchemy import select as sel
    with live.db.read() as s:
        assert s.scalar(sel(ApiToken.last_used_at)) is None
    assert api.get(live.url + "/api/v1/messages").status_code == 200
    with live.db.read() as s:
        used = s.scalar(sel(ApiToken.last_used_at))
    assert used is not None and (dt.datetime.now(dt.UTC) - used).total_seconds() < 10

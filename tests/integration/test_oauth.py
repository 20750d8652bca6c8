"""Sign-in with Google through the real google-auth-oauthlib flow against the sandbox."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests
from sqlalchemy import select

from gmail_client.oauth import SCOPE_COMPOSE, SCOPE_READONLY, SCOPE_SEND
from scheduler.store.models import GmailAccount, User

GMAIL = {SCOPE_SEND, SCOPE_COMPOSE, SCOPE_READONLY}


def database_bytes(live) -> bytes:
    """The SQLite file and its WAL, as they lie on disk."""
    path = live.settings.database_url.removeprefix("sqlite:///")
    data = b""
    for suffix in ("", "-wal"):
        try:
            with open(path + suffix, "rb") as fh:
                data += fh.read()
        except FileNotFoundError:
            pass
    return data


def _accounts(live):
    with live.db.read() as s:
        return s.scalars(select(GmailAccount)).all()


def test_home_without_credentials_explains_setup(serve, tmp_path):
    live = serve(MAILRELEASE_GOOGLE_CREDENTIALS=str(tmp_path / "missing.json"))
    page = requests.get(live.url + "/", timeout=10).text
    assert "OAuth client ID" in page and "Web application" in page
    assert f"{live.url}/auth/callback" in page
    assert "mailrelease run --sandbox" in page
    assert "missing.json" in page


def test_login_redirect__asks_offline_access_with_state_and_pkce(live):
    resp = requests.get(live.url + "/auth/login", allow_redirects=False, timeout=10)
    assert resp.status_code == 302
    url = urlsplit(resp.headers["Location"])
    assert url.geturl().startswith(live.sandbox.url + "/o/oauth2/auth")
    q = parse_qs(url.query)
    assert q["access_type"] == ["offline"]
    assert q["include_granted_scopes"] == ["true"]
    assert q["code_challenge_method"] == ["S256"] and len(q["code_challenge"][0]) >= 43
    assert q["state"][0]
    assert set(q["scope"][0].split()) == {SCOPE_SEND, SCOPE_COMPOSE, SCOPE_READONLY, "openid",
                                          "https://www.googleapis.com/auth/userinfo.email"}
    assert q["redirect_uri"] == [live.url + "/auth/callback"]


def test_sign_in__connects_account_with_tokens_encrypted_at_rest(live):
    page = live.sign_in("Ada@Example.com")
    assert "Connected ada@example.com" in page.text
    (account,) = _accounts(live)
    assert account.email == "ada@example.com" and account.status == "connected"
    assert GMAIL & set(account.scope_list) == {SCOPE_SEND, SCOPE_COMPOSE, SCOPE_READONLY}
    grant = next(iter(live.sandbox.state.grants.values()))
    access = next(iter(live.sandbox.state.access_tokens))
    db_bytes = database_bytes(live)
    assert grant.refresh_token.encode() not in db_bytes
    assert access.encode() not in db_bytes
    assert b"sandbox-" not in db_bytes  # no fragment of either token either
    with live.db.read() as s:
        user = s.scalar(select(User))
        assert user.email == "ada@example.com" and user.personal_team_id == account.team_id


def test_sign_in__forged_state_is_refused_and_connects_nothing(live):
    page = live.sign_in(tamper_state=True)
    assert "state mismatch" in page.text
    assert _accounts(live) == []


def test_sign_in__denied_consent_connects_nothing(live):
    page = live.sign_in(decision="deny")
    assert "access_denied" in page.text
    assert _accounts(live) == []


def test_sign_in__narrower_grant_is_recorded_as_granted(live):
    page = live.sign_in(drop_scopes=(SCOPE_READONLY, SCOPE_COMPOSE))
    assert "Not granted" in page.text and "read access" in page.text
    (account,) = _accounts(live)
    assert GMAIL & set(account.scope_list) == {SCOPE_SEND}  # the address came from the ID token


def test_sign_in__without_send_scope_is_refused(live):
    page = live.sign_in(drop_scopes=(SCOPE_SEND, SCOPE_COMPOSE))
    assert "did not grant permission to send" in page.text
    assert _accounts(live) == []


def test_send_only_mode_asks_for_gmail_send_and_identity_only(serve):
    live = serve(MAILRELEASE_GMAIL_SCOPES="send-only")
    resp = requests.get(live.url + "/auth/login", allow_redirects=False, timeout=10)
    scope = parse_qs(urlsplit(resp.headers["Location"]).query)["scope"][0].split()
    assert set(scope) == {"openid", "https://www.googleapis.com/auth/userinfo.email",
                          SCOPE_SEND}


def test_send_only_sign_in_takes_the_address_from_the_id_token_and_sends(serve):
    """gmail.send alone may not call users.getProfile (at Google, and in the sandbox)."""
    live = serve(MAILRELEASE_GMAIL_SCOPES="send-only")
    page = live.sign_in("Solo@Example.com")
    assert "Connected solo@example.com" in page.text
    (account,) = _accounts(live)
    assert SCOPE_READONLY not in account.scope_list and SCOPE_SEND in account.scope_list
    api = live.api(live.token("solo@example.com"))
    mid = api.post(live.url + "/api/v1/messages", json={
        "to": "x@example.org", "subject": "S", "html": "<p>h</p>"}).json()["id"]
    from tests.helpers import wait_for
    wait_for(lambda: api.get(f"{live.url}/api/v1/messages/{mid}").json()["status"] == "sent")


def test_without_profile_access_or_an_id_token_sign_in_is_refused(live):
    """gmail.send alone may not call users.getProfile, and no ID token names the account."""
    page = live.sign_in(drop_scopes=(SCOPE_READONLY, SCOPE_COMPOSE, "openid",
                                     "https://www.googleapis.com/auth/userinfo.email"))
    assert "sign-in failed" in page.text
    assert _accounts(live) == []


def test_sandbox_token_endpoint__refuses_a_code_without_its_pkce_verifier(live):
    s = requests.Session()
    start = s.get(live.url + "/auth/login", allow_redirects=False, timeout=10)
    consent = s.get(start.headers["Location"], timeout=10)
    from tests.helpers import parse_form
    action, fields = parse_form(consent.text)
    approved = s.post(live.sandbox.url + action, data=fields + [("decision", "allow")],
                      allow_redirects=False, timeout=10)
    code = parse_qs(urlsplit(approved.headers["Location"]).query)["code"][0]
    resp = requests.post(live.sandbox.url + "/token", timeout=10, data={
        "grant_type": "authorization_code", "code": code,
        "redirect_uri": live.url + "/auth/callback",
        "client_id": "test-client.apps.googleusercontent.com", "client_secret": "test-secret"})
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_request"


def test_sign_in_again__reconnects_the_same_account(live):
    live.sign_in()
    with live.db.write() as s:
        s.execute(GmailAccount.__table__.update().values(status="reconnect"))
    live.sign_in()
    (account,) = _accounts(live)
    assert account.status == "connected"

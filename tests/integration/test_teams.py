"""Teams over real HTTP: invitations by Google address, roles, shared accounts, the audit
log, and another team's ids answering 404 in the API and the pages."""
from __future__ import annotations

import re

import pytest
import requests
from sqlalchemy import select

from scheduler.store.db import utcnow
from tests.helpers import wait_for

MESSAGE = {"subject": "Hello", "html": "<p>Hi</p>", "delay_seconds": 3600}


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _team_id(api, live) -> int:
    return api.get(live.url + "/api/v1/team").json()["id"]


def _join(live, owner, email: str, role: str) -> requests.Session:
    """`owner` invites `email` with `role`; that person signs in and joins; returns their
    API session in the owner's team."""
    resp = owner.post(live.url + "/api/v1/team/invitations",
                      json={"email": email, "role": role, "send_email": False})
    assert resp.status_code == 201, resp.text
    browser = requests.Session()
    page = live.sign_in(email, session=browser)
    assert "You joined" in page.text
    return live.api(live.token(email, team_id=_team_id(owner, live)))


def test_an_invitation_is_mailed_and_signing_in_with_that_address_joins(live):
    ada = live.user("ada@example.com")
    team = _team_id(ada, live)
    resp = ada.post(live.url + "/api/v1/team/invitations",
                    json={"email": "Bob@Example.com", "role": "member"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["email"] == "bob@example.com" and resp.json()["message_id"]
    # The invitation goes out from Ada's own Gmail, with a sign-in link for Bob's address.
    mail = wait_for(lambda: [m for m in live.sandbox.sent() if m["to"] == "bob@example.com"])
    assert mail[0]["owner"] == "ada@example.com"
    assert "Join ada@example.com's team" in mail[0]["subject"]
    again = ada.post(live.url + "/api/v1/team/invitations", json={"email": "bob@example.com"})
    assert again.status_code == 409 and again.json()["error"]["field"] == "email"

    bob_browser = requests.Session()
    page = live.sign_in("bob@example.com", session=bob_browser)
    assert "You joined ada@example.com&#39;s team." in page.text
    # Bob lands in Ada's team and can switch to his own.
    assert 'selected>ada@example.com&#39;s team (member)' in page.text
    members = ada.get(live.url + "/api/v1/team/members").json()["items"]
    assert {(m["email"], m["role"]) for m in members} == {("ada@example.com", "owner"),
                                                          ("bob@example.com", "member")}
    assert ada.get(live.url + "/api/v1/team/invitations").json()["items"] == []
    bob = live.api(live.token("bob@example.com", team_id=team))
    template = bob.post(live.url + "/api/v1/templates", json={
        "name": "Shared", "subject": "s", "html": "<p>h</p>"}).json()
    # The team owns what a member makes: Ada sees Bob's template.
    assert ada.get(f"{live.url}/api/v1/templates/{template['id']}").status_code == 200


def test_roles_viewers_read_members_work_owners_manage(live_no_worker):
    live = live_no_worker
    ada = live.user("ada@example.com")
    viewer = _join(live, ada, "vic@example.com", "viewer")
    member = _join(live, ada, "meg@example.com", "member")
    mid = ada.post(live.url + "/api/v1/messages", json={"to": "c@example.org",
                                                        **MESSAGE}).json()["id"]
    assert viewer.get(f"{live.url}/api/v1/messages/{mid}").status_code == 200
    for method, path, body in (("post", "/messages", {"to": "c@example.org", **MESSAGE}),
                               ("post", f"/messages/{mid}/cancel", None),
                               ("post", "/templates", {"name": "x", "subject": "s",
                                                       "html": "h"}),
                               ("post", "/events", {"id": "1", "name": "n",
                                                    "email": "c@example.org"})):
        resp = getattr(viewer, method)(live.url + "/api/v1" + path, json=body)
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "forbidden", path
    # Members do the work but not the team's administration.
    assert member.post(f"{live.url}/api/v1/messages/{mid}/cancel").status_code == 200
    for method, path, body in (("post", "/team/invitations", {"email": "x@example.org"}),
                               ("patch", "/team", {"tracking": False}),
                               ("patch", "/team/members/1", {"role": "viewer"})):
        resp = getattr(member, method)(live.url + "/api/v1" + path, json=body)
        assert resp.status_code == 403, path
        assert "owners" in resp.json()["error"]["message"]
    # A team always keeps an owner.
    members = {m["email"]: m["user_id"] for m in
               ada.get(live.url + "/api/v1/team/members").json()["items"]}
    last = ada.patch(f"{live.url}/api/v1/team/members/{members['ada@example.com']}",
                     json={"role": "member"})
    assert last.status_code == 409 and last.json()["error"]["field"] == "role"
    promoted = ada.patch(f"{live.url}/api/v1/team/members/{members['vic@example.com']}",
                         json={"role": "member"})
    assert promoted.json() == {"user_id": members["vic@example.com"], "role": "member"}
    assert viewer.post(live.url + "/api/v1/messages",
                       json={"to": "c@example.org", **MESSAGE}).status_code == 201
    # Removed: the member's token for this team stops working at once.
    assert ada.delete(f"{live.url}/api/v1/team/members/{members['meg@example.com']}"
                      ).status_code == 204
    assert member.get(live.url + "/api/v1/messages").status_code == 401


def test_viewers_pages_refuse_changes_and_hide_the_webhook_secret(live_no_worker):
    live = live_no_worker
    ada = live.user("ada@example.com")
    ada.post(live.url + "/api/v1/team/invitations", json={"email": "vic@example.com",
                                                          "role": "viewer",
                                                          "send_email": False})
    browser = requests.Session()
    home = live.sign_in("vic@example.com", session=browser)
    assert '<span class="pill">viewer</span>' in home.text
    compose = browser.get(live.url + "/compose").text
    resp = browser.post(live.url + "/compose", data={
        "csrf_token": _csrf(compose), "to": "c@example.org", "subject": "s", "html": "h",
        "when": "now"})
    assert resp.status_code == 403 and "Viewers can read" in resp.text
    settings = browser.get(live.url + "/settings").text
    assert "Viewers do not see the secret" in settings and "Rotate the secret" not in settings
    assert ada.get(live.url + "/api/v1/messages").json()["items"] == []


def test_members_send_from_their_own_account_or_one_the_owner_shares(live_no_worker):
    live = live_no_worker
    ada = live.user("ada@example.com")
    bob = _join(live, ada, "bob@example.com", "member")
    own = bob.post(live.url + "/api/v1/messages", json={"to": "c@example.org", **MESSAGE})
    assert own.json()["from"] == "bob@example.com"
    refused = bob.post(live.url + "/api/v1/messages", json={
        "to": "c@example.org", "from": "ada@example.com", **MESSAGE})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "from"
    ada_account = next(a for a in ada.get(live.url + "/api/v1/accounts").json()["items"]
                       if a["email"] == "ada@example.com")
    # Only an owner shares, and only their own account.
    assert bob.put(f"{live.url}/api/v1/accounts/{ada_account['id']}/share").status_code == 403
    shared = ada.put(f"{live.url}/api/v1/accounts/{ada_account['id']}/share")
    assert shared.json()["shared"] is True
    sent_as_ada = bob.post(live.url + "/api/v1/messages", json={
        "to": "c@example.org", "from": "ada@example.com", **MESSAGE})
    assert sent_as_ada.status_code == 201 and sent_as_ada.json()["from"] == "ada@example.com"
    listed = {a["email"]: a for a in bob.get(live.url + "/api/v1/accounts").json()["items"]}
    assert listed["ada@example.com"]["own"] is False and listed["bob@example.com"]["own"]
    ada.delete(f"{live.url}/api/v1/accounts/{ada_account['id']}/share")
    assert bob.post(live.url + "/api/v1/messages", json={
        "to": "c@example.org", "from": "ada@example.com", **MESSAGE}).status_code == 422


def test_the_audit_log_says_who_changed_what(live_no_worker):
    live = live_no_worker
    ada = live.user("ada@example.com")
    bob = _join(live, ada, "bob@example.com", "member")
    mid = bob.post(live.url + "/api/v1/messages", json={"to": "c@example.org",
                                                        **MESSAGE}).json()["id"]
    ada.post(f"{live.url}/api/v1/messages/{mid}/cancel")
    bob_id = next(m["user_id"] for m in ada.get(live.url + "/api/v1/team/members").json()[
        "items"] if m["email"] == "bob@example.com")
    ada.patch(f"{live.url}/api/v1/team/members/{bob_id}", json={"role": "viewer"})
    refused = bob.post(live.url + "/api/v1/messages", json={"to": "c@example.org", **MESSAGE})
    assert refused.status_code == 403
    entries = ada.get(live.url + "/api/v1/audit").json()["items"]
    seen = [(e["user"], e["action"], e["target"]) for e in entries]
    assert seen[:5] == [
        ("ada@example.com", "changed a member's role", f"user {bob_id}"),
        ("ada@example.com", "cancelled a message", f"message {mid}"),
        ("bob@example.com", "queued a message", f"message {mid}"),
        ("bob@example.com", "joined the team", "user bob@example.com"),
        ("ada@example.com", "invited someone", entries[4]["target"]),
    ]
    assert re.fullmatch(r"invitation \d+", entries[4]["target"])
    assert entries[0]["detail"]["role"] == "viewer" and entries[0]["via"] == "api"
    # The invitation entry names the address; content and secrets are never copied.
    assert entries[4]["detail"]["email"] == "bob@example.com"
    assert all("html" not in (e["detail"] or {}) for e in entries)
    # The refused attempt changed nothing and is not an entry.
    assert len([e for e in entries if e["action"] == "queued a message"]) == 1
    # Another team sees none of it.
    carol = live.user("carol@example.com")
    assert carol.get(live.url + "/api/v1/audit").json()["items"] == []


def test_a_change_that_writes_no_audit_entry_fails_loudly_and_previews_write_none(
        live_no_worker):
    """Entries are written by the domain operations; under the self-check a route that
    changed something without one cannot pass unnoticed (tests/integration/test_roles.py
    walks every route and form with it on)."""
    from flask import g

    from app import create_app
    from scheduler.content import templates
    from scheduler.store.models import Team, User

    live = live_no_worker
    browser = live.browser()
    page = browser.get(live.url + "/templates/new").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    shown = browser.post(live.url + "/templates/live-preview", data={
        "csrf_token": csrf, "subject": "Hi {{ name }}", "html": "<p>x</p>",
        "preview_data": '{"name": "Grace"}'})
    assert shown.json()["subject"] == "Hi Grace"
    ada = live.user("ada@example.com")
    assert ada.post(live.url + "/api/v1/templates/preview", json={
        "subject": "s", "html": "<p>h</p>"}).status_code == 200
    entries = ada.get(live.url + "/api/v1/audit").json()["items"]
    assert [e["action"] for e in entries] == []  # signing in and previews change nothing

    app = create_app(live.wiring)
    with live.db.read() as s:
        team_id = s.scalar(select(Team.id))
        user_id = s.scalar(select(User.id))

    def sneaky():  # a change made past the domain's audited operations
        g.team_id, g.user_id = team_id, user_id
        with live.db.write() as s:
            templates.store_template(s, team_id=team_id, user_id=user_id, now=utcnow(),
                                     values={"name": "quiet", "subject": "s", "html": "h"})
        return "", 201
    app.add_url_rule("/api/v1/sneaky", "api.sneaky", sneaky, methods=["POST"])
    app.testing = True
    with pytest.raises(AssertionError, match="wrote no audit entry"):
        app.test_client().post("/api/v1/sneaky")


def test_another_teams_ids_are_404_in_the_api_and_the_pages(live_no_worker):
    live = live_no_worker
    ada = live.user("ada@example.com")
    mid = ada.post(live.url + "/api/v1/messages", json={"to": "c@example.org",
                                                        **MESSAGE}).json()["id"]
    tid = ada.post(live.url + "/api/v1/templates", json={
        "name": "T", "subject": "s", "html": "<p>h</p>"}).json()["id"]
    cid = ada.post(live.url + "/api/v1/contacts", json={"email": "c@example.org"}).json()
    cid = ada.get(live.url + "/api/v1/contacts").json()["items"][0]["id"]
    rid = ada.post(live.url + "/api/v1/rules", json={"name": "r", "event": "e",
                                                     "template_id": tid}).json()["id"]
    camp = ada.post(live.url + "/api/v1/campaigns", json={"template_id": tid,
                                                          "send_at": "2031-01-01T00:00:00Z"})
    camp_id = camp.json()["id"]
    sid = ada.post(live.url + "/api/v1/schedules", json={
        "cron": "0 9 * * mon", "template_id": tid, "to": "c@example.org"}).json()["id"]
    inv = ada.post(live.url + "/api/v1/team/invitations",
                   json={"email": "z@example.org", "send_email": False}).json()["id"]
    account = ada.get(live.url + "/api/v1/accounts").json()["items"][0]["id"]
    ada_user = ada.get(live.url + "/api/v1/team/members").json()["items"][0]["user_id"]

    mallory = live.user("mallory@example.com")
    probes = [("get", f"/messages/{mid}"), ("post", f"/messages/{mid}/cancel"),
              ("post", f"/messages/{mid}/send-now"), ("patch", f"/messages/{mid}"),
              ("get", f"/templates/{tid}"), ("put", f"/templates/{tid}"),
              ("delete", f"/templates/{tid}"), ("post", f"/templates/{tid}/preview"),
              ("get", f"/contacts/{cid}"), ("get", f"/rules/{rid}"),
              ("delete", f"/rules/{rid}"), ("get", f"/campaigns/{camp_id}"),
              ("get", f"/campaigns/{camp_id}/stats"), ("get", f"/schedules/{sid}"),
              ("delete", f"/schedules/{sid}"), ("get", f"/stats?campaign_id={camp_id}"),
              ("delete", f"/team/invitations/{inv}"),
              ("patch", f"/team/members/{ada_user}"), ("delete", f"/team/members/{ada_user}"),
              ("put", f"/accounts/{account}/share")]
    for method, path in probes:
        # A body each route takes, so that the answer is about the id.
        body = {"role": "viewer"} if "/members/" in path else {
            "subject": "x"} if method in ("put", "patch") else {}
        resp = getattr(mallory, method)(live.url + "/api/v1" + path, json=body)
        if path.startswith("/stats"):
            # Statistics filtered by another team's campaign count nothing of it.
            assert resp.json()["totals"]["sent"] == 0 and resp.json()["campaigns"] == []
            continue
        if path.startswith(("/team/", "/accounts/")):
            # Owner-only routes: Mallory owns her own team, so the answer is about the id.
            assert resp.status_code == 404, (path, resp.text)
            continue
        assert resp.status_code == 404, (path, resp.status_code, resp.text)
    # And the pages.
    browser = requests.Session()
    live.sign_in("mallory@example.com", session=browser)
    for path in (f"/messages/{mid}", f"/templates/{tid}", f"/replies/{account}/abc"):
        assert browser.get(live.url + path).status_code == 404, path
    page = browser.get(live.url + "/accounts").text
    for path in (f"/messages/{mid}/cancel", f"/messages/{mid}/edit",
                 f"/accounts/{account}/disconnect",
                 f"/accounts/{account}/share", f"/rules/{rid}/delete",
                 f"/team/invitations/{inv}/revoke", f"/team/members/{ada_user}/remove"):
        resp = browser.post(live.url + path, data={"csrf_token": _csrf(page)})
        assert resp.status_code == 404 or "No such" in resp.text or "no message" in resp.text, \
            (path, resp.status_code)
    # Nothing of Ada's changed.
    assert ada.get(f"{live.url}/api/v1/messages/{mid}").json()["status"] == "scheduled"
    assert ada.get(f"{live.url}/api/v1/rules/{rid}").status_code == 200
    assert len(ada.get(live.url + "/api/v1/team/invitations").json()["items"]) == 1


def test_a_removed_member_takes_their_accounts_and_what_was_queued_from_them_waits(
        live_no_worker):
    live = live_no_worker
    ada = live.user("ada@example.com")
    bob = _join(live, ada, "bob@example.com", "owner")
    bob_account = next(a for a in bob.get(live.url + "/api/v1/accounts").json()["items"]
                       if a["email"] == "bob@example.com")
    assert bob.put(f"{live.url}/api/v1/accounts/{bob_account['id']}/share").status_code == 200
    later = {"delay_seconds": 86400}
    by_ada = ada.post(live.url + "/api/v1/messages", json={
        "to": "c@example.org", "from": "bob@example.com", **MESSAGE, **later}).json()
    by_bob = bob.post(live.url + "/api/v1/messages", json={
        "to": "d@example.org", **MESSAGE, **later}).json()
    assert by_ada["from"] == by_bob["from"] == "bob@example.com"
    bob_id = next(m["user_id"] for m in ada.get(live.url + "/api/v1/team/members").json()[
        "items"] if m["email"] == "bob@example.com")
    assert ada.delete(f"{live.url}/api/v1/team/members/{bob_id}").status_code in (200, 204)
    for mid in (by_ada["id"], by_bob["id"]):
        held = ada.get(f"{live.url}/api/v1/messages/{mid}").json()
        assert held["status"] == "held" and held["hold_kind"] == "account_gone"
    assert ada.post(f"{live.url}/api/v1/messages/{by_ada['id']}/send-now").status_code == 422
    assert ada.post(live.url + "/api/v1/messages", json={
        "to": "c@example.org", "from": "bob@example.com", **MESSAGE}).status_code == 422
    assert "bob@example.com" not in {
        a["email"] for a in ada.get(live.url + "/api/v1/accounts").json()["items"]}
    moved = ada.patch(f"{live.url}/api/v1/messages/{by_ada['id']}",
                      json={"from": "ada@example.com"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "scheduled" and moved.json()["from"] == "ada@example.com"


def test_a_viewer_reads_no_webhook_secret(live_no_worker):
    live = live_no_worker
    ada = live.user("ada@example.com")
    vic = _join(live, ada, "vic@example.com", "viewer")
    resp = vic.get(live.url + "/api/v1/webhook-secret")
    assert resp.status_code == 403 and "secret" not in resp.json()
    assert ada.get(live.url + "/api/v1/webhook-secret").json()["secret"].startswith("whsec_")

"""Roles as a table: every API route × no credentials, another team's owner, a viewer, a
member and the owner, with the answers each must get. The refusals are the point: nobody
gets what their role does not allow, and another team's ids are 404s."""
from __future__ import annotations

import requests

from tests.test_teams import _join

OWNER_ONLY = {("PATCH", "/team"), ("PATCH", "/team/members/{user}"),
              ("DELETE", "/team/members/{user}"), ("POST", "/team/invitations"),
              ("DELETE", "/team/invitations/{invitation}"),
              ("PUT", "/accounts/{account}/share"), ("DELETE", "/accounts/{account}/share")}
# Reads that a viewer may not make (whoever holds the secret can queue mail).
NOT_FOR_VIEWERS = {("GET", "/webhook-secret")}
# Routes with another way in, or none to guard.
OWN_AUTH = {("POST", "/events"), ("GET", "/openapi.json")}


def _routes(live) -> list[tuple[str, str]]:
    from app import create_app
    app = create_app(live.settings, db=live.db)
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = rule.rule.removeprefix("/api/v1")
        for name in rule.arguments:
            path = path.replace(f"<{name}>", "{" + name.removesuffix("_id") + "}")
        out += [(m, path) for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return sorted(set(out))


def test_every_route_answers_each_role_as_the_table_says(live_no_worker):
    live = live_no_worker
    ada = live.user("ada@example.com")
    bob = _join(live, ada, "bob@example.com", "member")
    vic = _join(live, ada, "vic@example.com", "viewer")
    eve = live.user("eve@example.com")  # the owner of another team
    nobody = requests.Session()
    template = ada.post(live.url + "/api/v1/templates", json={
        "name": "t", "subject": "S", "html": "h"}).json()["id"]
    ids = {
        "template": template,
        "contact": ada.post(live.url + "/api/v1/contacts", json={
            "email": "c@example.org"}).json()["items"][0]["id"],
        "message": ada.post(live.url + "/api/v1/messages", json={
            "to": "c@example.org", "template_id": template,
            "delay_seconds": 86400}).json()["id"],
        "rule": ada.post(live.url + "/api/v1/rules", json={
            "event": "e", "template_id": template}).json()["id"],
        "schedule": ada.post(live.url + "/api/v1/schedules", json={
            "cron": "0 9 * * *", "template_id": template, "to": "c@example.org"}).json()["id"],
        "campaign": ada.post(live.url + "/api/v1/campaigns", json={
            "template_id": template, "delay_seconds": 86400}).json()["id"],
        "invitation": ada.post(live.url + "/api/v1/team/invitations", json={
            "email": "new@example.com", "role": "member",
            "send_email": False}).json()["id"],
        "account": next(a["id"] for a in ada.get(live.url + "/api/v1/accounts").json()[
            "items"] if a["email"] == "ada@example.com"),
        "user": next(m["user_id"] for m in ada.get(live.url + "/api/v1/team/members").json()[
            "items"] if m["email"] == "bob@example.com"),
        "thread": live.sandbox.deliver("ada@example.com", (
            "From: g@example.org\r\nTo: ada@example.com\r\nSubject: Q\r\n"
            "Message-ID: <q@example.org>\r\n\r\nHi\r\n"))["threadId"],
    }
    routes = _routes(live)
    assert len(routes) >= 50
    wrong = []

    def call(who, method, path):
        url = live.url + "/api/v1" + path.format(**ids)
        return who.request(method, url, json={} if method != "GET" else None, timeout=30)

    for method, path in routes:  # the owner reads everything (before members change it)
        if method == "GET" and (method, path) not in OWN_AUTH:
            got = call(ada, method, path).status_code
            if got != 200:
                wrong.append(("owner", method, path, got, [200]))

    for method, path in routes:
        if (method, path) in OWN_AUTH:
            continue
        key = (method, path)
        reads = method == "GET"
        expected = {"nobody": {401},
                    "viewer": ({403} if key in NOT_FOR_VIEWERS or not reads else None),
                    "member": {403} if key in OWNER_ONLY else None}
        if "{" in path:  # another team's ids are not there at all
            expected["outsider"] = {404}
        for role, who in (("nobody", nobody), ("viewer", vic), ("member", bob),
                          ("outsider", eve)):
            got = call(who, method, path).status_code
            want = expected.get(role)
            if want is None:
                if got in (401, 403) or got >= 500:
                    wrong.append((role, method, path, got, "allowed"))
            elif got not in want:
                wrong.append((role, method, path, got, sorted(want)))
    assert wrong == [], "\n".join(map(str, wrong))

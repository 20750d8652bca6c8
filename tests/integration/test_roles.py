"""Roles as a table: every API route × no credentials, another team's owner, a viewer, a
member and the owner, with the answers each must get. The refusals are the point: nobody
gets what their role does not allow, and another team's ids are 404s."""
from __future__ import annotations

import requests

from tests.integration.test_teams import _join

OWNER_ONLY = {("PATCH", "/team"), ("PATCH", "/team/members/{user}"),
              ("DELETE", "/team/members/{user}"), ("POST", "/team/invitations"),
              ("DELETE", "/team/invitations/{invitation}"),
              ("PUT", "/accounts/{account}/share"), ("DELETE", "/accounts/{account}/share")}
# Reads that a viewer may not make (whoever holds the secret can queue mail).
NOT_FOR_VIEWERS = {("GET", "/webhook-secret")}
# Routes with another way in, or none to guard.
OWN_AUTH = {("POST", "/events"), ("POST", "/events/batch"), ("GET", "/openapi.json")}


def _routes(live) -> list[tuple[str, str]]:
    from app import create_app
    app = create_app(live.wiring)
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
        "segment": ada.post(live.url + "/api/v1/segments", json={
            "name": "s", "conditions": []}).json()["id"],
        "campaign": ada.post(live.url + "/api/v1/campaigns", json={
            "template_id": template, "delay_seconds": 86400}).json()["id"],
        "invitation": ada.post(live.url + "/api/v1/team/invitations", json={
            "email": "new@example.com", "role": "member",
            "send_email": False}).json()["id"],
        "account": next(a["id"] for a in ada.get(live.url + "/api/v1/accounts").json()[
            "items"] if a["email"] == "ada@example.com"),
        "user": next(m["user_id"] for m in ada.get(live.url + "/api/v1/team/members").json()[
            "items"] if m["email"] == "bob@example.com"),
        "event": ada.post(live.url + "/api/v1/events", json={
            "id": "role-check", "name": "e", "email": "c@example.org"}).json()["event_id"],
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
            resp = call(who, method, path)
            got = resp.status_code
            want = expected.get(role)
            if role == "outsider" and got == 422:
                # The body is checked before any lookup: an outsider learns nothing when
                # an id that exists nowhere gets the same answer.
                nowhere = who.request(method, live.url + "/api/v1" + path.format(
                    **dict.fromkeys(ids, 2 ** 31 - 1)), json={}, timeout=30)
                if (nowhere.status_code, nowhere.json()) == (422, resp.json()):
                    continue
            if want is None:
                if got in (401, 403) or got >= 500:
                    wrong.append((role, method, path, got, "allowed"))
            elif got not in want:
                wrong.append((role, method, path, got, sorted(want)))
    assert wrong == [], "\n".join(map(str, wrong))


def _csrf(browser, url) -> str:
    import re
    return re.search(r'name="csrf_token" value="([^"]+)"', browser.get(url).text).group(1)


def test_every_form_refuses_a_viewer_and_a_visitor_and_never_fails_its_owner(
        live_no_worker):
    """Each page's POST route: a viewer of the team gets 403 (previews excepted), someone
    without a session is turned away, another team's owner gets 404 for this team's ids,
    and the owner posting an empty or nonsense form gets a page or an error that names the
    field, never a 500."""
    from app import create_app
    live = live_no_worker
    app = create_app(live.wiring)
    ada = live.user("ada@example.com")
    ada.post(live.url + "/api/v1/team/invitations", json={
        "email": "vic@example.com", "role": "viewer", "send_email": False})
    viewer = requests.Session()
    assert "You joined" in live.sign_in("vic@example.com", session=viewer).text
    owner = requests.Session()
    live.sign_in("ada@example.com", session=owner)
    live.user("eve@example.com")  # the owner of another team
    outsider = requests.Session()
    live.sign_in("eve@example.com", session=outsider)
    template = ada.post(live.url + "/api/v1/templates", json={
        "name": "t", "subject": "S", "html": "h"}).json()["id"]
    values = {
        "message_id": ada.post(live.url + "/api/v1/messages", json={
            "to": "c@example.org", "template_id": template,
            "delay_seconds": 86400}).json()["id"],
        "contact_id": ada.post(live.url + "/api/v1/contacts", json={
            "email": "c@example.org"}).json()["items"][0]["id"],
        "template_id": template,
        "rule_id": ada.post(live.url + "/api/v1/rules", json={
            "event": "e", "template_id": template}).json()["id"],
        "account_id": ada.get(live.url + "/api/v1/accounts").json()["items"][0]["id"],
        "schedule_id": ada.post(live.url + "/api/v1/schedules", json={
            "cron": "0 9 * * *", "template_id": template, "to": "c@example.org"}).json()["id"],
        "segment_id": ada.post(live.url + "/api/v1/segments", json={
            "name": "s", "conditions": []}).json()["id"],
        "user_id": 999, "invitation_id": 999, "thread_id": "nothread",
    }
    values.update(kind="rule", row_id=values["rule_id"])  # resuming what the guard paused
    rules = [r for r in app.url_map.iter_rules()
             if r.endpoint.startswith("ui.") and "POST" in r.methods]
    assert len(rules) >= 20
    tokens = {"viewer": _csrf(viewer, live.url + "/"), "owner": _csrf(owner, live.url + "/"),
              "outsider": _csrf(outsider, live.url + "/")}
    nonsense = {"to": "a@x, b@y", "template_id": "abc", "in_minutes": "nan", "when": "in",
                "cron": "x", "data": "[[[", "role": "king", "email": "nope", "name": "\x00",
                "token_id": "³", "daily_cap": "-1", "next": "//evil.example", "file": ""}
    wrong = []
    for rule in sorted(rules, key=lambda r: r.rule):
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<int:{name}>", str(values[name])).replace(
                f"<{name}>", str(values[name]))
        preview = getattr(app.view_functions[rule.endpoint], "viewer_ok", False)
        got = viewer.post(live.url + path, data={"csrf_token": tokens["viewer"]},
                          allow_redirects=False).status_code
        if (got >= 500) if preview else (got != 403):
            wrong.append(("viewer", path, got))
        got = requests.post(live.url + path, data={}, allow_redirects=False).status_code
        if got not in (302, 400):  # sent to sign in, or refused for want of a CSRF token
            wrong.append(("nobody", path, got))
        if rule.arguments - set(rule.defaults or ()):  # this team's ids: not there at all
            # for another team
            resp = outsider.post(live.url + path, data={"csrf_token": tokens["outsider"]},
                                 allow_redirects=False)
            if resp.status_code != 404:
                # A form checked before any lookup may answer first, but then exactly as
                # for ids that exist nowhere: nothing is learnt about this team's.
                nowhere = rule.rule
                for name in rule.arguments:
                    nowhere = nowhere.replace(f"<int:{name}>", str(2 ** 31 - 1)).replace(
                        f"<{name}>", "x" + str(2 ** 31 - 1))
                other = outsider.post(live.url + nowhere, allow_redirects=False,
                                      data={"csrf_token": tokens["outsider"]})
                if (other.status_code, other.text) != (resp.status_code, resp.text):
                    wrong.append(("outsider", path, resp.status_code))
        for form in ({}, nonsense):
            got = owner.post(live.url + path, data={"csrf_token": tokens["owner"], **form},
                             allow_redirects=False).status_code
            if got >= 500:
                wrong.append(("owner", path, got, sorted(form)))
    assert wrong == [], "\n".join(map(str, wrong))

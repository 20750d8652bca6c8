"""The Gmail add-on over Google's HTTP runtime: the sandbox's add-on host signs event
objects as Google does (its key, the add-on's service account) and the app answers cards,
each checked against the Card v2 schema in google-api-python-client's Chat discovery
document."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import requests
from sqlalchemy import select, update

from sandbox.cards import answer_problems
from scheduler.store.db import utcnow
from scheduler.store.models import Contact, Message
from tests.helpers import wait_for

CUSTOMER = "grace@example.org"
MAIL = ("From: Grace Hopper <grace@example.org>\r\nTo: ada@example.com\r\n"
        "Subject: Where is my order?\r\nMessage-ID: <q1@example.org>\r\n\r\nHello!\r\n")


def call(live, path: str, owner: str = "ada@example.com", token: str = "valid",
         **fields) -> requests.Response:
    """Post to one of the add-on's endpoints as Gmail would."""
    url = live.settings.public_url + path
    signed = requests.post(f"{live.sandbox.url}/sandbox/api/addon/event", timeout=10,
                           json={"url": url, "owner": owner, "token": token, **fields}).json()
    return requests.post(url, json=signed["event"], timeout=30,
                         headers={"Authorization": signed["authorization"]})


def answer(live, path: str, **fields) -> dict:
    """A valid answer's JSON (every card checked against the Card v2 schema)."""
    resp = call(live, path, **fields)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert answer_problems(body) == [], json.dumps(body)[:2000]
    return body


def card_of(body: dict) -> dict:
    action = body.get("renderActions", body)["action"]
    shown = [n.get("pushCard") or n.get("updateCard") for n in action["navigations"]
             if "pushCard" in n or "updateCard" in n]
    return shown[-1]


def texts(card: dict) -> str:
    """Everything a card says, as one string."""
    return json.dumps(card, ensure_ascii=False)


def notice(body: dict) -> str:
    return body["renderActions"]["action"].get("notification", {}).get("text", "")


def button_action(card: dict, label: str) -> dict:
    """The action of the button labelled `label`: (path, parameters)."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("text") == label and "onClick" in node:
                found.append(node["onClick"]["action"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(card)
    assert found, f"no button {label!r} in {texts(card)[:500]}"
    action = found[0]
    return {"path": action["function"].split("127.0.0.1", 1)[1].split("/", 1)[1],
            "parameters": {p["key"]: p["value"] for p in action.get("parameters", [])}}


def press(live, card: dict, label: str, **fields) -> dict:
    found = button_action(card, label)
    return answer(live, "/" + found["path"], parameters=found["parameters"], **fields)


@pytest.mark.parametrize("token", ["expired", "wrong-audience", "forged", "other-account"])
def test_a_token_that_is_not_google_s_for_this_endpoint_is_401_and_shows_nothing(live, api,
                                                                               token):
    api.post(f"{live.url}/api/v1/messages", json={
        "to": "x@example.org", "subject": "Secret plans", "html": "<p>h</p>",
        "send_at": "2031-01-01T00:00:00Z"})
    for path in ("/addon/homepage", "/addon/message", "/addon/compose",
                 "/addon/action/cancel"):
        resp = call(live, path, token=token)
        assert resp.status_code == 401, (path, resp.text)
        assert "Secret plans" not in resp.text
    bare = requests.post(live.url + "/addon/homepage", json={}, timeout=10)
    assert bare.status_code == 401


def test_without_the_service_account_configured_the_add_on_refuses(serve):
    live = serve(with_worker=False, MAILRELEASE_ADDON_SERVICE_ACCOUNT="")
    assert call(live, "/addon/homepage").status_code == 403


def test_a_google_user_unknown_here_gets_how_to_connect_and_no_data(live, api):
    api.post(f"{live.url}/api/v1/messages", json={
        "to": "x@example.org", "subject": "Secret plans", "html": "<p>h</p>",
        "send_at": "2031-01-01T00:00:00Z"})
    card = card_of(answer(live, "/addon/homepage", owner="stranger@example.net"))
    assert card["header"]["title"] == "Connect mailrelease"
    assert "Secret plans" not in texts(card)
    (sign_in,) = re.findall(r'"url": "([^"]+)"', texts(card))
    assert requests.get(sign_in, allow_redirects=False, timeout=10).status_code == 302
    body = answer(live, "/addon/action/cancel", owner="stranger@example.net")
    assert card_of(body)["header"]["title"] == "Connect mailrelease"


def _queue(live, api, **fields) -> dict:
    resp = api.post(f"{live.url}/api/v1/messages", json={"to": "r@example.org",
                                                         "html": "<p>Hi</p>", **fields})
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_the_homepage_shows_what_goes_next_what_is_held_and_why_and_today_s_sends(live, api):
    later = _queue(live, api, subject="Quarterly report", send_at="2031-01-01T09:00:00Z")
    held = _queue(live, api, subject="Hello {{ first_name }}")
    sent = _queue(live, api, subject="Already gone")
    wait_for(lambda: api.get(f"{live.url}/api/v1/messages/{sent['id']}").json()["status"]
             == "sent")
    card = card_of(answer(live, "/addon/homepage", zone="Europe/Paris"))
    shown = texts(card)
    assert "Quarterly report" in shown and "Wed 01 Jan 2031, 10:00 CET" in shown
    assert "Hello {{ first_name }}" in shown and "no value for 'first_name'" in shown
    assert "1 of" in shown and "ada@example.com" in shown
    # Its links open pages of the web app that exist.
    links = [u for u in re.findall(r'"url": "([^"]+)"', shown) if u.startswith(live.url)]
    assert len(links) == 3
    for link in links:
        assert live.browser().get(link, timeout=10).status_code == 200, link
    # Send now on the held one says why it cannot; cancel on the next one cancels it.
    body = press(live, card, "Send now", zone="Europe/Paris")
    assert "first_name" in notice(body)
    body = press(live, card, "Cancel", zone="Europe/Paris")
    assert notice(body) == "Cancelled."
    assert api.get(f"{live.url}/api/v1/messages/{later['id']}").json()["status"] == \
        "cancelled"
    assert "Quarterly report" not in texts(card_of(body))
    assert held["status"] == "held"


def test_a_user_sees_and_changes_only_their_own_team_s_mail(live, api):
    theirs = live.user("grace@example.org")
    other = _queue(live, theirs, subject="Grace's launch", send_at="2031-01-01T09:00:00Z")
    card = card_of(answer(live, "/addon/homepage"))
    assert "Grace's launch" not in texts(card)
    body = answer(live, "/addon/action/cancel", parameters={"id": other["id"]})
    assert "Cancelled" not in notice(body)
    assert theirs.get(f"{live.url}/api/v1/messages/{other['id']}").json()["status"] == \
        "scheduled"
    assert "Grace's launch" in texts(card_of(answer(live, "/addon/homepage",
                                                    owner="grace@example.org")))


def _open_mail(live, api) -> tuple[str, str]:
    """Grace wrote to ada; ada knows her as a contact and sent her mail before."""
    api.post(f"{live.url}/api/v1/contacts", json=[{
        "email": CUSTOMER, "name": "Grace Hopper", "timezone": "America/New_York",
        "attributes": {"plan": "pro"}}])
    before = _queue(live, api, to=CUSTOMER, subject="Welcome aboard")
    wait_for(lambda: api.get(f"{live.url}/api/v1/messages/{before['id']}").json()
             ["status"] == "sent")
    got = live.sandbox.deliver("ada@example.com", MAIL)
    return got["id"], got["threadId"]


def test_beside_an_open_message_the_contact_what_we_sent_and_what_is_pending(live, api):
    message_id, thread_id = _open_mail(live, api)
    card = card_of(answer(live, "/addon/message", message_id=message_id))
    shown = texts(card)
    assert card["header"]["title"] == "Grace Hopper"
    assert card["header"]["subtitle"] == "Where is my order?"
    assert "America/New_York" in shown and "pro" in shown and "subscribed" in shown
    assert "Welcome aboard" in shown
    assert "Nothing is waiting to go in this thread" in shown


def test_the_open_message_is_read_only_with_gmail_s_token_for_it(live, api):
    message_id, _ = _open_mail(live, api)
    other = live.sandbox.deliver("ada@example.com", MAIL.replace("<q1@", "<q2@"))["id"]
    url = live.settings.public_url + "/addon/message"
    signed = requests.post(f"{live.sandbox.url}/sandbox/api/addon/event", timeout=10, json={
        "url": url, "owner": "ada@example.com", "message_id": other}).json()
    # Gmail's token is for the other message: the add-on may not read this one.
    signed["event"]["gmail"]["messageId"] = message_id
    resp = requests.post(url, json=signed["event"], timeout=30,
                         headers={"Authorization": signed["authorization"]})
    assert resp.status_code == 200 and answer_problems(resp.json()) == []
    assert "Gmail would not show the message" in resp.text
    assert "Grace Hopper" not in resp.text


def _saved_reply(live, api, html="<p>Hi {{ name }}, it ships today.</p>") -> int:
    resp = api.post(f"{live.url}/api/v1/templates", json={"name": "Shipping", "kind": "reply",
                                                          "html": html})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def test_reply_later_and_a_follow_up_that_a_reply_stops(live, api):
    message_id, thread_id = _open_mail(live, api)
    template_id = _saved_reply(live, api)
    card = card_of(answer(live, "/addon/message", message_id=message_id))
    form = card_of(press(live, card, "Reply later", message_id=message_id))
    assert [w for s in form["sections"] for w in s["widgets"] if "dateTimePicker" in w]
    at = dt.datetime(2031, 3, 4, 9, 30, tzinfo=dt.UTC)
    body = press(live, form, "Schedule the reply", message_id=message_id, inputs={
        "template_id": str(template_id), "when": {"ms": int(at.timestamp() * 1000)},
        "how": "mine"})
    assert "Reply scheduled: Tue 04 Mar 2031, 09:30 UTC" in notice(body), body
    shown = texts(card_of(body))
    assert "Shipping" not in shown and "Re: Where is my order?" in shown
    with live.db.read() as s:
        reply = s.scalar(select(Message).where(Message.reply_thread_id == thread_id))
        assert reply.release_at == at and reply.follow_unless is None
    # A follow-up in 2 days, unless they answer in the thread.
    form = card_of(press(live, card, "Follow up if no reply", message_id=message_id))
    body = press(live, form, "Schedule the follow-up", message_id=message_id,
                 inputs={"days": "2", "template_id": str(template_id)})
    assert "unless they reply" in notice(body)
    with live.db.read() as s:
        follow = s.scalar(select(Message).where(Message.follow_unless == "reply"))
        assert abs((follow.release_at - utcnow()).total_seconds() - 2 * 86400) < 60
    assert "Stop all in this thread" in texts(card_of(body))
    # Grace answers in the thread; when the follow-up falls due, the last look stops it.
    live.sandbox.deliver("ada@example.com", "From: Grace Hopper <grace@example.org>\r\n"
                         "To: ada@example.com\r\nSubject: Re: Where is my order?\r\n"
                         "In-Reply-To: <q1@example.org>\r\n\r\nFound it, thanks!\r\n")
    with live.db.write() as s:
        s.execute(update(Message).where(Message.id == follow.id).values(release_at=utcnow()))
    live.worker.wake()
    ended = wait_for(lambda: (m := api.get(f"{live.url}/api/v1/messages/{follow.id}").json())
                     ["status"] == "cancelled" and m, 20)
    assert "grace@example.org replied" in ended["error"]
    # Stop all: the scheduled reply goes too.
    card = card_of(answer(live, "/addon/message", message_id=message_id))
    body = press(live, card, "Stop", message_id=message_id)
    assert notice(body) == "Cancelled."
    with live.db.read() as s:
        assert s.get(Message, reply.id).status == "cancelled"


def test_unsubscribe_add_to_a_list_and_to_a_campaign_once(live, api):
    message_id, _ = _open_mail(live, api)
    template = api.post(f"{live.url}/api/v1/templates", json={
        "name": "Spring", "subject": "Spring offer", "html": "<p>Hi</p>"}).json()
    api.post(f"{live.url}/api/v1/contacts", json=[{"email": "someone@example.org"}])
    started = api.post(f"{live.url}/api/v1/campaigns", json={
        "template_id": template["id"], "audience": {"filter": [
            {"field": "contact.email", "op": "equals", "value": "someone@example.org"}]}})
    assert started.status_code == 201, started.text
    card = card_of(answer(live, "/addon/message", message_id=message_id))
    form = card_of(press(live, card, "Add to a campaign or list", message_id=message_id))
    body = press(live, form, "Add to the list", message_id=message_id,
                 inputs={"attribute": "segment", "value": "vip"})
    assert "segment = vip" in notice(body)
    body = press(live, form, "Add to the campaign", message_id=message_id,
                 inputs={"campaign_id": button_campaign(form)})
    assert "1 message queued" in notice(body)
    again = press(live, form, "Add to the campaign", message_id=message_id,
                  inputs={"campaign_id": button_campaign(form)})
    assert "already in this campaign" in notice(again)
    with live.db.read() as s:
        contact = s.scalar(select(Contact).where(Contact.email == CUSTOMER))
        assert contact.attributes["segment"] == "vip" and contact.attributes["plan"] == "pro"
        assert len(s.scalars(select(Message).where(Message.campaign_id.is_not(None),
                                                    Message.to_addr.like("%grace%"))).all()) == 1
    body = press(live, card, "Unsubscribe this contact", message_id=message_id)
    assert "is unsubscribed" in notice(body)
    with live.db.read() as s:
        assert s.scalar(select(Contact.subscription).where(Contact.email == CUSTOMER)) == \
            "unsubscribed"
    assert "Unsubscribe this contact" not in texts(card_of(body))


def button_campaign(card: dict) -> str:
    for section in card["sections"]:
        for widget in section["widgets"]:
            if widget.get("selectionInput", {}).get("name") == "campaign_id":
                return widget["selectionInput"]["items"][0]["value"]
    raise AssertionError("no campaign to choose")


def test_compose_inserts_a_template_for_the_recipient_and_schedules_one_on_time(live, api):
    api.post(f"{live.url}/api/v1/contacts", json=[{"email": CUSTOMER, "name": "Grace"}])
    _saved_reply(live, api, html="<p>Dear {{ name }}, thank you.</p>")
    card = card_of(answer(live, "/addon/compose", to=[f"Grace <{CUSTOMER}>"]))
    assert f"For {CUSTOMER}" in texts(card)
    body = press(live, card, "Insert into the draft", to=[CUSTOMER],
                 inputs={"template_id": button_value(card, "template_id")})
    assert "renderActions" in body and "hostAppAction" in body["renderActions"], body
    inserted = body["renderActions"]["hostAppAction"]["gmailAction"][
        "updateDraftActionMarkup"]["updateBody"]
    assert inserted["type"] == "IN_PLACE_INSERT"
    assert "Dear Grace, thank you." in inserted["insertContents"][0]["content"]
    assert "unsubscribe" not in inserted["insertContents"][0]["content"].lower()
    # Schedule instead: written here, released by the worker at its time.
    form = card_of(press(live, card, "Schedule instead", to=[CUSTOMER]))
    at = utcnow().replace(microsecond=0) + dt.timedelta(seconds=3)
    body = press(live, form, "Queue it", inputs={
        "to": CUSTOMER, "template_id": "", "subject": "Your order",
        "body": "It ships today.\n\nAda", "how": "mine",
        "when": {"ms": int(at.timestamp() * 1000)}})
    assert "Queued for" in notice(body), body
    sent = wait_for(lambda: [m for m in live.sandbox.sent()], 20)
    assert len(sent) == 1
    with live.db.read() as s:
        message = s.scalar(select(Message).where(Message.subject_tpl == "Your order"))
        assert message.status == "sent" and message.release_at == at
        assert message.sent_at >= at and "<p>It ships today.</p><p>Ada</p>" in \
            message.html_tpl


def button_value(card: dict, name: str) -> str:
    for section in card["sections"]:
        for widget in section["widgets"]:
            if widget.get("selectionInput", {}).get("name") == name:
                return widget["selectionInput"]["items"][0]["value"]
    raise AssertionError(f"no choice {name}")


def test_bad_inputs_get_a_notification_naming_what_is_wrong_and_queue_nothing(live, api):
    card = card_of(answer(live, "/addon/compose", to=[CUSTOMER]))
    form = card_of(press(live, card, "Schedule instead", to=[CUSTOMER]))
    past = utcnow() - dt.timedelta(hours=1)
    for inputs, says in (
            ({"to": "", "subject": "s", "body": "b", "how": "now"}, "who is it to?"),
            ({"to": CUSTOMER, "subject": "", "body": "b", "how": "now"}, "subject"),
            ({"to": CUSTOMER, "subject": "s", "body": "b", "how": "mine",
              "when": {"ms": int(past.timestamp() * 1000)}}, "has passed"),
            ({"to": "not an address", "subject": "s", "body": "b", "how": "now"},
             "not an email address")):
        body = press(live, form, "Queue it", inputs=inputs)
        assert says in notice(body), (inputs, body)
    assert api.get(f"{live.url}/api/v1/messages").json()["items"] == []
    body = answer(live, "/addon/action/no-such-button")
    assert "older version" in notice(body)
    garbage = requests.post(live.url + "/addon/homepage", data="not json", timeout=10,
                            headers={"Authorization": call_header(live, "/addon/homepage")})
    assert garbage.status_code == 400


def call_header(live, path: str) -> str:
    return requests.post(f"{live.sandbox.url}/sandbox/api/addon/event", timeout=10, json={
        "url": live.settings.public_url + path, "owner": "ada@example.com"}).json()[
        "authorization"]

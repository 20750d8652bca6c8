"""Support replies in Gmail threads over real HTTP: a customer's mail in the sandbox
mailbox, a saved reply personalized for them, sent into the same thread from an alias."""
from __future__ import annotations

import email
import email.policy

import requests

from tests.helpers import wait_for

CUSTOMER_MAIL = ("From: \"Grace Hopper\" <grace@example.org>\r\nTo: ada@example.com\r\n"
                 "Subject: Cannot log in\r\nMessage-ID: <q1@example.org>\r\n\r\nHelp!\r\n")


def _alias(live, owner: str, address: str, name: str = "Support") -> None:
    requests.post(f"{live.sandbox.url}/sandbox/api/send-as",
                  json={"owner": owner, "email": address, "name": name}, timeout=10)


def _sent_mail(live, thread_id: str, n: int) -> email.message.EmailMessage:
    """The n-th message the sandbox holds in that thread (0: the customer's)."""
    def found():
        msgs = sorted((m for m in live.sandbox.state.messages.values()
                       if m.thread_id == thread_id), key=lambda m: m.internal_date)
        return msgs[n] if len(msgs) > n else None
    stored = wait_for(found)
    return email.message_from_bytes(stored.raw, policy=email.policy.default)


def test_a_saved_reply_lands_in_the_customers_thread_from_an_alias(live):
    _alias(live, "ada@example.com", "support@example.com")
    api = live.user("ada@example.com")  # the aliases are read at sign-in
    first = live.sandbox.deliver("ada@example.com", CUSTOMER_MAIL)
    saved = api.post(live.url + "/api/v1/templates", json={"starter": "support-reply"}).json()
    assert saved["kind"] == "reply"
    threads = api.get(live.url + "/api/v1/threads").json()
    assert threads["account"] == "ada@example.com"
    thread = threads["items"][0]
    assert thread == {**thread, "id": first["threadId"], "subject": "Cannot log in",
                      "customer_name": "Grace Hopper", "customer_email": "grace@example.org",
                      "last_message_id": "<q1@example.org>", "messages": 1}
    accounts = api.get(live.url + "/api/v1/accounts").json()["items"]
    assert accounts[0]["send_as"] == [{"email": "support@example.com", "name": "Support",
                                       "default": False}]
    preview = api.post(f"{live.url}/api/v1/threads/{thread['id']}/reply/preview",
                       json={"template_id": saved["id"]}).json()
    assert preview["subject"] == "Re: Cannot log in" and "Hi Grace," in preview["text"]

    reply = api.post(f"{live.url}/api/v1/threads/{thread['id']}/reply", json={
        "template_id": saved["id"], "from": "support@example.com",
        "data": {"answer": "Your access is back."}})
    assert reply.status_code == 201, reply.text
    sent = wait_for(lambda: (m := api.get(f"{live.url}/api/v1/messages/"
                                          f"{reply.json()['id']}").json())["status"] == "sent"
                    and m)
    assert sent["thread_id"] == thread["id"] and sent["template_id"] == saved["id"]
    mail = _sent_mail(live, thread["id"], 1)
    assert mail["Subject"] == "Re: Cannot log in"
    assert mail["In-Reply-To"] == "<q1@example.org>" and mail["References"] == "<q1@example.org>"
    assert mail["From"] == "Support <support@example.com>"
    assert mail["To"] == "Grace Hopper <grace@example.org>"
    body = mail.get_body(("plain",)).get_content()
    assert "Hi Grace," in body and "Your access is back." in body
    # A support reply is a conversation: no tracking pixel, no unsubscribe header.
    assert mail["List-Unsubscribe"] is None and "/t/o/" not in mail.get_body(
        ("html",)).get_content()

    # The customer answers; the next reply references the whole thread.
    live.sandbox.deliver("ada@example.com", (
        "From: Grace Hopper <grace@example.org>\r\nTo: support@example.com\r\n"
        f"Subject: Re: Cannot log in\r\nMessage-ID: <q2@example.org>\r\n"
        f"In-Reply-To: {mail['Message-ID']}\r\nReferences: <q1@example.org> "
        f"{mail['Message-ID']}\r\n\r\nThanks!\r\n"))
    again = api.get(live.url + "/api/v1/threads").json()["items"][0]
    assert again["messages"] == 3 and again["last_message_id"] == "<q2@example.org>"
    second = api.post(f"{live.url}/api/v1/threads/{thread['id']}/reply",
                      json={"html": "<p>Glad to help, {{ first_name }}.</p>"})
    assert second.status_code == 201
    follow = _sent_mail(live, thread["id"], 3)
    assert follow["References"].split() == ["<q1@example.org>", mail["Message-ID"],
                                            "<q2@example.org>"]
    assert follow["In-Reply-To"] == "<q2@example.org>"
    assert follow["From"].addresses[0].addr_spec == "ada@example.com"


def test_reply_errors_name_the_field_and_queue_nothing(live_no_worker):
    live = live_no_worker
    api = live.user("ada@example.com")
    thread_id = live.sandbox.deliver("ada@example.com", CUSTOMER_MAIL)["threadId"]
    url = f"{live.url}/api/v1/threads/{thread_id}/reply"
    cases = [({"html": "<p>x</p>", "from": "someone@else.example"}, 422, "from"),
             ({}, 422, "html"),
             ({"html": "<p>{% if %}</p>"}, 422, "html"),
             ({"template_id": 999, "html": ""}, 404, "template_id")]
    for body, status, field in cases:
        resp = api.post(url, json=body)
        assert resp.status_code == status and resp.json()["error"]["field"] == field, \
            (body, resp.text)
    missing = api.post(f"{live.url}/api/v1/threads/ffff0000/reply", json={"html": "x"})
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "thread_id"
    # Another person's mailbox holds other threads: Bob cannot reply in Ada's.
    bob = live.user("bob@example.com")
    assert bob.post(url, json={"html": "<p>x</p>"}).status_code == 404
    assert api.get(live.url + "/api/v1/messages").json()["items"] == []


def test_a_support_reply_is_not_marked_replied_by_the_mail_it_answers(live):
    """The customer's message is in the thread, but it came before ours: no reply yet."""
    api = live.user("ada@example.com")
    first = live.sandbox.deliver("ada@example.com", CUSTOMER_MAIL)
    reply = api.post(f"{live.url}/api/v1/threads/{first['threadId']}/reply", json={
        "html": "<p>Try again now.</p>"}).json()
    wait_for(lambda: api.get(f"{live.url}/api/v1/messages/{reply['id']}").json()["status"]
             == "sent")
    # A mailbox round that reads the whole thread (as after a lost history cursor).
    live.sandbox.configure(expire_history=True)
    live.worker.sync.sync_account(1, force=True)
    events = api.get(f"{live.url}/api/v1/messages/{reply['id']}").json()["events"]
    assert "replied" not in [e["type"] for e in events]
    # The customer's answer, after ours, counts.
    live.sandbox.deliver("ada@example.com", CUSTOMER_MAIL.replace(
        "<q1@example.org>", "<q2@example.org>\r\nIn-Reply-To: " + _sent_mail(
            live, first["threadId"], 1)["Message-ID"]).replace("Help!", "Works, thanks"))
    live.worker.sync.sync_account(1, force=True)
    events = api.get(f"{live.url}/api/v1/messages/{reply['id']}").json()["events"]
    assert [e["type"] for e in events].count("replied") == 1


def test_a_thread_reply_goes_to_the_customers_reply_to(live):
    api = live.user("ada@example.com")
    first = live.sandbox.deliver("ada@example.com", CUSTOMER_MAIL.replace(
        "To: ada@example.com", "To: ada@example.com\r\nReply-To: Help Desk <desk@example.org>"))
    thread = api.get(live.url + "/api/v1/threads").json()["items"][0]
    assert thread["customer_email"] == "desk@example.org"
    reply = api.post(f"{live.url}/api/v1/threads/{first['threadId']}/reply", json={
        "html": "<p>Done.</p>"})
    assert reply.status_code == 201, reply.text
    assert "desk@example.org" in reply.json()["to"]


def test_a_thread_with_a_malformed_or_missing_sender_is_a_clear_422(live):
    api = live.user("ada@example.com")
    for sender in ('From: "unterminated <x@y', "From: <<<>>>", "From: a@b@c"):
        first = live.sandbox.deliver("ada@example.com", CUSTOMER_MAIL.replace(
            'From: "Grace Hopper" <grace@example.org>', sender))
        for path in ("reply/preview", "reply"):
            resp = api.post(f"{live.url}/api/v1/threads/{first['threadId']}/{path}",
                            json={"html": "<p>x</p>"})
            assert resp.status_code == 422, (sender, path, resp.text[:200])
            assert "no one to reply to" in resp.json()["error"]["message"]
    assert live.sandbox.sent() == []  # never a reply to ourselves

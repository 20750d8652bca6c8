"""Attachments and inline images: stored once, resolved at release, sent intact; big
messages go through Gmail's upload URI, exactly once; Gmail's limits are clear errors."""
from __future__ import annotations

import base64
import email
import email.policy
import os

import pytest
import requests
from flask import Flask, Response

from gmail_client.api import MAX_MESSAGE_BYTES, GmailService
from gmail_client.errors import PermanentGmailError
from tests.helpers import ServerThread, wait_for

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAF"
                       "BQIAX8jx0gAAAABJRU5ErkJggg==")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _wait_status(live, api, mid: str, *statuses: str) -> dict:
    return wait_for(lambda: (b := api.get(f"{live.url}/api/v1/messages/{mid}").json())
                    ["status"] in statuses and b, 30)


def _received(live, index: int = -1) -> tuple[dict, email.message.EmailMessage]:
    sent = live.sandbox.sent()[index]
    raw = sent["raw"]
    return sent, email.message_from_bytes(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)),
                                          policy=email.policy.default)


def _files(mail) -> dict:
    return {part.get_filename(): (part.get_content_type(), part.get_payload(decode=True),
                                  part["Content-ID"], part.get_content_disposition())
            for part in mail.walk() if part.get_filename()}


def test_files_and_inline_images_reach_gmail_intact(live, api):
    base = f"{live.url}/api/v1"
    pdf = b"%PDF-1.4\n" + os.urandom(3000)
    stored = api.post(f"{base}/files", json={"filename": "Prijslijst — 2027.pdf",
                                              "content_base64": _b64(pdf)})
    assert stored.status_code == 201, stored.text
    file = stored.json()
    assert file["content_type"] == "application/pdf" and file["size"] == len(pdf)
    # The same upload again is the same file.
    again = api.post(f"{base}/files", json={"filename": "Prijslijst — 2027.pdf",
                                             "content_base64": _b64(pdf)}).json()
    assert again["id"] == file["id"]
    notes = "Ünïcode notes\n".encode() * 50
    made = api.post(f"{base}/messages", json={
        "to": "reader@example.org", "subject": "Your prices",
        "html": '<p>Our logo: <img src="cid:logo" alt="Logo"></p>',
        "attachments": [{"file_id": file["id"]},
                        {"filename": "notes.txt", "content_base64": _b64(notes)},
                        {"filename": "logo.png", "content_base64": _b64(PNG),
                         "cid": "logo"}]})
    assert made.status_code == 201, made.text
    refs = made.json()["attachments"]
    assert [r["filename"] for r in refs] == ["Prijslijst — 2027.pdf", "notes.txt", "logo.png"]
    assert all("content_base64" not in r for r in refs)
    _wait_status(live, api, made.json()["id"], "sent")
    sent, mail = _received(live)
    assert sent["via"] == "raw"  # small: the JSON field
    assert mail.get_content_type() == "multipart/mixed" and not mail.defects
    related = mail.get_payload()[0]
    assert related.get_content_type() == "multipart/related"
    assert related.get_payload()[0].get_content_type() == "multipart/alternative"
    files = _files(mail)
    assert files["Prijslijst — 2027.pdf"] == ("application/pdf", pdf, None, "attachment")
    assert files["notes.txt"][1] == notes
    assert files["logo.png"] == ("image/png", PNG, "<logo>", "inline")


@pytest.mark.parametrize("lost", [{"status": 500}, {"reset": True}], ids=["500", "reset"])
def test_a_10_mb_attachment_goes_through_the_upload_uri_exactly_once(live, api, lost):
    base = f"{live.url}/api/v1"
    big = os.urandom(10 * 1024 * 1024)
    file = api.post(f"{base}/files", json={"filename": "catalogue.zip",
                                            "content_base64": _b64(big)}).json()
    assert file["content_type"] == "application/zip"
    # Gmail takes the upload and the answer is lost: the retry finds it by Message-ID.
    live.sandbox.fault(method="send", after_store=True, **lost)
    made = api.post(f"{base}/messages", json={
        "to": "reader@example.org", "subject": "The catalogue", "html": "<p>Attached.</p>",
        "attachments": [{"file_id": file["id"]}]}).json()
    done = _wait_status(live, api, made["id"], "sent")
    assert [e["type"] for e in done["events"]].count("retry_wait") == 1
    assert live.sandbox.count() == 1
    sent, mail = _received(live)
    assert sent["via"] == "resumable"
    assert _files(mail)["catalogue.zip"][1] == big


def test_files_per_recipient_from_a_contact_attribute_and_from_a_url(serve):
    served = Flask("files")

    @served.get("/invoices/<number>.pdf")
    def invoice(number):
        return Response(f"%PDF invoice {number}".encode(), mimetype="application/pdf")

    server = ServerThread(served)
    host = f"127.0.0.1:{server.port}"
    try:
        live = serve(MAILRELEASE_CONTENT_HOSTS=host)
        api = live.user()
        base = f"{live.url}/api/v1"
        template = api.post(f"{base}/templates", json={
            "name": "invoice", "subject": "Invoice {{ order }}", "html": "<p>Attached</p>",
            "attachments": [{"file_field": "contract"},
                            {"url": f"http://{host}/invoices/{{{{ order }}}}.pdf"}]})
        assert template.status_code == 201, template.text
        tid = template.json()["id"]
        api.post(f"{base}/contacts", json={"email": "c@example.org",
                                           "attributes": {"contract": "contract-c.pdf"}})
        made = api.post(f"{base}/messages", json={"to": "c@example.org", "template_id": tid,
                                                  "data": {"order": "A 17"}}).json()
        # The file the attribute names is not uploaded yet: held, saying so.
        held = _wait_status(live, api, made["id"], "held")
        assert "contract" in held["error"] and "contract-c.pdf" in held["error"]
        assert live.sandbox.count() == 0
        api.post(f"{base}/files", json={"filename": "contract-c.pdf",
                                        "content_base64": _b64(b"%PDF contract")})
        assert api.post(f"{base}/messages/{made['id']}/send-now").status_code == 200
        done = _wait_status(live, api, made["id"], "sent", "held", "failed")
        assert done["status"] == "sent", done["events"]
        _, mail = _received(live)
        files = _files(mail)
        assert files["contract-c.pdf"][1] == b"%PDF contract"
        # Fetched at send time with the recipient's data (percent-encoded in the URL).
        assert files["A 17.pdf"] == ("application/pdf", b"%PDF invoice A 17", None,
                                     "attachment")
    finally:
        server.stop()


def test_gmail_s_limits_and_bad_files_are_clear_errors_that_keep_nothing(live, api):
    base = f"{live.url}/api/v1"
    cases = [
        ({"filename": "a.bin", "content_base64": "not base64!"},
         "attachments[0].content_base64"),
        ({"filename": "a.txt", "content_base64": _b64(b"x"), "cid": "pic"},
         "attachments[0].cid"),
        ({"url": "http://169.254.169.254/latest/meta-data"}, "attachments[0].url"),
        ({"file_id": 999}, "attachments[0].file_id"),
        ({"filename": "a.txt", "content_base64": _b64(b"x"), "file_id": 1},
         "attachments[0].file_id"),
    ]
    for spec, field in cases:
        resp = api.post(f"{base}/messages", json={"to": "a@example.org", "subject": "s",
                                                  "html": "h", "attachments": [spec]})
        assert resp.status_code == 422, (spec, resp.text)
        assert resp.json()["error"]["field"] == field, (spec, resp.text)
    halves = [api.post(f"{base}/files", json={
        "filename": f"half{n}.bin", "content_base64": _b64(os.urandom(13 * 1024 * 1024))}
        ).json()["id"] for n in range(2)]
    resp = api.post(f"{base}/messages", json={
        "to": "a@example.org", "subject": "s", "html": "h",
        "attachments": [{"file_id": halves[0]}, {"file_id": halves[1]}]})
    assert resp.status_code == 422 and "25 MB" in resp.json()["error"]["message"]
    assert api.get(f"{base}/messages").json()["items"] == []
    # Another team's file is not found, and not told apart from a missing one.
    live.sign_in("bob@example.com")
    other = live.api(live.token("bob@example.com"))
    resp = other.post(f"{base}/messages", json={"to": "a@example.org", "subject": "s",
                                                "html": "h",
                                                "attachments": [{"file_id": halves[0]}]})
    assert resp.status_code == 422 and resp.json()["error"]["field"] == \
        "attachments[0].file_id"
    assert live.sandbox.count() == 0


def test_a_message_above_35_mb_is_refused_by_the_client_and_by_the_sandbox(live):
    from google.oauth2.credentials import Credentials
    live.sign_in()
    token = next(iter(live.sandbox.state.access_tokens))
    service = GmailService(Credentials(token), api_endpoint=live.settings.gmail_api_endpoint)
    head = b"From: ada@example.com\r\nTo: a@example.org\r\nSubject: big\r\n\r\n"
    raw = head + b"x" * (MAX_MESSAGE_BYTES + 1 - len(head))  # one byte too many
    with pytest.raises(PermanentGmailError) as refused:
        service.send(raw)
    assert refused.value.status == 413
    # The sandbox enforces Gmail's limit on its own, whatever the client checks.
    related = (b"--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b\r\n"
               b"Content-Type: message/rfc822\r\n\r\n" + raw + b"\r\n--b--\r\n")
    for kind, body, content_type in (("media", raw, "message/rfc822"),
                                     ("multipart", related, 'multipart/related; boundary="b"')):
        resp = requests.post(
            f"{live.settings.gmail_api_endpoint}/upload/gmail/v1/users/me/messages/send",
            params={"uploadType": kind}, data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
            timeout=60)
        assert resp.status_code == 413, (kind, resp.text)
        # One byte less goes.
        resp = requests.post(
            f"{live.settings.gmail_api_endpoint}/upload/gmail/v1/users/me/messages/send",
            params={"uploadType": kind}, data=body.replace(b"x" * 100, b"x" * 99, 1),
            headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
            timeout=60)
        assert resp.status_code == 200, (kind, resp.text)
    begun = requests.post(
        f"{live.settings.gmail_api_endpoint}/upload/gmail/v1/users/me/messages/send",
        params={"uploadType": "resumable"}, json={},
        headers={"Authorization": f"Bearer {token}",
                 "X-Upload-Content-Length": str(len(raw))}, timeout=10)
    assert begun.status_code == 413
    assert [m["via"] for m in live.sandbox.sent()] == ["media", "multipart"]


def test_a_campaign_s_files_go_with_each_of_its_messages_and_are_stored_once(live, api):
    base = f"{live.url}/api/v1"
    for n in range(3):
        api.post(f"{base}/contacts", json={"email": f"c{n}@example.org"})
    tid = api.post(f"{base}/templates", json={"name": "t", "subject": "News",
                                              "html": "<p>Hi</p>"}).json()["id"]
    brochure = os.urandom(4000)
    campaign = api.post(f"{base}/campaigns", json={"template_id": tid, "attachments": [
        {"filename": "../../etc/brochure.pdf", "content_base64": _b64(brochure)}]})
    assert campaign.status_code == 201, campaign.text
    refs = campaign.json()["attachments"]
    assert refs[0]["filename"] == "brochure.pdf"  # no folders in a name a mail app saves
    wait_for(lambda: live.sandbox.count() == 3, 20)
    for index in range(3):
        assert _files(_received(live, index)[1])["brochure.pdf"][1] == brochure
    assert [f["id"] for f in api.get(f"{base}/files").json()["items"]] == [refs[0]["file_id"]]

"""Unit tests of the pure parts: MIME, error mapping, timing, encryption, personalization."""
from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import re
from email.header import decode_header, make_header
from email.headerregistry import Address

import httplib2
import pytest
from googleapiclient.errors import HttpError

from gmail_client.errors import (
    DailyLimitReached,
    PermanentGmailError,
    ReconnectNeeded,
    TransientGmailError,
    from_http_error,
)
from gmail_client.mime import build_message
from scheduler.content.personalize import check_template, render_message
from scheduler.errors import InvalidInput, MissingData, TemplateError
from scheduler.store.crypto import TokenCipher
from scheduler.timing.release_at import release_time

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def _http_error(status: int, message: str, reason: str = "", headers: dict | None = None):
    resp = httplib2.Response({"status": status, **(headers or {})})
    body = {"error": {"code": status, "message": message,
                      "errors": [{"reason": reason, "message": message}]}}
    return HttpError(resp, json.dumps(body).encode(), uri="http://x/send")


def test_build_message__parts_in_gmail_order_with_amp_between():
    raw = build_message(sender=Address("Ada", addr_spec="ada@example.com"),
                        to=Address(addr_spec="g@example.org"), subject="S", html="<p>h</p>",
                        text="h", amp="<html ⚡4email></html>", message_id="<a@b>")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert [p.get_content_type() for p in msg.iter_parts()] == [
        "text/plain", "text/x-amp-html", "text/html"]
    assert msg["Message-ID"] == "<a@b>" and msg["Date"]


def test_build_message__refuses_header_injection():
    with pytest.raises(ValueError):
        build_message(sender=Address(addr_spec="ada@example.com"),
                      to=Address(addr_spec="g@example.org"), subject="Hi\r\nBcc: v@example.com",
                      html="h", text="h", message_id="<a@b>")


@pytest.mark.parametrize("subject", [
    "Short", "Two  spaces and a\ttab", "A subject line long enough that it must be folded "
    "somewhere past the seventy-eighth column of the line", "Grüße, Zoë ✓",
    "x" * 90, "Ends with a space "])
def test_build_message__header_shortcut_writes_what_compat32_writes(subject):
    """The fast path for short ASCII lines changes no byte of what compat32 produces."""
    import re

    from gmail_client import mime
    args = dict(sender=("Ada Lovelace", "ada@example.com"), to=("Zoe", "g@example.org"),
                subject=subject, html="<p>h</p>", text="h", message_id="<a@b>", date=NOW,
                in_reply_to="<orig@mail.gmail.com>", extra_headers={"X-Note": subject})
    fast = mime.build_message(**args)
    plain = email.policy.compat32.clone(linesep="\r\n", max_line_length=78)
    try:
        original, mime._POLICY = mime._POLICY, plain
        reference = mime.build_message(**args)
    finally:
        mime._POLICY = original
    boundary = re.compile(rb"=_mr\.[0-9a-f]+")
    assert boundary.sub(b"B", fast) == boundary.sub(b"B", reference)


def _reference_message(boundary: str, **a) -> bytes:
    """The same message made the ordinary way, with the email package's MIME classes."""
    from email.header import Header
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText
    from email.utils import format_datetime, formataddr

    from gmail_client.mime import _POLICY

    def text_header(value, name):
        return value if value.isascii() else Header(value, "utf-8", header_name=name)
    msg = MIMEMultipart("alternative", boundary=boundary)
    msg["From"] = formataddr(a["sender"], "utf-8")
    msg["To"] = formataddr(a["to"], "utf-8")
    msg["Subject"] = text_header(a["subject"], "Subject")
    msg["Date"] = format_datetime(a["date"])
    msg["Message-ID"] = a["message_id"]
    if a.get("in_reply_to"):
        msg["In-Reply-To"] = msg["References"] = a["in_reply_to"]
    for name, value in a.get("extra_headers", {}).items():
        msg[name] = text_header(value, name)
    msg.attach(MIMEText(a["text"], "plain", "utf-8"))
    if a.get("amp"):
        msg.attach(MIMEText(a["amp"], "x-amp-html", "utf-8"))
    msg.attach(MIMEText(a["html"], "html", "utf-8"))
    return msg.as_bytes(policy=_POLICY)


@pytest.mark.parametrize("body", ["", "plain ascii", "Grüße ✓\nzwei Zeilen\n" * 50])
@pytest.mark.parametrize("amp", [None, "<html ⚡4email>{x}</html>"])
@pytest.mark.parametrize("reply", [None, "<orig@mail.gmail.com>"])
def test_build_message_writes_what_the_email_package_writes(body, amp, reply):
    """The fixed-shape writer is byte for byte the email package's output. (A non-ASCII
    display name is written by the modern folder instead: see the RFC 2047 test below.)"""
    import re
    args = dict(sender=("Ada Lovelace", "ada@example.com"), to=("Zoe Smith", "z@example.org"),
                subject="Grüße " * 15 if body else "Hello", html=f"<p>{body}</p>",
                text=body, amp=amp, message_id="<a@b>", date=NOW, in_reply_to=reply,
                extra_headers={"List-Unsubscribe": "<https://x.example/u/" + "t" * 90 + ">",
                               "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
    ours = build_message(**args)
    boundary = re.search(rb'boundary="([^"]+)"', ours).group(1).decode()
    assert ours == _reference_message(boundary, **args)


@pytest.mark.parametrize("name", [
    "Katherine Ångström-Żółkiewska, Service Client — Équipe Entreprises & Comptes Clés",
    "日本語の表示名はとても長くなることがありますので分割が必要です日本語の表示名",
    "Zoë"])
def test_a_long_non_ascii_display_name_is_several_encoded_words_within_75(name):
    """RFC 2047 allows 75 characters an encoded-word; formataddr writes one of any length."""
    raw = build_message(sender=(name, "ada@example.com"), to=(name, "bo@example.org"),
                        subject="s", html="<p>h</p>", text="h", message_id="<m@example.com>")
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    for header in ("From", "To"):
        unfolded = re.search(rf"^{header}: (.*?)\r\n(?! )", head, re.M | re.S).group(1)
        words = re.findall(r"=\?utf-8\?[bq]\?[^?]*\?=", unfolded, re.I)
        assert words and max(len(w) for w in words) <= 75, words
    assert all(len(line) <= 78 for line in head.split("\r\n"))
    # Decoded as RFC 2047 says (6.2: the space between adjacent encoded-words is not
    # text). Python's newer header parser puts a space there inside a display name.
    parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert str(make_header(decode_header(parsed["From"]))) == f"{name} <ada@example.com>"
    assert str(make_header(decode_header(parsed["To"]))) == f"{name} <bo@example.org>"


def test_build_message__reply_headers():
    raw = build_message(sender=Address(addr_spec="ada@example.com"),
                        to=Address(addr_spec="g@example.org"), subject="Re: S", html="h",
                        text="h", message_id="<a@b>", in_reply_to="<orig@mail.gmail.com>")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["In-Reply-To"] == msg["References"] == "<orig@mail.gmail.com>"


@pytest.mark.parametrize("status,message,reason,expected", [
    (429, "User-rate limit exceeded. Retry after 2026-11-23T00:00:00.000Z (Mail sending)",
     "rateLimitExceeded", DailyLimitReached),
    (403, "Daily Limit Exceeded", "dailyLimitExceeded", DailyLimitReached),
    (429, "Too many concurrent requests for user", "rateLimitExceeded", TransientGmailError),
    (403, "User Rate Limit Exceeded", "userRateLimitExceeded", TransientGmailError),
    (503, "Backend Error", "backendError", TransientGmailError),
    (401, "Invalid Credentials", "authError", ReconnectNeeded),
    (400, "Invalid To header", "invalidArgument", PermanentGmailError),
    (403, "Request had insufficient authentication scopes.", "insufficientPermissions",
     PermanentGmailError),
])
def test_from_http_error__maps_to_the_hierarchy(status, message, reason, expected):
    mapped = from_http_error(_http_error(status, message, reason))
    assert type(mapped) is expected
    assert mapped.status == status


def test_from_http_error__daily_limit_reads_the_retry_time():
    mapped = from_http_error(_http_error(
        429, "User-rate limit exceeded.  Retry after 2026-11-23T00:00:00.000Z (Mail sending)"))
    assert mapped.retry_at == dt.datetime(2026, 11, 23, tzinfo=dt.UTC)


def test_from_http_error__honours_retry_after_header():
    mapped = from_http_error(_http_error(429, "slow down", "rateLimitExceeded",
                                         {"retry-after": "17"}))
    assert mapped.retry_after == 17.0


def test_release_time__offsets_past_and_naive():
    assert release_time({"send_at": "2026-11-23T09:00:00+09:00"}, NOW) == dt.datetime(
        2026, 11, 23, 0, 0, tzinfo=dt.UTC)
    assert release_time({"send_at": "2020-01-01T00:00:00Z"}, NOW) == NOW
    assert release_time({}, NOW) == NOW
    assert release_time({"delay_seconds": 90}, NOW) == NOW + dt.timedelta(seconds=90)
    with pytest.raises(InvalidInput) as err:
        release_time({"send_at": "2026-11-23T09:00:00"}, NOW)
    assert err.value.field == "send_at"
    with pytest.raises(InvalidInput):
        release_time({"delay_seconds": True}, NOW)


def test_token_cipher__round_trip_rotation_and_wrong_key():
    from cryptography.fernet import Fernet
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    blob = TokenCipher(old).encrypt({"token": "secret-token"})
    assert b"secret-token" not in blob
    assert TokenCipher(f"{new},{old}").decrypt(blob) == {"token": "secret-token"}
    with pytest.raises(ValueError):
        TokenCipher(new).decrypt(blob)


def test_personalize__sandbox_blocks_python_internals():
    with pytest.raises(TemplateError):
        render_message("s", "{{ ''.__class__.__mro__[1].__subclasses__() }}", None, {})


def test_personalize__missing_value_names_the_variable_and_part():
    with pytest.raises(MissingData) as err:
        render_message("Hi {{ first_name }}", "<p>x</p>", None, {})
    assert err.value.variable == "first_name" and err.value.part == "subject"


def test_personalize__syntax_error_names_the_line():
    with pytest.raises(TemplateError) as err:
        check_template("html", "a\nb\n{% for x in y %}")
    assert err.value.line == 3 and err.value.field == "html"


def test_personalize__text_part_made_from_html_is_plain_text_not_markdown():
    html = ("<h1>Your order</h1><p>Hello <b>Ada</b>, read <a href='https://e.x/post?a=1&amp;"
            "b=2'>this post</a> and <em>that</em>. " + "A sentence that goes on. " * 12 +
            "</p><table><tr><th>Item</th><th>Price</th></tr><tr><td>Book</td><td>12.00</td>"
            "</tr></table><ul><li>one</li></ul>")
    text = render_message("S", html, None, {}).text
    assert text.startswith("Your order\n\nHello Ada, read this post [1] and that.")
    assert "Item  Price\nBook  12.00" in text and "- one" in text
    assert text.rstrip().endswith("[1] https://e.x/post?a=1&b=2")
    assert not any(mark in text for mark in ("**", "# ", "](", "][", "|", "_that_"))
    assert max(len(line) for line in text.splitlines()) <= 78


def test_settings__gmail_endpoint_keeps_its_path_prefix(tmp_path):
    from scheduler.settings import Settings
    settings = Settings.from_env(instance_path=tmp_path, env={
        "MAILRELEASE_GMAIL_API_ENDPOINT": "http://127.0.0.1:9/sandbox-google"})
    assert settings.gmail_api_endpoint == "http://127.0.0.1:9/sandbox-google/"


def test_local_time_is_the_next_wall_clock_time_in_the_zone_across_dst():
    from scheduler.timing.release_at import Recipient, plan
    sunday_noon = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
    tokyo = plan({"local_time": {"time": "09:00"}}, sunday_noon, Recipient("Asia/Tokyo"))[0]
    assert tokyo == dt.datetime(2026, 11, 23, 0, 0, tzinfo=dt.UTC)
    # 02:30 does not exist in New York on 2027-03-14: it moves forward by the gap.
    gap = plan({"local_time": {"time": "02:30", "date": "2027-03-14"}}, sunday_noon,
               Recipient("America/New_York"))[0]
    assert gap == dt.datetime(2027, 3, 14, 7, 30, tzinfo=dt.UTC)
    # 09:00 in Paris: UTC+1 in November, UTC+2 after the change in March.
    summer = plan({"local_time": {"time": "09:00", "date": "2027-04-01"}}, sunday_noon,
                  Recipient("Europe/Paris"))[0]
    assert summer.hour == 7
    with pytest.raises(InvalidInput) as caught:
        plan({"local_time": {"time": "09:00"}}, sunday_noon, Recipient(None))
    assert caught.value.field == "local_time"


def test_best_hour_from_history_then_the_team_then_a_default_with_its_reason():
    from scheduler.timing.release_at import Recipient, plan
    now = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)  # Sunday
    tuesday_14 = 1 * 24 + 14
    own = plan({"best_hour": True}, now, Recipient("Europe/Paris", (tuesday_14,) * 3))
    assert own[0] == dt.datetime(2026, 11, 24, 13, 0, tzinfo=dt.UTC)
    assert own[1].startswith("their most frequent") and "Tue 14:00" in own[1]
    team = plan({"best_hour": True}, now, Recipient("Europe/Paris", (5,), (30, 30, 30)))
    assert team[1].startswith("the team's")
    default = plan({"best_hour": True}, now, Recipient("Europe/Paris"))
    assert default[0] == dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    assert "too little" in default[1]


def test_a_send_window_moves_a_time_to_the_next_allowed_moment():
    from scheduler.timing.release_at import Recipient, plan
    saturday_eve = dt.datetime(2026, 11, 28, 20, 0, tzinfo=dt.UTC)
    when, why = plan({"window": {"days": ["mon", "tue", "wed", "thu", "fri"],
                                 "start": "09:00", "end": "17:00"}}, saturday_eve,
                     Recipient("America/New_York"))
    assert when == dt.datetime(2026, 11, 30, 14, 0, tzinfo=dt.UTC)  # Mon 09:00 EST
    assert "window" in why
    inside = dt.datetime(2026, 11, 30, 15, 0, tzinfo=dt.UTC)
    assert plan({"window": {}}, inside, Recipient("America/New_York"))[0] == inside


def test_css_is_inlined_and_at_rules_stay_in_a_style_block():
    """Rules go into style attributes; @media and @font-face, which no attribute can hold,
    stay in a <style> (Gmail reads it) instead of being dropped."""
    html = ("<html><head><style>p { color: red } @media (max-width: 600px) { p { color: blue }"
            " } @font-face { font-family: X; src: url(https://f.example/x.woff) }</style>"
            "</head><body><p>{{ name }}</p></body></html>")
    out = render_message("s", html, None, {"name": "Ada"}).html
    assert '<p style="color: red;">Ada</p>' in out
    style = re.search(r"<style>(.*?)</style>", out, re.S).group(1)
    assert "@media (max-width: 600px)" in style and "@font-face" in style
    assert "p { color: red }" not in style  # what was inlined is not sent twice

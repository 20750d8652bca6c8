"""The sandbox's Gmail add-on host: Gmail's side of a Workspace add-on on the HTTP runtime.

It makes the event objects Gmail posts (the user's add-on OAuth token, Gmail's token for
the open message, the user's ID token, the form's inputs and the button's parameters),
signs each request with an ID token for the endpoint's URL from the add-on's service
account (the sandbox's key: /oauth2/v1/certs), and reads the answers as Gmail would: cards
checked against the Card v2 schema, navigations applied to a card stack, notifications
shown, text inserted into the draft.

    /sandbox/addon                a page to click through the add-on (mailbox, cards)
    /sandbox/api/addon/event      the signed request for a test to post itself

Loopback clients only, like the control pages.
"""
from __future__ import annotations

import datetime as dt
import html as html_lib
import json
import re
import secrets
import time
import urllib.error
import urllib.request

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for

from sandbox.cards import answer_problems
from sandbox.signing import oidc_token
from sandbox.state import ADDON_SCOPES, Grant, loopback_only, state, summary

bp = Blueprint("addon", __name__)
MESSAGE_TOKEN_SECONDS = 300
USER_TOKEN_AUDIENCE = "sandbox-gmail-addon.apps.googleusercontent.com"


bp.before_request(loopback_only)


def _user_token(owner: str) -> str:
    """An access token of `owner` with the add-on's scopes (Gmail's userOAuthToken)."""
    st = state()
    with st.lock:
        key = f"addon:{owner}"
        if key not in st.grants:
            st.grants[key] = Grant(email=owner, client_id="gmail-addon",
                                   scopes=list(ADDON_SCOPES), refresh_token=key)
        token = "ya29.addon-" + secrets.token_urlsafe(24)
        st.access_tokens[token] = {"email": owner, "scopes": list(ADDON_SCOPES),
                                   "expires": time.time() + 3600, "refresh_token": key}
    return token


def _message_token(owner: str, message_id: str) -> str:
    """Gmail's token for one open message (sent as X-Goog-Gmail-Access-Token)."""
    st = state()
    token = "addon-msg-" + secrets.token_urlsafe(18)
    with st.lock:
        st.addon_message_tokens[token] = {"owner": owner, "message_id": message_id,
                                          "expires": time.time() + MESSAGE_TOKEN_SECONDS}
    return token


def _inputs(values: dict) -> dict:
    """Form inputs as Gmail sends them: text and choices as stringInputs, a date-time
    picker's value ({"ms": ...}) as dateTimeInput."""
    out: dict = {}
    for name, value in (values or {}).items():
        if isinstance(value, dict) and "ms" in value:
            out[name] = {"dateTimeInput": {"msSinceEpoch": str(int(value["ms"])),
                                           "hasDate": True, "hasTime": True}}
        else:
            items = value if isinstance(value, list) else [value]
            out[name] = {"stringInputs": {"value": [str(v) for v in items]}}
    return out


def signed_request(url: str, owner: str, *, message_id: str | None = None,
                   to: list[str] | None = None, parameters: dict | None = None,
                   inputs: dict | None = None, zone: str = "UTC",
                   token: str = "valid") -> tuple[str, dict]:
    """(Authorization header, event object) for a post to `url`, as Gmail makes them.
    `token` spoils the system ID token on purpose: expired, wrong-audience, forged,
    other-account."""
    st = state()
    account = st.addon_service_account
    audience, lifetime = url, 300
    if token == "expired":
        lifetime = -600
    elif token == "wrong-audience":
        audience = url.rsplit("/addon/", 1)[0] + "/addon/other"
    elif token == "other-account":
        account = "someone-else@evil-project.iam.gserviceaccount.com"
    system = oidc_token(audience, account, lifetime)
    if token == "forged":
        head, body, _ = system.split(".")
        claims = json.loads(_unb64(body))
        claims["email"] = account
        system = f"{head}.{_b64(json.dumps({**claims, 'aud': url}).encode())}.AAAA"
    gmail: dict = {"toRecipients": list(to or [])}
    if message_id:
        with st.lock:
            stored = st.messages.get(message_id)
        gmail.update(messageId=message_id, threadId=stored.thread_id if stored else None,
                     accessToken=_message_token(owner, message_id))
    offset = dt.datetime.now(_zone(zone)).utcoffset() or dt.timedelta()
    event = {
        "commonEventObject": {"hostApp": "GMAIL", "platform": "WEB", "userLocale": "en",
                              "timeZone": {"id": zone,
                                           "offset": int(offset.total_seconds() * 1000)},
                              "formInputs": _inputs(inputs or {}),
                              "parameters": {k: str(v) for k, v in
                                             (parameters or {}).items()}},
        "authorizationEventObject": {
            "userOAuthToken": _user_token(owner),
            "userIdToken": oidc_token(USER_TOKEN_AUDIENCE, owner),
            "systemIdToken": system},
        "gmail": gmail,
    }
    return f"Bearer {system}", event


def _zone(name: str):
    from zoneinfo import ZoneInfo
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return dt.UTC


def _b64(data: bytes) -> str:
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    import base64
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@bp.post("/sandbox/api/addon/event")
def api_event():
    """A signed request for a test to post: {"url", "owner", "message_id", "to",
    "parameters", "inputs", "zone", "token"} → {"authorization", "event"}."""
    body = request.get_json(force=True) or {}
    header, event = signed_request(
        str(body["url"]), str(body["owner"]).lower(), message_id=body.get("message_id"),
        to=body.get("to"), parameters=body.get("parameters"), inputs=body.get("inputs"),
        zone=body.get("zone") or "UTC", token=body.get("token") or "valid")
    return jsonify({"authorization": header, "event": event})


# -- the host page ----------------------------------------------------------------------

def _post(url: str, header: str, event: dict) -> tuple[int, object]:
    data = json.dumps(event).encode()
    call = urllib.request.Request(url, data=data, method="POST", headers={
        "Authorization": header, "Content-Type": "application/json",
        "User-Agent": "Google-Workspace-Add-ons (sandbox)"})
    try:
        with urllib.request.urlopen(call, timeout=30) as answer:  # noqa: S310 (loopback)
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return 0, {"error": str(exc)}


def _session(sid: str | None) -> dict:
    st = state()
    with st.lock:
        found = st.addon_sessions.get(sid or "")
    if found is None:
        abort(404)
    return found


def _apply(box: dict, status: int, answer, trigger: bool) -> None:
    """What Gmail does with an answer: the card stack, a notification, the draft."""
    box["notice"], box["problems"] = None, []
    if status != 200:
        box["problems"] = [f"the add-on answered {status}: {json.dumps(answer)[:300]}"]
        return
    box["problems"] = answer_problems(answer)
    if box["problems"]:
        return
    render = answer.get("renderActions") or answer
    action = render.get("action") or {}
    if trigger:
        box["stack"] = []
    for step in action.get("navigations") or []:
        if "pop" in step and box["stack"]:
            box["stack"].pop()
        elif "popToRoot" in step:
            del box["stack"][1:]
        elif "updateCard" in step:
            if box["stack"]:
                box["stack"][-1] = step["updateCard"]
            else:
                box["stack"].append(step["updateCard"])
        elif "pushCard" in step:
            box["stack"].append(step["pushCard"])
    if action.get("notification"):
        box["notice"] = action["notification"]["text"]
    host = render.get("hostAppAction")
    if host:
        body = host["gmailAction"]["updateDraftActionMarkup"]["updateBody"]
        box["draft"]["body"] += "".join(x["content"] for x in body["insertContents"])


@bp.get("/sandbox/addon")
def host_page():
    """The add-on beside a sandbox mailbox: ?owner=ADDRESS&app=APP_URL (a new session), or
    ?sid=... (the one in progress)."""
    st = state()
    sid = request.args.get("sid")
    if sid is None:
        owner = request.args.get("owner", "").strip().lower()
        app_url = request.args.get("app", "").strip().rstrip("/")
        if not owner or not app_url.startswith(("http://", "https://")):
            # Mounted inside the app (`mailrelease run --sandbox`), the app is this host.
            here = request.host_url.rstrip("/") if request.script_root else ""
            return render_template("addon.html", box=None, owner=owner, app=app_url or here)
        sid = secrets.token_urlsafe(12)
        with st.lock:
            st.addon_sessions[sid] = {"owner": owner, "app": app_url, "stack": [],
                                      "notice": None, "problems": [], "context": {},
                                      "draft": {"to": "", "body": ""}, "actions": []}
        return redirect(url_for("addon.host_page", sid=sid))
    box = _session(sid)
    with st.lock:
        mail = [summary(m) for m in sorted(st.mailbox(box["owner"]),
                                           key=lambda m: -m.internal_date)][:30]
    card = box["stack"][-1] if box["stack"] else None
    box["actions"] = []
    shown = _card_view(card, box["actions"]) if card else None
    return render_template("addon.html", box=box, sid=sid, mail=mail, card=shown)


@bp.post("/sandbox/addon/trigger")
def trigger():
    """Open the homepage, a message (contextual trigger) or a draft (compose trigger)."""
    sid = request.form.get("sid")
    box = _session(sid)
    kind = request.form.get("kind", "homepage")
    if kind not in ("homepage", "message", "compose"):
        abort(400)
    context: dict = {}
    if kind == "message":
        context["message_id"] = request.form.get("message_id")
    if kind == "compose":
        box["draft"] = {"to": request.form.get("to", ""), "body": ""}
        context["to"] = [a.strip() for a in box["draft"]["to"].split(",") if a.strip()]
    box["context"] = context
    url = f"{box['app']}/addon/{kind}"
    header, event = signed_request(url, box["owner"], **context)
    status, answer = _post(url, header, event)
    _apply(box, status, answer, trigger=True)
    return redirect(url_for("addon.host_page", sid=sid))


_LOCAL = "%Y-%m-%dT%H:%M"


@bp.post("/sandbox/addon/act")
def act():
    """A card's button: its action posted with the card's inputs and its parameters."""
    sid = request.form.get("sid")
    box = _session(sid)
    try:
        function, parameters = box["actions"][int(request.form.get("a", "-1"))]
    except (ValueError, IndexError):
        abort(400)
    if not function.startswith(box["app"] + "/addon/"):
        abort(400)  # Gmail calls only the deployment's own endpoints
    inputs: dict = {}
    for key, value in request.form.items():
        if key.startswith("i:"):
            inputs[key[2:]] = value
        elif key.startswith("dt:") and value:
            name, _, offset = key[3:].rpartition(":")
            local = dt.datetime.strptime(value[:16], _LOCAL)
            moment = local.replace(tzinfo=dt.timezone(dt.timedelta(minutes=int(offset))))
            inputs[name] = {"ms": int(moment.timestamp() * 1000)}
    header, event = signed_request(function, box["owner"], parameters=parameters,
                                   inputs=inputs, **box["context"])
    status, answer = _post(function, header, event)
    _apply(box, status, answer, trigger=False)
    return redirect(url_for("addon.host_page", sid=sid))


_ALLOWED = re.compile(r"&lt;(/?(?:b|i|u|br|strike))&gt;", re.I)


def _text(value) -> str:
    """Card text as Gmail shows it: a few formatting tags, everything else as text."""
    escaped = html_lib.escape(html_lib.unescape(str(value or "")))
    return _ALLOWED.sub(r"<\1>", escaped)


def _card_view(card: dict, actions: list) -> dict:
    """The card as the page draws it: texts made safe, each button's action numbered."""

    def button(b: dict) -> dict:
        click = b.get("onClick") or {}
        if "openLink" in click:
            return {"text": b.get("text", ""), "link": click["openLink"].get("url")}
        call = click.get("action") or {}
        actions.append((call.get("function", ""),
                        {p["key"]: p["value"] for p in call.get("parameters") or ()}))
        return {"text": b.get("text", ""), "index": len(actions) - 1,
                "filled": b.get("type") == "FILLED"}

    sections = []
    for section in card.get("sections") or ():
        widgets = []
        for w in section.get("widgets") or ():
            kind, body = next(iter(w.items()))
            item: dict = {"kind": kind}
            if kind == "decoratedText":
                item.update(text=_text(body.get("text")), top=_text(body.get("topLabel")),
                            bottom=_text(body.get("bottomLabel")),
                            button=button(body["button"]) if body.get("button") else None)
            elif kind == "textParagraph":
                item["text"] = _text(body.get("text"))
            elif kind == "buttonList":
                item["buttons"] = [button(b) for b in body.get("buttons") or ()]
            elif kind in ("textInput", "selectionInput"):
                item.update(body)
            elif kind == "dateTimePicker":
                offset = int(body.get("timezoneOffsetDate") or 0)
                value = ""
                if body.get("valueMsEpoch"):
                    moment = dt.datetime.fromtimestamp(int(body["valueMsEpoch"]) / 1000,
                                                       dt.timezone(dt.timedelta(minutes=offset)))
                    value = moment.strftime(_LOCAL)
                item.update(name=body.get("name"), label=body.get("label"), value=value,
                            offset=offset)
            widgets.append(item)
        sections.append({"header": section.get("header"), "widgets": widgets})
    header = card.get("header") or {}
    return {"title": header.get("title", ""), "subtitle": header.get("subtitle"),
            "sections": sections}

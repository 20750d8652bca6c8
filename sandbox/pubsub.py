"""Gmail push notifications as the sandbox plays them: `users.watch` / `users.stop`, and
Cloud Pub/Sub's topics and pull subscriptions in Google's wire format (pull, acknowledge,
modifyAckDeadline, redelivery after the ack deadline), with service-account tokens (the
JWT-bearer grant, signatures checked against the keys registered through the control
API). Controls drop, delay or duplicate the next notifications."""
from __future__ import annotations

import base64
import json
import secrets
import threading
import time

from flask import Blueprint, jsonify, request

from sandbox.state import (
    GMAIL_READ_SCOPES,
    Notifications,
    Subscription,
    google_error,
    state,
)

bp = Blueprint("pubsub", __name__)

PUBSUB_SCOPES = {"https://www.googleapis.com/auth/pubsub",
                 "https://www.googleapis.com/auth/cloud-platform"}
WATCH_DAYS = 7
# A pull with nothing to give waits this long for a message before it answers empty.
PULL_WAIT_SECONDS = 1.0


def notifications() -> Notifications:
    return state().pubsub


def mailbox_changed(owner: str, labels: list[str], history_id: int) -> None:
    """A message was added to `owner`'s mailbox: publish to its watch's topic when one of
    the watched labels is on it (called with the sandbox state's lock held)."""
    ps = notifications()
    watch = ps.watches.get(owner)
    if watch is None or watch["expiration"] < time.time() * 1000:
        return
    if watch["labels"] and not set(watch["labels"]) & set(labels):
        return
    data = {"emailAddress": owner, "historyId": history_id}
    if ps.drop > 0:
        ps.drop -= 1
        return
    copies = 2 if ps.duplicate > 0 else 1
    ps.duplicate = max(0, ps.duplicate - 1)

    def publish():
        with ps.arrived:
            for _ in range(copies):
                ps.published += 1
                message = {"data": base64.b64encode(json.dumps(data).encode()).decode(),
                           "messageId": str(10_000 + ps.published),
                           "publishTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "attributes": {}}
                for name, sub in ps.subscriptions.items():
                    if sub.topic != watch["topic"]:
                        continue
                    if sub.push_endpoint:
                        threading.Thread(target=_push, args=(name, sub, message),
                                         daemon=True).start()
                    else:
                        sub.waiting.append(message)
            ps.arrived.notify_all()
    if ps.delay:
        threading.Timer(ps.delay, publish).start()
    else:
        publish()


PUSH_ATTEMPTS = 5


def _push(name: str, sub: Subscription, message: dict) -> None:
    """Post one message to a push endpoint as Pub/Sub does, with an OIDC token for the
    subscription's audience and service account; retried with backoff until a 2xx."""
    import urllib.error
    import urllib.request

    from sandbox.signing import oidc_token
    body = json.dumps({"message": message, "subscription": name}).encode()
    for attempt in range(PUSH_ATTEMPTS):
        token = oidc_token(sub.push_audience or sub.push_endpoint or "",
                           sub.push_service_account or "")
        request_ = urllib.request.Request(
            sub.push_endpoint or "", data=body, method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request_, timeout=10) as answer:
                if 200 <= answer.status < 300:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2 * 2 ** attempt)


def _mailbox_caller(user_id: str):
    from sandbox.gmail import _caller
    return _caller(user_id, GMAIL_READ_SCOPES)


@bp.post("/gmail/v1/users/<user_id>/watch")
def watch(user_id):
    owner, err = _mailbox_caller(user_id)
    if err:
        return err
    body = request.get_json(silent=True) or {}
    topic = str(body.get("topicName") or "")
    if not topic.startswith("projects/") or "/topics/" not in topic:
        return google_error(400, "Invalid topicName", "invalidArgument", "INVALID_ARGUMENT")
    st = state()
    ps = notifications()
    with st.lock:
        if topic not in {s.topic for s in ps.subscriptions.values()} and \
                topic not in st.pubsub_topics:
            return google_error(404, f"Resource not found (resource={topic}).", "notFound",
                                "NOT_FOUND")
        if topic in st.pubsub_denied_topics:
            return google_error(403, "User not authorized to perform this action.",
                                "forbidden", "PERMISSION_DENIED")
        expiration = int((time.time() + WATCH_DAYS * 86400) * 1000)
        labels = [str(x) for x in body.get("labelIds") or ()]
        if body.get("labelFilterBehavior", "include") == "exclude":
            return google_error(400, "the sandbox plays labelFilterBehavior include only",
                                "invalidArgument", "INVALID_ARGUMENT")
        ps.watches[owner] = {"topic": topic, "labels": labels, "expiration": expiration}
        history = st.next_history()
    return jsonify({"historyId": str(history), "expiration": str(expiration)})


@bp.post("/gmail/v1/users/<user_id>/stop")
def stop(user_id):
    owner, err = _mailbox_caller(user_id)
    if err:
        return err
    st = state()
    with st.lock:
        notifications().watches.pop(owner, None)
    return "", 204


def _service_account():
    """The service account a Pub/Sub request's Bearer token was issued to, or an error."""
    st = state()
    header = request.headers.get("Authorization", "")
    with st.lock:
        info = st.access_tokens.get(header[7:]) if header.startswith("Bearer ") else None
    if info is None or not info.get("service_account") or info["expires"] < time.time():
        return None, google_error(401, "Request had invalid authentication credentials.",
                                  "authError", "UNAUTHENTICATED")
    if not PUBSUB_SCOPES & set(info["scopes"]):
        return None, google_error(403, "Request had insufficient authentication scopes.",
                                  "insufficientPermissions", "PERMISSION_DENIED")
    return info["email"], None


def _subscription(project: str, name: str):
    full = f"projects/{project}/subscriptions/{name}"
    sub = notifications().subscriptions.get(full)
    if sub is None:
        return None, google_error(404, f"Resource not found (resource={name}).", "notFound",
                                  "NOT_FOUND")
    return sub, None


@bp.post("/v1/projects/<project>/subscriptions/<name>:pull")
def pull(project, name):
    _, err = _service_account()
    if err:
        return err
    ps = notifications()
    body = request.get_json(silent=True) or {}
    most = max(1, min(1000, int(body.get("maxMessages") or 100)))
    deadline = time.monotonic() + PULL_WAIT_SECONDS
    with ps.arrived:
        sub, err = _subscription(project, name)
        if err:
            return err
        while True:
            now = time.time()
            for ack_id, (message, due) in list(sub.out.items()):
                if due < now:  # not acknowledged in time: delivered again
                    del sub.out[ack_id]
                    sub.waiting.append(message)
            if sub.waiting or time.monotonic() >= deadline:
                break
            ps.arrived.wait(timeout=max(0.0, deadline - time.monotonic()))
        given = []
        for message in sub.waiting[:most]:
            ack_id = secrets.token_urlsafe(12)
            sub.out[ack_id] = (message, time.time() + sub.ack_deadline)
            sub.delivered += 1
            given.append({"ackId": ack_id, "message": message,
                          "deliveryAttempt": sub.delivered})
        del sub.waiting[:len(given)]
    return jsonify({"receivedMessages": given} if given else {})


@bp.post("/v1/projects/<project>/subscriptions/<name>:acknowledge")
def acknowledge(project, name):
    _, err = _service_account()
    if err:
        return err
    ps = notifications()
    with ps.arrived:
        sub, err = _subscription(project, name)
        if err:
            return err
        for ack_id in (request.get_json(silent=True) or {}).get("ackIds") or ():
            sub.out.pop(str(ack_id), None)
    return jsonify({})


@bp.post("/v1/projects/<project>/subscriptions/<name>:modifyAckDeadline")
def modify_ack_deadline(project, name):
    _, err = _service_account()
    if err:
        return err
    ps = notifications()
    body = request.get_json(silent=True) or {}
    seconds = int(body.get("ackDeadlineSeconds") or 0)
    with ps.arrived:
        sub, err = _subscription(project, name)
        if err:
            return err
        for ack_id in body.get("ackIds") or ():
            if str(ack_id) in sub.out:
                message, _ = sub.out[str(ack_id)]
                if seconds == 0:  # "nack": deliver again at once
                    del sub.out[str(ack_id)]
                    sub.waiting.append(message)
                else:
                    sub.out[str(ack_id)] = (message, time.time() + seconds)
        ps.arrived.notify_all()
    return jsonify({})


def add_subscription(name: str, topic: str, ack_deadline: int = 10,
                     push: dict | None = None) -> None:
    """A subscription on a topic (the control API's; Google's console makes them): pull,
    or push with {"endpoint", "audience", "service_account"}."""
    st = state()
    ps = notifications()
    with st.lock:
        st.pubsub_topics.add(topic)
        ps.subscriptions[name] = Subscription(
            topic=topic, ack_deadline=ack_deadline,
            push_endpoint=(push or {}).get("endpoint"),
            push_audience=(push or {}).get("audience"),
            push_service_account=(push or {}).get("service_account"))

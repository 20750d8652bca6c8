"""Cloud Pub/Sub, as the worker reads Gmail's push notifications: a pull subscription
through google-api-python-client's bundled pubsub v1 discovery document, authenticated as
a service account (its JSON key; the key's `token_uri` is honoured, so a stand-in can
issue the tokens). One `PubSub` per thread (httplib2 is not thread-safe)."""
from __future__ import annotations

import base64
import functools
import http.client
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import google_auth_httplib2
import httplib2
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2 import service_account
from googleapiclient import discovery_cache
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError

from gmail_client.errors import GmailError, TransientGmailError, from_http_error

log = logging.getLogger("mailrelease.pubsub")

SCOPE = "https://www.googleapis.com/auth/pubsub"


@dataclass(frozen=True)
class Notification:
    """One Gmail notification: the mailbox and its history id when something changed."""

    ack_id: str
    email: str
    history_id: str | None


def gmail_notification(message) -> tuple[str, str | None] | None:
    """(mailbox, history id) of a Pub/Sub message Gmail published (its `data`: base64
    JSON of emailAddress and historyId), pulled or pushed; None for anything else."""
    try:
        data = json.loads(base64.b64decode(message["data"]))
        history = data.get("historyId")
        return str(data["emailAddress"]).lower(), str(history) if history is not None \
            else None
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


@functools.lru_cache(maxsize=4)
def _subscriptions(api_endpoint: str | None):
    options = {"api_endpoint": api_endpoint} if api_endpoint else None
    doc = json.loads(discovery_cache.get_static_doc("pubsub", "v1"))
    return build_from_document(doc, http=httplib2.Http(), client_options=options
                               ).projects().subscriptions()


class PubSub:
    """Pull, acknowledge and extend the messages of one subscription."""

    def __init__(self, key_file: Path, subscription: str, *, api_endpoint: str | None = None,
                 timeout: float = 30.0):
        credentials = service_account.Credentials.from_service_account_file(
            str(key_file), scopes=[SCOPE])
        self.subscription = subscription
        self._http = google_auth_httplib2.AuthorizedHttp(credentials,
                                                         http=httplib2.Http(timeout=timeout))
        self._subs = _subscriptions(api_endpoint)

    def _call(self, request) -> dict:
        try:
            return request.execute(http=self._http, num_retries=1) or {}
        except HttpError as exc:
            raise from_http_error(exc) from exc
        except (RefreshError, TransportError, OSError, httplib2.HttpLib2Error,
                http.client.HTTPException) as exc:
            raise TransientGmailError(f"Pub/Sub unreachable: {exc!r}",
                                      reason="network") from exc

    def pull(self, most: int = 100) -> list[Notification]:
        """What the subscription has (waiting a moment when it has nothing)."""
        found = self._call(self._subs.pull(subscription=self.subscription,
                                           body={"maxMessages": most}))
        out = []
        for received in found.get("receivedMessages") or ():
            ack_id = received.get("ackId", "")
            read = gmail_notification(received.get("message"))
            if read is None:
                # Not one of Gmail's: acknowledged so that it does not come back forever.
                log.warning("action=pubsub_unreadable ack_id=%s", ack_id[:12])
            out.append(Notification(ack_id, *(read or ("", None))))
        return out

    def acknowledge(self, ack_ids: list[str]) -> None:
        """Done with these: Pub/Sub will not deliver them again."""
        if ack_ids:
            self._call(self._subs.acknowledge(subscription=self.subscription,
                                              body={"ackIds": ack_ids}))

    def extend(self, ack_ids: list[str], seconds: int) -> None:
        """More time before these are delivered again (0: deliver them again now)."""
        if ack_ids:
            self._call(self._subs.modifyAckDeadline(
                subscription=self.subscription,
                body={"ackIds": ack_ids, "ackDeadlineSeconds": seconds}))


__all__ = ["PubSub", "Notification", "GmailError"]

"""The Gmail API calls mailrelease makes, through google-api-python-client.

One `GmailService` wraps one account's credentials. httplib2 is not thread-safe, so every
thread that uses an account must hold its own instance (see `scheduler.engine.connections`).
"""
from __future__ import annotations

import base64
import functools
import http.client
import io
import json
import logging
import ssl
from urllib.parse import urlsplit, urlunsplit

import google_auth_httplib2
import httplib2
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2.credentials import Credentials
from googleapiclient import discovery_cache
from googleapiclient.discovery import build_from_document
from googleapiclient.errors import HttpError, MediaUploadSizeError
from googleapiclient.http import MediaIoBaseUpload

from gmail_client.errors import (
    AmbiguousSendError,
    GmailError,
    HistoryExpired,
    PermanentGmailError,
    ReconnectNeeded,
    TransientGmailError,
    from_http_error,
)

log = logging.getLogger("mailrelease.gmail")

DEFAULT_TIMEOUT = 30.0
# Reads are idempotent, so the library may retry them; sends never (see send()).
READ_RETRIES = 2
_AMBIGUOUS_SEND_STATUSES = {500, 502, 504}
# Above this a message goes through the /upload URI as a resumable upload (Google's
# advice for anything past a few MB; the JSON `raw` field costs base64 on top of base64);
# Gmail takes up to 35 MB there.
UPLOAD_ABOVE_BYTES = 3 * 1024 * 1024
MAX_MESSAGE_BYTES = 35 * 1024 * 1024
_SENDS = ("POST", "PUT")  # a resumable upload's PUT is the request that sends


class SendOnceHttp(httplib2.Http):
    """httplib2 that tries a POST exactly once, on a fresh connection.

    Stock httplib2 re-sends a request whose connection dropped before the status line came
    back (its 'stale keep-alive connection' rule, applied whatever RETRIES says). For
    messages.send that delivers the email twice whenever Gmail accepted the first one and the
    answer was lost. A POST here raises instead, and the engine reconciles by Message-ID.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A 308 answers a resumable upload's progress and is not a redirect (as the
        # library's own build_http() sets it).
        self.redirect_codes = self.redirect_codes - {308}

    def _conn_request(self, conn, request_uri, method, body, headers):
        if method not in _SENDS:
            return super()._conn_request(conn, request_uri, method, body, headers)
        # A fresh socket: a stale pooled one must not be mistaken for a lost answer.
        conn.close()
        try:
            conn.request(method, request_uri, body, headers)
            response = conn.getresponse()
            content = response.read()
        except BaseException:
            conn.close()
            raise
        # Sends ask for an identity encoding (see GmailService.send): nothing to decompress.
        return httplib2.Response(response), content


@functools.lru_cache(maxsize=1)
def _gmail_discovery() -> dict:
    """The Gmail v1 discovery document bundled with the library, parsed once per process.

    Parsing it per service cost 6.6 ms and 412 KB; sharing it, 0.3 ms and 3 KB.
    """
    return json.loads(discovery_cache.get_static_doc("gmail", "v1"))


def _map_refresh_error(exc: RefreshError) -> GmailError:
    """Only Google's word that the grant is gone (`invalid_grant`) needs the user.

    Anything else from the token endpoint (a 502 page, a 5xx google-auth gave up retrying,
    a body that is not OAuth's) is an outage: transient, retried with backoff, and the
    account stays connected. A 401 from Gmail after a refresh is mapped elsewhere.
    """
    text = str(exc)
    details = exc.args[1] if len(exc.args) > 1 else None
    code = details.get("error") if isinstance(details, dict) else None
    if code == "invalid_grant" or (code is None and "invalid_grant" in text):
        return ReconnectNeeded(f"Google refused to refresh the grant: {text}",
                               status=400, reason="invalid_grant")
    return TransientGmailError(f"token refresh failed: {text}", reason="refresh")


class _NoDefaultHttp(httplib2.Http):
    """The shared resource's own Http: every request must bring its account's Http."""

    def request(self, *args, **kwargs):
        raise RuntimeError("a Gmail request was executed without its account's http")


@functools.lru_cache(maxsize=8)
def _gmail_methods(api_endpoint: str | None):
    """users(), its messages() and drafts() of one Gmail resource per endpoint, shared.

    Building a resource from the discovery document costs ~5 ms, and a service per account
    per thread was 5% of a 100-account worker's CPU. Making a request reads nothing mutable
    from the resource, and every execute() here passes the account's own Http.
    """
    options = {"api_endpoint": api_endpoint} if api_endpoint else None
    service = build_from_document(_gmail_discovery(), http=_NoDefaultHttp(),
                                  client_options=options)
    users = service.users()
    return (users, users.messages(), users.drafts(), users.history(), users.threads(),
            users.settings().sendAs())


class GmailService:
    """Gmail API for one account on one thread."""

    def __init__(self, credentials: Credentials, *, api_endpoint: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT):
        self.credentials = credentials
        self._api_endpoint = api_endpoint
        self._http = google_auth_httplib2.AuthorizedHttp(credentials,
                                                         http=SendOnceHttp(timeout=timeout))
        (self._users, self._messages, self._drafts, self._history, self._threads,
         self._send_as) = _gmail_methods(api_endpoint)

    @property
    def token(self) -> str | None:
        """The current access token (it changes when google-auth refreshes it)."""
        return self.credentials.token

    def _read(self, request):
        try:
            return request.execute(http=self._http, num_retries=READ_RETRIES)
        except HttpError as exc:
            raise from_http_error(exc) from exc
        except RefreshError as exc:
            raise _map_refresh_error(exc) from exc
        except (TransportError, OSError, httplib2.HttpLib2Error, http.client.HTTPException) as exc:
            raise TransientGmailError(f"network error: {exc!r}", reason="network") from exc

    def profile(self) -> dict:
        """users.getProfile: emailAddress, messagesTotal, threadsTotal, historyId."""
        return self._read(self._users.getProfile(userId="me"))

    def send(self, raw_message: bytes, thread_id: str | None = None) -> dict:
        """messages.send; returns {id, threadId, labelIds}. Up to UPLOAD_ABOVE_BYTES the
        message goes in the JSON `raw` field, above it through the upload URI.

        No library retries: a retried send after a timeout can deliver twice. Outcomes where
        the request may have reached Gmail raise AmbiguousSendError for the caller to reconcile.
        """
        if len(raw_message) > UPLOAD_ABOVE_BYTES:
            return self._send_upload(raw_message, thread_id)
        body = {"raw": base64.urlsafe_b64encode(raw_message).decode("ascii")}
        if thread_id:
            body["threadId"] = thread_id
        request = self._messages.send(userId="me", body=body)
        request.headers["accept-encoding"] = "identity"
        return self._sending(lambda: request.execute(http=self._http, num_retries=0))

    def _send_upload(self, raw_message: bytes, thread_id: str | None) -> dict:
        """A resumable upload in one chunk: a POST begins the session (nothing is sent
        yet: any failure there is safe to retry), the PUT of the message sends it."""
        media = MediaIoBaseUpload(io.BytesIO(raw_message), mimetype="message/rfc822",
                                  chunksize=-1, resumable=True)
        try:
            request = self._messages.send(userId="me", body={"threadId": thread_id}
                                          if thread_id else {}, media_body=media)
        except MediaUploadSizeError as exc:
            raise PermanentGmailError(f"the message is {len(raw_message)} bytes, above "
                                      f"the {MAX_MESSAGE_BYTES} Gmail takes", status=413,
                                      reason="uploadTooLarge") from exc
        request.headers["accept-encoding"] = "identity"
        if self._api_endpoint:
            # The library moves an upload to the endpoint's host but keeps https.
            root = urlsplit(self._api_endpoint)
            request.uri = urlunsplit(urlsplit(request.uri)._replace(scheme=root.scheme,
                                                                    netloc=root.netloc))

        def upload() -> dict:
            result = None
            while result is None:
                try:
                    _, result = request.next_chunk(http=self._http, num_retries=0)
                except HttpError as exc:
                    if request.resumable_uri is None:  # refused before anything was sent
                        raise from_http_error(exc) from exc
                    raise
                except (TimeoutError, ConnectionError, ssl.SSLError, httplib2.HttpLib2Error,
                        http.client.HTTPException, OSError) as exc:
                    if request.resumable_uri is None:  # the session never began
                        raise TransientGmailError(f"upload not begun: {exc!r}",
                                                  reason="network") from exc
                    raise
            return result
        return self._sending(upload)

    @staticmethod
    def _sending(call) -> dict:
        """Run a send, mapping its errors to what the engine does next."""
        try:
            return call()
        except HttpError as exc:
            mapped = from_http_error(exc)
            if exc.resp is not None and int(exc.resp.status) in _AMBIGUOUS_SEND_STATUSES:
                raise AmbiguousSendError(str(mapped), status=mapped.status,
                                         reason=mapped.reason) from exc
            raise mapped from exc
        except RefreshError as exc:
            raise _map_refresh_error(exc) from exc
        except ConnectionRefusedError as exc:
            # Nothing was written: safe to retry as an ordinary transient error.
            raise TransientGmailError(f"connection refused: {exc}", reason="network") from exc
        except TransportError as exc:
            # Raised while refreshing the token, before the send request went out.
            raise TransientGmailError(f"token refresh failed: {exc}", reason="refresh") from exc
        except (TimeoutError, ConnectionError, ssl.SSLError, httplib2.HttpLib2Error,
                http.client.HTTPException, OSError) as exc:
            raise AmbiguousSendError(f"send outcome unknown: {exc!r}", reason="network") from exc

    def find_by_rfc822_id(self, message_id: str) -> list[dict]:
        """Messages in the mailbox whose Message-ID header is `message_id` (needs read scope)."""
        bare = message_id.strip().strip("<>")
        result = self._read(self._messages.list(
            userId="me", q=f"rfc822msgid:{bare}", includeSpamTrash=True, maxResults=10))
        return result.get("messages", [])

    def get_message(self, message_id: str, fmt: str = "metadata") -> dict:
        """messages.get in the given format (minimal, metadata, full, raw)."""
        return self._read(self._messages.get(
            userId="me", id=message_id, format=fmt))

    def current_message(self, message_id: str, access_token: str,
                        fmt: str = "full") -> dict:
        """messages.get of the message a Gmail add-on has open: on the user's add-on
        token, with the per-message token Gmail gave the add-on (X-Goog-Gmail-Access-Token,
        scope gmail.addons.current.message.readonly)."""
        request = self._messages.get(userId="me", id=message_id, format=fmt)
        request.headers["X-Goog-Gmail-Access-Token"] = access_token
        return self._read(request)

    def list_drafts(self, max_results: int = 25) -> list[dict]:
        """The account's newest drafts as [{id, message: {id, threadId}}]."""
        return self._read(self._drafts.list(
            userId="me", maxResults=max_results)).get("drafts", [])

    def get_draft(self, draft_id: str, fmt: str = "raw") -> dict:
        """drafts.get: {id, message} with the message in the given format."""
        return self._read(self._drafts.get(userId="me", id=draft_id, format=fmt))

    def history(self, start_history_id: str) -> tuple[list[str], str | None]:
        """Ids of messages added since `start_history_id`, and the mailbox's newest history id.

        Raises HistoryExpired when Gmail no longer has history that old (then search).
        """
        ids: list[str] = []
        latest, page = None, None
        while True:
            try:
                result = self._read(self._history.list(
                    userId="me", startHistoryId=start_history_id,
                    historyTypes=["messageAdded"], maxResults=500, pageToken=page))
            except GmailError as exc:
                if exc.status == 404:
                    raise HistoryExpired(str(exc), status=404, reason="notFound") from exc
                raise
            for record in result.get("history", []):
                for added in record.get("messagesAdded", []):
                    ids.append(added["message"]["id"])
            latest = result.get("historyId", latest)
            page = result.get("nextPageToken")
            if not page:
                return ids, latest

    def list_threads(self, query: str = "", max_results: int = 20) -> list[dict]:
        """threads.list: [{id, snippet, historyId}], most recent activity first."""
        return self._read(self._threads.list(userId="me", q=query or None,
                                             maxResults=max_results)).get("threads", [])

    def get_thread(self, thread_id: str, headers: tuple[str, ...] = ()) -> dict:
        """threads.get with each message's metadata (only `headers` when given)."""
        return self._read(self._threads.get(userId="me", id=thread_id, format="metadata",
                                            metadataHeaders=list(headers) or None))

    def get_conversation(self, thread_id: str) -> dict:
        """threads.get with each message in full (headers and body parts)."""
        return self._read(self._threads.get(userId="me", id=thread_id, format="full"))

    def watch(self, topic: str, label_ids: tuple[str, ...] = ("INBOX",)) -> dict:
        """users.watch: Gmail publishes to `topic` when a message with one of `label_ids`
        changes (INBOX: what arrives, not our own sends, which would spend the mailbox's
        one-notification-a-second budget). Returns {historyId, expiration} (ms)."""
        return self._read(self._users.watch(userId="me", body={
            "topicName": topic, "labelIds": list(label_ids),
            "labelFilterBehavior": "include"}))

    def stop_watch(self) -> None:
        """users.stop: no more notifications for this mailbox."""
        self._read(self._users.stop(userId="me"))

    def send_as(self) -> list[dict]:
        """settings.sendAs.list: the primary address and "Send mail as" aliases."""
        return self._read(self._send_as.list(userId="me")).get("sendAs", [])

    def search(self, query: str, max_results: int = 500) -> list[str]:
        """Ids of messages matching a Gmail search, newest first."""
        result = self._read(self._messages.list(userId="me", q=query,
                                                maxResults=max_results))
        return [m["id"] for m in result.get("messages", [])]

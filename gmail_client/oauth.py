"""Google OAuth for a web app: the authorization-code flow with PKCE, and stored credentials.

The OAuth client comes from a Google ``credentials.json``; its ``auth_uri`` and ``token_uri``
are honoured, so a local stand-in for Google can replace the real endpoints.
"""
from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import urllib3
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow

SCOPE_SEND = "https://www.googleapis.com/auth/gmail.send"
SCOPE_COMPOSE = "https://www.googleapis.com/auth/gmail.compose"
SCOPE_READONLY = "https://www.googleapis.com/auth/gmail.readonly"
# Broader scopes that include what the narrower ones grant.
_SEND_SCOPES = {SCOPE_SEND, SCOPE_COMPOSE, "https://www.googleapis.com/auth/gmail.modify",
                "https://mail.google.com/"}
_READ_SCOPES = {SCOPE_READONLY, "https://www.googleapis.com/auth/gmail.modify",
                "https://mail.google.com/"}
_COMPOSE_SCOPES = {SCOPE_COMPOSE, "https://www.googleapis.com/auth/gmail.modify",
                   "https://mail.google.com/"}


class CredentialsFileError(Exception):
    """The OAuth client file is missing or not in Google's format."""


SCOPE_OPENID = "openid"
SCOPE_EMAIL = "https://www.googleapis.com/auth/userinfo.email"


def scopes_for(mode: str) -> list[str]:
    """The scopes to request: ``full`` (send, compose, readonly) or ``send-only``.

    Both also ask for ``openid email`` (not sensitive): users.getProfile does not accept
    gmail.send alone, so when read and compose are not granted the address comes from the
    ID token instead.
    """
    if mode == "send-only":
        return [SCOPE_OPENID, SCOPE_EMAIL, SCOPE_SEND]
    if mode in ("", "full"):
        return [SCOPE_OPENID, SCOPE_EMAIL, SCOPE_SEND, SCOPE_COMPOSE, SCOPE_READONLY]
    raise ValueError(f"MAILRELEASE_GMAIL_SCOPES must be 'full' or 'send-only', not {mode!r}")


def can_send(scopes: list[str] | set[str]) -> bool:
    """True when the granted scopes allow messages.send."""
    return bool(_SEND_SCOPES & set(scopes))


def can_read(scopes: list[str] | set[str]) -> bool:
    """True when the granted scopes allow reading the mailbox (reconciliation, bounces)."""
    return bool(_READ_SCOPES & set(scopes))


def can_compose(scopes: list[str] | set[str]) -> bool:
    """True when the granted scopes allow drafts."""
    return bool(_COMPOSE_SCOPES & set(scopes))


@dataclass(frozen=True)
class ClientConfig:
    """An OAuth client as read from credentials.json (the ``web`` or ``installed`` section)."""

    kind: str
    client_id: str
    client_secret: str
    auth_uri: str
    token_uri: str
    redirect_uris: tuple[str, ...]

    def as_google_dict(self) -> dict:
        """The dict shape google-auth-oauthlib expects."""
        return {self.kind: {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "auth_uri": self.auth_uri,
            "token_uri": self.token_uri,
            "redirect_uris": list(self.redirect_uris),
        }}


def load_client_config(path: str | os.PathLike) -> ClientConfig:
    """Read and check a Google OAuth client file; raise CredentialsFileError naming the problem."""
    p = Path(path)
    if not p.is_file():
        raise CredentialsFileError(f"{p} does not exist")
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CredentialsFileError(f"{p} is not valid JSON: {exc}") from exc
    kind = "web" if "web" in raw else "installed" if "installed" in raw else None
    if kind is None:
        raise CredentialsFileError(f"{p} has neither a 'web' nor an 'installed' section")
    section = raw[kind]
    missing = [k for k in ("client_id", "client_secret", "auth_uri", "token_uri")
               if not section.get(k)]
    if missing:
        raise CredentialsFileError(f"{p} lacks {', '.join(missing)} in its '{kind}' section")
    return ClientConfig(
        kind=kind,
        client_id=section["client_id"],
        client_secret=section["client_secret"],
        auth_uri=section["auth_uri"],
        token_uri=section["token_uri"],
        redirect_uris=tuple(section.get("redirect_uris", [])),
    )


def is_loopback_url(url: str) -> bool:
    """True for http(s) URLs on 127.0.0.0/8, ::1 or localhost."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_OAUTHLIB_SWITCHES = threading.Lock()


@contextmanager
def _oauthlib_allowing(*urls: str) -> Iterator[None]:
    """oauthlib takes two switches from the environment only: plain http (refused unless
    every http URL involved is on loopback) and a grant of fewer scopes than asked (we read
    what was granted instead of raising). They are set for the one call and put back."""
    plain = [u for u in urls if urlsplit(u).scheme == "http"]
    for url in plain:
        if not is_loopback_url(url):
            raise CredentialsFileError(
                f"{url} uses plain http; only loopback hosts may (use https)")
    wanted = {"OAUTHLIB_RELAX_TOKEN_SCOPE": "1"}
    if plain:
        wanted["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    with _OAUTHLIB_SWITCHES:
        before = {name: os.environ.get(name) for name in wanted}
        os.environ.update(wanted)
        try:
            yield
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@dataclass(frozen=True)
class AuthorizationStart:
    """Where to send the browser, and what to keep in the session until the callback."""

    url: str
    state: str
    code_verifier: str


def start_authorization(client: ClientConfig, scopes: list[str], redirect_uri: str,
                        login_hint: str | None = None) -> AuthorizationStart:
    """Build Google's consent URL with state, PKCE (S256) and offline access."""
    flow = Flow.from_client_config(client.as_google_dict(), scopes=scopes,
                                   redirect_uri=redirect_uri)
    extra = {"login_hint": login_hint} if login_hint else {}
    with _oauthlib_allowing(redirect_uri, client.auth_uri, client.token_uri):
        url, state = flow.authorization_url(access_type="offline",
                                            include_granted_scopes="true", prompt="consent",
                                            **extra)
    return AuthorizationStart(url=url, state=state, code_verifier=flow.code_verifier)


def finish_authorization(client: ClientConfig, scopes: list[str], redirect_uri: str,
                         state: str, code_verifier: str,
                         authorization_response: str) -> Credentials:
    """Exchange the callback's code for tokens; oauthlib checks `state` against ours."""
    flow = Flow.from_client_config(client.as_google_dict(), scopes=scopes,
                                   redirect_uri=redirect_uri, state=state,
                                   code_verifier=code_verifier)
    with _oauthlib_allowing(redirect_uri, client.auth_uri, client.token_uri,
                            authorization_response):
        flow.fetch_token(authorization_response=authorization_response)
    return flow.credentials


def can_read_profile(scopes: list[str] | set[str]) -> bool:
    """True when users.getProfile is allowed (it is not with gmail.send alone)."""
    return bool((_READ_SCOPES | _COMPOSE_SCOPES) & set(scopes))


def email_from_id_token(id_token: str | None) -> str | None:
    """The verified address in an ID token received straight from the token endpoint.

    OpenID Connect lets a client that got the token directly from the token endpoint over
    TLS skip checking its signature, so the claims are only decoded here.
    """
    if not id_token or id_token.count(".") != 2:
        return None
    payload = id_token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError):
        return None
    if claims.get("email") and claims.get("email_verified", True) in (True, "true"):
        return claims["email"]
    return None


def granted_scopes(creds: Credentials) -> list[str]:
    """The scopes Google actually granted (not the ones we asked for)."""
    granted = getattr(creds, "granted_scopes", None) or creds.scopes or []
    if isinstance(granted, str):
        granted = granted.split()
    return sorted(set(granted))


def credentials_to_info(creds: Credentials) -> dict:
    """The secret part of a grant, to be encrypted at rest; the client secret is not kept."""
    expiry = creds.expiry
    return {
        "token": creds.token,
        "refresh_token": creds.refresh_token,
        "expiry": expiry.replace(tzinfo=None).isoformat() if expiry else None,
        "scopes": granted_scopes(creds),
    }


def credentials_from_info(info: dict, client: ClientConfig) -> Credentials:
    """Rebuild refreshable Credentials from stored info and the current OAuth client."""
    expiry = info.get("expiry")
    creds = Credentials(
        token=info.get("token"),
        refresh_token=info.get("refresh_token"),
        token_uri=client.token_uri,
        client_id=client.client_id,
        client_secret=client.client_secret,
        scopes=info.get("scopes") or None,
    )
    if expiry:
        # google-auth compares expiry as naive UTC.
        creds.expiry = dt.datetime.fromisoformat(expiry).replace(tzinfo=None)
    return creds


GOOGLE_REVOKE_URI = "https://oauth2.googleapis.com/revoke"


def revoke_uri(client: ClientConfig) -> str:
    """Google's revocation endpoint, or the one beside a stand-in's token endpoint."""
    if client.token_uri.startswith("https://oauth2.googleapis.com/"):
        return GOOGLE_REVOKE_URI
    base = client.token_uri.rsplit("/", 1)[0]
    return f"{base}/revoke"


def revoke(client: ClientConfig, token: str, timeout: float = 10.0) -> bool:
    """Revoke a refresh (or access) token at Google; True when Google accepted it.

    A token Google no longer knows is answered 400, which is the same outcome for us.
    """
    url = revoke_uri(client)
    if urlsplit(url).scheme != "https" and not is_loopback_url(url):
        raise CredentialsFileError(f"{url} uses plain http; only loopback hosts may")
    resp = urllib3.request("POST", url, body=urlencode({"token": token}),
                           headers={"Content-Type": "application/x-www-form-urlencoded"},
                           timeout=timeout, retries=False)
    return resp.status == 200

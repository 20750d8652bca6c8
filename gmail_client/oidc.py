"""Google's OIDC tokens (Pub/Sub push, Workspace add-ons), verified with google-auth against
Google's signing certificates, read from a configurable URL and kept for a few minutes."""
from __future__ import annotations

import threading
import time

import requests
from google.auth import exceptions, jwt

ISSUERS = ("accounts.google.com", "https://accounts.google.com")
CERTS_SECONDS = 300.0


class InvalidToken(Exception):
    """The token is not one Google signed for this audience and account."""


class GoogleTokens:
    """Verifies ID tokens; one per process (the certificates are shared)."""

    def __init__(self, certs_url: str, timeout: float = 10.0):
        self.certs_url = certs_url
        self.timeout = timeout
        self._certs: dict[str, str] = {}
        self._read = 0.0
        self._lock = threading.Lock()

    def _current(self, refresh: bool = False) -> dict[str, str]:
        with self._lock:
            if refresh or time.monotonic() - self._read > CERTS_SECONDS or not self._certs:
                answer = requests.get(self.certs_url, timeout=self.timeout)
                answer.raise_for_status()
                self._certs, self._read = answer.json(), time.monotonic()
            return self._certs

    def verify(self, token: str, audience: str, email: str) -> dict:
        """The token's claims, when Google signed it (RS256, a known key), for `audience`,
        not expired, from Google's issuer, for the verified `email`; InvalidToken else."""
        claims = self._decode(token, audience)
        if str(claims.get("email", "")).lower() != email.lower():
            raise InvalidToken("not from the expected service account")
        return claims

    def identify(self, token: str) -> str:
        """The verified email address an ID token Google signed names (an add-on event's
        userIdToken). Its audience is not checked: the request carrying it is verified
        for this endpoint by `verify` first."""
        return str(self._decode(token, None)["email"]).lower()

    def _decode(self, token: str, audience: str | None) -> dict:
        for refresh in (False, True):  # a key Google rotated in since the last read
            try:
                claims = jwt.decode(token, certs=self._current(refresh), audience=audience)
                break
            except exceptions.MalformedError as exc:
                raise InvalidToken(f"malformed token: {exc}") from None
            except ValueError as exc:
                if refresh or "Certificate for key id" not in str(exc):
                    raise InvalidToken(str(exc)) from None
            except requests.RequestException as exc:
                raise InvalidToken(f"Google's certificates could not be read: {exc}") from None
        if claims.get("iss") not in ISSUERS:
            raise InvalidToken("not issued by Google")
        if not claims.get("email") or claims.get("email_verified") is not True:
            raise InvalidToken("no verified email address")
        return claims

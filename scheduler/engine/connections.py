"""The Gmail factory: a GmailService for an account, built one way everywhere (the
configured API root and timeout), per thread where threads share accounts (httplib2 is
not thread-safe), and its refreshed access token kept."""
from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable

from google.oauth2.credentials import Credentials

from gmail_client.api import GmailService
from gmail_client.oauth import (
    ClientConfig,
    CredentialsFileError,
    credentials_from_info,
    credentials_to_info,
)
from scheduler.audience import accounts
from scheduler.errors import InvalidInput
from scheduler.settings import Settings
from scheduler.store.crypto import TokenCipher
from scheduler.store.models import GmailAccount

PER_THREAD_ACCOUNTS = 32


class ServicePool:
    """Hands each thread its own GmailService for an account, rebuilt when tokens change.

    Each thread keeps its most recently used accounts only, so threads x accounts never
    means as many open connections.
    """

    def __init__(self, client: ClientConfig, api_endpoint: str | None, timeout: float):
        self.client = client
        self.api_endpoint = api_endpoint
        self.timeout = timeout
        self._local = threading.local()

    def get(self, account_id: int, token_info: dict) -> GmailService:
        """This thread's service for the account; `token_info` is the decrypted grant."""
        cache: OrderedDict = self._local.__dict__.setdefault("services", OrderedDict())
        # The credentials refresh themselves; only a new grant (reconnect) needs a rebuild.
        grant = token_info.get("refresh_token")
        hit = cache.get(account_id)
        if hit is not None and hit[0] == grant:
            cache.move_to_end(account_id)
            return hit[1]
        service = GmailService(credentials_from_info(token_info, self.client),
                               api_endpoint=self.api_endpoint, timeout=self.timeout)
        cache[account_id] = (grant, service)
        cache.move_to_end(account_id)
        while len(cache) > PER_THREAD_ACCOUNTS:
            cache.popitem(last=False)
        return service

    @staticmethod
    def refreshed_info(service: GmailService, before: dict) -> dict | None:
        """The new grant to store when google-auth refreshed the access token, else None.

        Google leaves the refresh token out of a refresh answer: the one we had is kept.
        """
        if not service.token or service.token == before.get("token"):
            return None
        info = credentials_to_info(service.credentials)
        if not info.get("refresh_token"):
            info["refresh_token"] = before.get("refresh_token")
        return info


class Gmail:
    """Gmail services for the web requests, the release and the mailbox sync of one process.

    `oauth` gives the OAuth client (and raises CredentialsFileError while there is none).
    """

    def __init__(self, settings: Settings, cipher: TokenCipher,
                 oauth: Callable[[], ClientConfig]):
        self.settings = settings
        self.cipher = cipher
        self.oauth = oauth
        self._pool: ServicePool | None = None
        self._lock = threading.Lock()

    def client_problem(self) -> str | None:
        """Why no OAuth client can be had (credentials.json), or None when one can."""
        try:
            self.oauth()
        except CredentialsFileError as exc:
            return str(exc)
        return None

    def for_credentials(self, credentials: Credentials) -> GmailService:
        """A service on fresh credentials (the sign-in reads the profile with these)."""
        return GmailService(credentials, api_endpoint=self.settings.gmail_api_endpoint,
                            timeout=self.settings.gmail_timeout_seconds)

    def for_addon(self, user_token: str) -> GmailService:
        """A service on the access token a Gmail add-on event carries (userOAuthToken): it
        cannot be refreshed, and lives as long as the event."""
        return self.for_credentials(Credentials(token=user_token))

    def for_grant(self, token_info: dict) -> GmailService:
        """A new service on a decrypted grant, for one caller (a web request, a sync round)."""
        return self.for_credentials(credentials_from_info(token_info, self.oauth()))

    def for_account(self, account: GmailAccount) -> GmailService:
        """A service on a connected account's stored grant, for one web request."""
        if account.status != "connected":
            raise InvalidInput(f"{account.email} needs reconnecting", field="account")
        return self.for_grant(self.cipher.decrypt(account.token_blob))

    def pooled(self, account_id: int, token_info: dict) -> GmailService:
        """This thread's service for the account, kept between sends (the release path)."""
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ServicePool(self.oauth(), self.settings.gmail_api_endpoint,
                                             self.settings.gmail_timeout_seconds)
        return self._pool.get(account_id, token_info)

    def keep_refreshed(self, session, account_id: int, service: GmailService, before: dict,
                       now: dt.datetime) -> bytes | None:
        """Store the access token google-auth refreshed during the calls on `service`, if
        it did, in `session`; returns the stored grant (None when nothing changed)."""
        info = ServicePool.refreshed_info(service, before)
        if info is None:
            return None
        return self.store_refreshed(session, account_id, info, now)

    def store_refreshed(self, session, account_id: int, info: dict,
                        now: dt.datetime) -> bytes:
        """Store a refreshed grant (`ServicePool.refreshed_info`), encrypted; returns it."""
        return accounts.save_refreshed_token(session, self.cipher, account_id, info, now)

    def keep_refreshed_account(self, session, account: GmailAccount, service: GmailService,
                               now: dt.datetime) -> None:
        """`keep_refreshed` for a service from `for_account`."""
        self.keep_refreshed(session, account.id, service,
                            self.cipher.decrypt(account.token_blob), now)

    def save_refresh(self, db, account: GmailAccount, service: GmailService,
                     now: dt.datetime) -> None:
        """`keep_refreshed_account` in a write transaction of its own, opened only when
        there is a refreshed token to store (a read of drafts writes nothing otherwise)."""
        info = ServicePool.refreshed_info(service, self.cipher.decrypt(account.token_blob))
        if info is not None:
            with db.write() as session:
                self.store_refreshed(session, account.id, info, now)

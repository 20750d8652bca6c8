"""Gmail services per account and per thread (httplib2 is not thread-safe)."""
from __future__ import annotations

import threading
from collections import OrderedDict

from gmail_client.api import GmailService
from gmail_client.oauth import ClientConfig, credentials_from_info, credentials_to_info

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

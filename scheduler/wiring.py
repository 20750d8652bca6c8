"""The one wiring: what the web app and the worker share, built once per process.

`cli.py` (or a test) builds a `Wiring` from the settings and hands it to `create_app` and
to `ReleaseWorker`; no other module reads the environment or credentials.json.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from gmail_client.oauth import ClientConfig, load_client_config
from gmail_client.oidc import GoogleTokens
from scheduler.content.links import Links
from scheduler.content.sources import ContentFetcher
from scheduler.engine.connections import Gmail
from scheduler.settings import Settings
from scheduler.store.crypto import TokenCipher
from scheduler.store.db import Database


class OAuthClient:
    """The OAuth client of credentials.json, read here and nowhere else.

    Read on first use and kept; while the file is missing or broken each use tries again,
    so a file put in place after start-up is picked up without a restart.
    """

    def __init__(self, path: Path):
        self.path = path
        self._config: ClientConfig | None = None
        self._lock = threading.Lock()

    def __call__(self) -> ClientConfig:
        """The client; CredentialsFileError says what is wrong with the file."""
        if self._config is None:
            with self._lock:
                if self._config is None:
                    self._config = load_client_config(self.path)
        return self._config


@dataclass
class Wiring:
    """The database, the token cipher, the OAuth client, the Gmail factory, the send-time
    content fetcher, the link signer, Google's token verifier and the settings of one
    process."""

    settings: Settings
    db: Database
    cipher: TokenCipher
    oauth: OAuthClient
    gmail: Gmail
    content: ContentFetcher
    links: Links
    google_tokens: GoogleTokens  # verifies Google's OIDC tokens (Pub/Sub push)

    @classmethod
    def build(cls, settings: Settings, db: Database | None = None) -> Wiring:
        """Everything from the settings (a given `db` is used instead of a new one)."""
        db = db or Database(settings.database_url)
        db.self_check = settings.self_check
        cipher = TokenCipher(settings.token_key)
        oauth = OAuthClient(settings.google_credentials)
        return cls(settings=settings, db=db, cipher=cipher, oauth=oauth,
                   gmail=Gmail(settings, cipher, oauth),
                   content=ContentFetcher(settings.content_hosts),
                   links=Links(settings.secret_key,
                               settings.tracking_url or settings.public_url),
                   google_tokens=GoogleTokens(settings.google_certs_url))

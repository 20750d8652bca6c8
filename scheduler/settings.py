"""Configuration read from the environment (and a `.env` file), prefixed MAILRELEASE_."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.fernet import Fernet
from dotenv import load_dotenv

DEFAULT_PUBLIC_URL = "http://127.0.0.1:5000"


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it. The CLI makes it an exit."""


def _instance_secret(instance_path: Path, name: str, make) -> str:
    """Read a secret kept in instance/, creating it once with mode 0600."""
    instance_path.mkdir(parents=True, exist_ok=True)
    path = instance_path / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        value = make()
        fh.write(value)
    return value


def _float(env: dict, name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None


def _endpoint(value: str | None) -> str | None:
    """An API root with its trailing slash: the client joins paths relative to it, and
    without the slash a path prefix (http://host/prefix) would be dropped."""
    if not value:
        return None
    return value if value.endswith("/") else value + "/"


@dataclass(frozen=True)
class Settings:
    """Everything the web app and the worker need to know about their environment."""

    instance_path: Path
    database_url: str
    secret_key: str
    token_key: str
    google_credentials: Path
    gmail_api_endpoint: str | None = None
    public_url: str = DEFAULT_PUBLIC_URL
    # Where the links in sent mail point (open pixel, clicks, unsubscribe, AMP data): a
    # domain of the sender's own instead of one shared with other senders. The same app
    # answers there; None means the public URL.
    tracking_url: str | None = None
    gmail_scopes: str = "full"
    lease_seconds: float = 120.0
    sync_seconds: float = 300.0
    poll_seconds: float = 1.0
    content_hosts: tuple[str, ...] = ()
    max_lateness_seconds: float = 86400.0
    daily_cap: int | None = None
    sends_per_second: float = 2.5
    gmail_timeout_seconds: float = 30.0
    retry_base_seconds: float = 30.0
    send_threads: int = 64
    # Crashes (any error but Gmail's own) a message may have before it is failed.
    max_attempts: int = 5
    sandbox: bool = False
    # Gmail push notifications through Cloud Pub/Sub (all None: polling only).
    pubsub_topic: str | None = None  # projects/P/topics/T, that each mailbox is watched to
    pubsub_subscription: str | None = None  # projects/P/subscriptions/S, pulled by workers
    pubsub_api_endpoint: str | None = None  # the API root (default Google's)
    service_account_key: Path | None = None  # GOOGLE_APPLICATION_CREDENTIALS
    # Push mode: POST /hooks/gmail-push, an OIDC token for this audience from this account.
    pubsub_push_audience: str | None = None
    pubsub_push_service_account: str | None = None
    # The Gmail add-on: the service account whose ID token Google's add-on requests carry
    # (None: the /addon/ endpoints refuse every request).
    addon_service_account: str | None = None
    # Where Google's OIDC signing certificates are read ({kid: PEM}).
    google_certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"
    # MAILRELEASE_SELF_CHECK=1 (the test suite sets it): the app checks its own invariants
    # as it runs (answers match their declarations, no render inside a write transaction).
    self_check: bool = False

    @classmethod
    def from_env(cls, instance_path: str | Path | None = None, env: dict | None = None,
                 **overrides) -> Settings:
        """Build settings from `env` (default: os.environ after reading `.env`)."""
        if env is None:
            load_dotenv(override=False)
            env = dict(os.environ)
        inst = Path(instance_path or env.get("MAILRELEASE_INSTANCE_PATH") or "instance").resolve()
        inst.mkdir(parents=True, exist_ok=True)
        db_url = env.get("MAILRELEASE_DATABASE_URL") or f"sqlite:///{inst / 'mailrelease.db'}"
        settings = cls(
            instance_path=inst,
            database_url=db_url,
            secret_key=env.get("MAILRELEASE_SECRET_KEY")
            or _instance_secret(inst, "secret_key", lambda: secrets.token_hex(32)),
            token_key=env.get("MAILRELEASE_TOKEN_KEY")
            or _instance_secret(inst, "token_key", lambda: Fernet.generate_key().decode()),
            google_credentials=Path(env.get("MAILRELEASE_GOOGLE_CREDENTIALS")
                                    or "credentials.json").resolve(),
            gmail_api_endpoint=_endpoint(env.get("MAILRELEASE_GMAIL_API_ENDPOINT")),
            public_url=(env.get("MAILRELEASE_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/"),
            tracking_url=(env.get("MAILRELEASE_TRACKING_URL") or "").rstrip("/") or None,
            gmail_scopes=env.get("MAILRELEASE_GMAIL_SCOPES") or "full",
            lease_seconds=_float(env, "MAILRELEASE_LEASE_SECONDS", 120.0),
            # With push notifications, polling is a safety net: an hour unless told.
            sync_seconds=_float(env, "MAILRELEASE_SYNC_SECONDS", 3600.0 if env.get(
                "MAILRELEASE_PUBSUB_TOPIC") else 300.0),
            poll_seconds=_float(env, "MAILRELEASE_POLL_SECONDS", 1.0),
            content_hosts=tuple(h.strip().lower() for h in
                                (env.get("MAILRELEASE_CONTENT_HOSTS") or "").split(",")
                                if h.strip()),
            max_lateness_seconds=_float(env, "MAILRELEASE_MAX_LATENESS_SECONDS", 86400.0),
            daily_cap=int(_float(env, "MAILRELEASE_DAILY_CAP", 0)) or None,
            sends_per_second=_float(env, "MAILRELEASE_SENDS_PER_SECOND", 2.5),
            gmail_timeout_seconds=_float(env, "MAILRELEASE_GMAIL_TIMEOUT_SECONDS", 30.0),
            retry_base_seconds=_float(env, "MAILRELEASE_RETRY_BASE_SECONDS", 30.0),
            send_threads=max(1, int(_float(env, "MAILRELEASE_SEND_THREADS", 64))),
            max_attempts=max(1, int(_float(env, "MAILRELEASE_MAX_ATTEMPTS", 5))),
            self_check=env.get("MAILRELEASE_SELF_CHECK") == "1",
            pubsub_topic=env.get("MAILRELEASE_PUBSUB_TOPIC") or None,
            pubsub_subscription=env.get("MAILRELEASE_PUBSUB_SUBSCRIPTION") or None,
            pubsub_api_endpoint=_endpoint(env.get("MAILRELEASE_PUBSUB_API_ENDPOINT")),
            service_account_key=Path(env["GOOGLE_APPLICATION_CREDENTIALS"]).resolve()
            if env.get("GOOGLE_APPLICATION_CREDENTIALS") else None,
            pubsub_push_audience=env.get("MAILRELEASE_PUBSUB_PUSH_AUDIENCE") or None,
            pubsub_push_service_account=(env.get("MAILRELEASE_PUBSUB_PUSH_SERVICE_ACCOUNT")
                                         or "").lower() or None,
            addon_service_account=(env.get("MAILRELEASE_ADDON_SERVICE_ACCOUNT")
                                   or "").lower() or None,
            google_certs_url=env.get("MAILRELEASE_GOOGLE_CERTS_URL")
            or "https://www.googleapis.com/oauth2/v1/certs",
        )
        return replace(settings, **overrides) if overrides else settings

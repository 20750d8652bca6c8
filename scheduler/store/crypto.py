"""Encryption at rest for OAuth tokens (Fernet: AES-128-CBC with HMAC-SHA256)."""
from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from scheduler.settings import ConfigError


class TokenCipher:
    """Encrypts token dicts; several comma-separated keys allow rotation (first one encrypts)."""

    def __init__(self, keys: str):
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise ValueError("MAILRELEASE_TOKEN_KEY is empty")
        try:
            self._fernet = MultiFernet([Fernet(k.encode("ascii")) for k in parts])
        except ValueError as exc:
            raise ConfigError("MAILRELEASE_TOKEN_KEY must be Fernet keys (32 url-safe base64 "
                             "bytes); make one with: python -c 'from cryptography.fernet "
                             "import Fernet; print(Fernet.generate_key().decode())'") from exc

    def encrypt(self, info: dict) -> bytes:
        """Encrypt a JSON-serializable dict."""
        return self._fernet.encrypt(json.dumps(info, separators=(",", ":")).encode("utf-8"))

    def decrypt(self, blob: bytes) -> dict:
        """Decrypt what `encrypt` made; raises ValueError when the key does not match."""
        try:
            return json.loads(self._fernet.decrypt(bytes(blob)))
        except InvalidToken as exc:
            raise ValueError("stored OAuth tokens cannot be decrypted with "
                             "MAILRELEASE_TOKEN_KEY") from exc

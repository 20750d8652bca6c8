"""The sandbox's own signing key, as Google's OIDC tokens are signed: RS256 JWTs with a
`kid`, verifiable with the certificates served at /oauth2/v1/certs ({kid: PEM}, the form
of Google's v1 certs URL)."""
from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from flask import Blueprint, jsonify

bp = Blueprint("signing", __name__)
KID = "sandbox-1"


@functools.lru_cache(maxsize=1)
def _key_and_cert():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbox.googleapis.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def oidc_token(audience: str, email: str, lifetime: int = 3600, **extra) -> str:
    """An ID token as Google signs them for Pub/Sub push and add-on requests."""
    key, _ = _key_and_cert()
    now = int(time.time())
    claims = {"iss": "https://accounts.google.com", "aud": audience, "email": email,
              "email_verified": True, "sub": str(abs(hash(email)) % 10**21), "iat": now,
              "exp": now + lifetime, **extra}
    head = _b64(json.dumps({"alg": "RS256", "kid": KID, "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{_b64(signature)}"


@bp.get("/oauth2/v1/certs")
def certs():
    return jsonify({KID: _key_and_cert()[1]})

"""The sandbox Google: OAuth and Gmail endpoints on loopback, in Google's wire format.

The real google-api-python-client and google-auth-oauthlib talk to it unchanged, so a new
user can try mailrelease without Google credentials, and the tests exercise the real code
path over real HTTP. Its mailbox pages show exactly what recipients would receive. It keeps
its state in memory; nothing here ever reaches the real Google.

    state.py    the one state object, Google's error and resource shapes
    oauth.py    blueprint: consent, token, revoke
    gmail.py    blueprint: the Gmail API under /gmail/v1/users/<user_id>
    pubsub.py   blueprint: users.watch/stop and Cloud Pub/Sub subscriptions, pull and push
    signing.py  blueprint: the key OIDC tokens are signed with, its certificates
    control.py  blueprint: mailbox pages and the control API, loopback clients only
    addon.py    blueprint: a Gmail add-on host (signed event objects, cards shown)
    cards.py    the Card v2 schema check of an add-on's answers

Imports Flask and nothing of mailrelease's.
"""
from __future__ import annotations

from flask import Flask

from sandbox import addon, control, gmail, oauth, pubsub, signing
from sandbox.state import Fault, SandboxState

__all__ = ["Fault", "SandboxState", "create_sandbox_app", "sandbox_credentials"]


def create_sandbox_app(clients: dict[str, dict] | None = None,
                       state: SandboxState | None = None) -> Flask:
    """Build the sandbox. `clients` maps client_id to {"secret", "redirect_uris"}."""
    app = Flask(__name__)
    st = state or SandboxState()
    st.clients.update(clients or {})
    app.extensions["sandbox_state"] = st
    for blueprint in (oauth.bp, signing.bp, gmail.bp, pubsub.bp, control.bp, addon.bp):
        app.register_blueprint(blueprint)
    return app


def sandbox_credentials(base_url: str, client_id: str, client_secret: str,
                        redirect_uris: list[str]) -> dict:
    """A credentials.json (Google's format) pointing at a sandbox served at `base_url`."""
    base = base_url.rstrip("/")
    return {"web": {
        "client_id": client_id, "project_id": "mailrelease-sandbox",
        "auth_uri": f"{base}/o/oauth2/auth", "token_uri": f"{base}/token",
        "auth_provider_x509_cert_url": f"{base}/oauth2/v1/certs",
        "client_secret": client_secret, "redirect_uris": redirect_uris,
    }}

"""The add-on's deployment descriptor (deployment.json) for Google Workspace: the scopes it
asks for and the HTTP endpoints Gmail calls, under the deployment's public URL."""
from __future__ import annotations

SCOPES = (
    "https://www.googleapis.com/auth/gmail.addons.execute",
    # Read the open message (with Gmail's per-message token), and a draft's recipients.
    "https://www.googleapis.com/auth/gmail.addons.current.message.readonly",
    "https://www.googleapis.com/auth/gmail.addons.current.message.metadata",
    # Insert a template into the open draft.
    "https://www.googleapis.com/auth/gmail.addons.current.action.compose",
    # The user's ID token names their address (matched to a mailrelease user).
    "https://www.googleapis.com/auth/userinfo.email",
)


def deployment(public_url: str) -> dict:
    """deployment.json for an app served at `public_url` (it must be public https for
    Google to reach it)."""
    base = public_url.rstrip("/")
    return {
        "oauthScopes": list(SCOPES),
        "addOns": {
            "common": {
                "name": "mailrelease",
                "logoUrl": f"{base}/static/addon-logo.png",
                "layoutProperties": {"primaryColor": "#0b57d0"},
                "homepageTrigger": {"runFunction": f"{base}/addon/homepage"},
            },
            "gmail": {
                "contextualTriggers": [{"unconditional": {},
                                        "onTriggerFunction": f"{base}/addon/message"}],
                "composeTrigger": {
                    "selectActions": [{"text": "mailrelease",
                                       "runFunction": f"{base}/addon/compose"}],
                    "draftAccess": "METADATA"},
            },
            "httpOptions": {"authorizationHeader": "SYSTEM_ID_TOKEN"},
        },
    }

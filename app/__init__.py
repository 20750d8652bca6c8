"""The Flask application: the only package that imports Flask."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from flask import Flask, current_app, g, request
from flask_wtf.csrf import CSRFProtect

from app.throttle import Throttle
from gmail_client.api import GmailService
from scheduler.automation.events import PendingRunner
from scheduler.content import drafts
from scheduler.content.drawing import RenderCache
from scheduler.store.audit import Actor
from scheduler.store.db import utcnow
from scheduler.store.models import GmailAccount
from scheduler.wiring import Wiring

csrf = CSRFProtect()


@dataclass
class Context:
    """What every request handler needs: the process's wiring, its worker if it runs one,
    and the throttle of failed credentials."""

    wiring: Wiring
    worker: object | None = None
    throttle: Throttle = field(default_factory=Throttle)
    images: RenderCache = field(default_factory=RenderCache)  # live images, drawn on fetch
    events: PendingRunner = field(init=False)  # accepted events' rules, after the answer

    def __post_init__(self) -> None:
        w = self.wiring
        self.settings, self.db, self.cipher = w.settings, w.db, w.cipher
        self.content, self.links, self.gmail, self.oauth = w.content, w.links, w.gmail, w.oauth
        self.events = PendingRunner(w.db, utcnow, after=self.wake_worker)

    def gmail_for(self, account: GmailAccount) -> GmailService:
        """A Gmail service on the account for this request (read or compose granted)."""
        drafts.check_access(account)
        return self.gmail.for_account(account)

    def wake_worker(self, at=None) -> None:
        """Wake the in-process worker, if this process runs one (web-only processes don't)."""
        if self.worker is not None:
            self.worker.wake(at)


# Pages whose forms carry files (attachments): their requests may be as large as an API
# request with files.
FILE_FORMS = frozenset({"ui.content.template_page"})


def _allow_files(app: Flask) -> None:
    from scheduler.commands import MAX_REQUEST_WITH_FILES

    @app.before_request
    def _larger_body_for_files():
        if request.endpoint in FILE_FORMS:
            request.max_content_length = MAX_REQUEST_WITH_FILES


def create_app(wiring: Wiring | None = None, *, worker=None) -> Flask:
    """Application factory: the given wiring, or one built from the environment."""
    if wiring is None:
        from scheduler.settings import Settings
        wiring = Wiring.build(Settings.from_env())
    settings = wiring.settings
    app = Flask(__name__, instance_path=str(settings.instance_path))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        MAX_CONTENT_LENGTH=10 * 1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.extensions["mailrelease"] = Context(wiring, worker=worker)

    from app import addon, api, audit, auth, health, hooks, links, ui

    _json_errors_under_api(app)
    audit.install(app)
    _allow_files(app)  # before CSRF's check, which reads the form
    csrf.init_app(app)
    csrf.exempt(api.bp)
    csrf.exempt(hooks.bp)  # Pub/Sub signs its requests (an OIDC token), it has no form
    for feature in api.FEATURES:  # Flask-WTF looks up the request's own blueprint
        csrf.exempt(feature)
    app.register_blueprint(auth.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(links.bp)
    app.register_blueprint(hooks.bp)
    app.register_blueprint(addon.bp)  # Google signs its requests (an ID token): no CSRF
    _warn_on_plain_http(settings.public_url)
    app.register_blueprint(ui.bp)
    return app


def _json_errors_under_api(app: Flask) -> None:
    """Unknown routes and wrong methods under /api/ answer in the API's JSON error shape."""
    from flask import request
    from werkzeug.exceptions import HTTPException

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if request.path.startswith("/api/"):
            from app.api import http_error
            return http_error(exc)
        from flask import render_template
        if request.path.startswith(("/t/c/", "/u/")) and exc.code == 404:
            # Recipients follow these links: a page of theirs, not the app's.
            return render_template("ui/link_error.html"), 404
        if request.path.startswith(("/t/", "/amp/", "/sandbox-google")) or (
                exc.code or 500) < 400:
            return exc
        # A page for each HTTP error, in the app's own layout.
        allow = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
        return render_template("ui/error.html", code=exc.code,
                               message=exc.description or exc.name), exc.code, allow

    @app.after_request
    def _security_headers(response):
        # No CDN and no inline script: everything comes from this app. Inline styles are
        # allowed for the email HTML shown in previews.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: https:; style-src 'self' "
            "'unsafe-inline'; script-src 'self'; frame-ancestors 'self'; form-action 'self'; "
            "base-uri 'self'; object-src 'none'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


def _warn_on_plain_http(public_url: str) -> None:
    """Links in mail follow the public URL; AMP for Email fetches only https."""
    from urllib.parse import urlsplit
    parts = urlsplit(public_url)
    if parts.scheme != "https":
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        logging.getLogger("mailrelease").warning(
            "action=public_url_not_https url=%s %s", public_url,
            "accepted for development on loopback; AMP live data needs https" if loopback
            else "recipients' mail clients and AMP need https: set MAILRELEASE_PUBLIC_URL")


def ctx() -> Context:
    """The current app's Context."""
    return current_app.extensions["mailrelease"]


def actor() -> Actor:
    """Who asks for this request's change: the signed-in member, through the API or the
    web app (the domain writes the audit entry with it)."""
    blueprint = (request.blueprint or "").split(".")[0]
    via = blueprint if blueprint in ("api", "addon") else "web"
    return Actor(g.team_id, g.user_id, via)

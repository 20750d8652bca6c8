"""The Flask application: the only package that imports Flask."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from flask import Flask, current_app
from flask_wtf.csrf import CSRFProtect

from app.throttle import Throttle
from scheduler.content.sources import ContentFetcher
from scheduler.settings import Settings
from scheduler.store.crypto import TokenCipher
from scheduler.store.db import Database

csrf = CSRFProtect()


@dataclass
class Context:
    """What every request handler needs, built once per app."""

    settings: Settings
    db: Database
    cipher: TokenCipher
    content: ContentFetcher
    worker: object | None = None
    throttle: Throttle = field(default_factory=Throttle)

    def wake_worker(self, at=None) -> None:
        """Wake the in-process worker, if this process runs one (web-only processes don't)."""
        if self.worker is not None:
            self.worker.wake(at)


def create_app(settings: Settings | None = None, *, db: Database | None = None,
               worker=None) -> Flask:
    """Application factory: settings from the environment unless given."""
    settings = settings or Settings.from_env()
    app = Flask(__name__, instance_path=str(settings.instance_path))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        MAX_CONTENT_LENGTH=10 * 1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.extensions["mailrelease"] = Context(
        settings=settings, db=db or Database(settings.database_url),
        cipher=TokenCipher(settings.token_key),
        content=ContentFetcher(settings.content_hosts), worker=worker)

    # api_content and ui_content add their routes to the api and ui blueprints.
    from app import (  # noqa: F401
        api,
        api_content,
        api_events,
        api_team,
        api_threads,
        audit,
        auth,
        health,
        links,
        ui,
        ui_campaigns,
        ui_compose,
        ui_content,
        ui_dashboard,
        ui_replies,
        ui_rules,
        ui_settings,
        ui_team,
    )

    _json_errors_under_api(app)
    audit.install(app)
    csrf.init_app(app)
    csrf.exempt(api.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(links.bp)
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
        if request.path.startswith(("/t/", "/amp/", "/sandbox-google")) or (
                exc.code or 500) < 400:
            return exc
        # A page for each HTTP error, in the app's own layout.
        from flask import render_template
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

"""The `mailrelease` command: run, web, worker, db upgrade, token create."""
from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import sys
import threading
from dataclasses import replace

import click

from scheduler.redact import RedactingFormatter
from scheduler.settings import ConfigError, Settings
from scheduler.store.db import Database, utcnow
from scheduler.store.migrate import upgrade as upgrade_db
from scheduler.wiring import Wiring

log = logging.getLogger("mailrelease")
SANDBOX_PREFIX = "/sandbox-google"


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    # Every line is redacted: at DEBUG, libraries log URLs and bodies with tokens in them.
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=os.environ.get("MAILRELEASE_LOG_LEVEL", "INFO"),
                        handlers=[handler])
    # Their INFO lines are per-request noise (and could carry URLs); ours carry the facts.
    for name in ("apscheduler", "googleapiclient", "google_auth_httplib2", "waitress.queue"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # "skipped: maximum number of running instances" only means a wake-up arrived during a
    # release pass, which then goes round again: not worth a warning.
    logging.getLogger("apscheduler.executors.default").setLevel(logging.ERROR)


def _url_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def _settings_for(host: str, port: int) -> Settings:
    settings = Settings.from_env()
    if not os.environ.get("MAILRELEASE_PUBLIC_URL"):
        settings = replace(settings, public_url=f"http://{_url_host(host)}:{port}")
    return settings


def _sandbox_settings(settings: Settings, host: str, port: int) -> tuple[Settings, dict]:
    """Point OAuth and Gmail at the sandbox served in this process; returns its clients."""
    base = f"http://{_url_host(host)}:{port}{SANDBOX_PREFIX}"
    client_file = settings.instance_path / "sandbox-client.json"
    if client_file.exists():
        client = json.loads(client_file.read_text())
    else:
        client = {"client_id": f"sandbox-{secrets.token_hex(6)}.apps.googleusercontent.com",
                  "client_secret": secrets.token_urlsafe(24)}
        fd = os.open(client_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(client, fh)
    from sandbox import SandboxState, sandbox_credentials

    redirect = settings.public_url + "/auth/callback"
    creds_path = settings.instance_path / "sandbox-credentials.json"
    fd = os.open(creds_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:  # it holds the client secret: the owner's only
        json.dump(sandbox_credentials(base, client["client_id"], client["client_secret"],
                                      [redirect]), fh, indent=2)
    # The sandbox's Gmail add-on host signs with the sandbox's key, as its service account.
    addon = {} if os.environ.get("MAILRELEASE_ADDON_SERVICE_ACCOUNT") else {
        "addon_service_account": SandboxState().addon_service_account,
        "google_certs_url": base + "/oauth2/v1/certs"}
    settings = replace(settings, google_credentials=creds_path,
                       gmail_api_endpoint=base + "/", sandbox=True, **addon)
    return settings, {client["client_id"]: {"secret": client["client_secret"],
                                            "redirect_uris": [redirect]}}


def _stop_on_sigterm() -> None:
    def handler(_signum, _frame):
        raise SystemExit(0)  # a requested stop is a clean exit
    signal.signal(signal.SIGTERM, handler)


class _Group(click.Group):
    """Library code raises; here a configuration problem becomes a one-line exit."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group)
def main() -> None:
    """mailrelease: release personalized email through your own Gmail account."""
    _configure_logging()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--sandbox", is_flag=True, help="Serve and use the built-in sandbox Google.")
def run(host: str, port: int, sandbox: bool) -> None:
    """Web and worker in one process (upgrades the database first)."""
    from waitress import serve

    from app import create_app
    from scheduler.worker import ReleaseWorker

    settings = _settings_for(host, port)
    clients = None
    if sandbox:
        settings, clients = _sandbox_settings(settings, host, port)
    upgrade_db(settings.database_url)
    wiring = Wiring.build(settings)
    worker = ReleaseWorker(wiring)
    app = create_app(wiring, worker=worker)
    wsgi = app.wsgi_app
    if sandbox:
        from werkzeug.middleware.dispatcher import DispatcherMiddleware

        from sandbox import create_sandbox_app
        wsgi = DispatcherMiddleware(app.wsgi_app,
                                    {SANDBOX_PREFIX: create_sandbox_app(clients)})
        app.wsgi_app = wsgi
    _stop_on_sigterm()
    worker.start()
    log.info("action=serve url=%s sandbox=%s", settings.public_url, sandbox)
    click.echo(f"mailrelease on {settings.public_url}"
               + (f" (sandbox Google at {settings.public_url}{SANDBOX_PREFIX}/sandbox/)"
                  if sandbox else ""), err=True)
    try:
        serve(app, host=host, port=port, threads=8, ident="mailrelease")
    finally:
        worker.stop()
        wiring.db.dispose()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--processes", default=1, show_default=True, type=click.IntRange(1, 64),
              help="web processes (gunicorn; more than one needs PostgreSQL)")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64),
              help="threads per process")
def web(host: str, port: int, processes: int, threads: int) -> None:
    """The web app alone (no scheduler: run `mailrelease worker` beside it): one process
    on waitress, or several on gunicorn (Linux and macOS, PostgreSQL)."""
    from app import create_app

    settings = _settings_for(host, port)
    upgrade_db(settings.database_url)
    log.info("action=serve url=%s worker=separate processes=%d threads=%d",
             settings.public_url, processes, threads)
    if processes == 1:
        from waitress import serve
        _stop_on_sigterm()
        serve(create_app(Wiring.build(settings)), host=host, port=port, threads=threads,
              ident="mailrelease")
        return
    if settings.database_url.startswith("sqlite"):
        raise click.ClickException("several web processes need PostgreSQL "
                                   "(MAILRELEASE_DATABASE_URL): SQLite takes one writer")
    from app.server import serve_processes
    serve_processes(lambda: create_app(Wiring.build(settings)), host, port, processes,
                    threads)


@main.command()
def worker() -> None:
    """The release worker alone; stops cleanly on SIGTERM or Ctrl-C."""
    from scheduler.worker import ReleaseWorker

    settings = Settings.from_env()
    upgrade_db(settings.database_url)
    wiring = Wiring.build(settings)
    release_worker = ReleaseWorker(wiring)
    stop = threading.Event()

    def handler(_signum, _frame):
        stop.set()
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    release_worker.start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        release_worker.stop()
        wiring.db.dispose()


@main.group()
def addon() -> None:
    """The Gmail add-on (Google Workspace add-on on the HTTP runtime)."""


@addon.command("deployment")
def addon_deployment() -> None:
    """Print the deployment.json for `gcloud workspace-add-ons deployments create`."""
    from app.addon.deployment import deployment
    settings = Settings.from_env()
    click.echo(json.dumps(deployment(settings.public_url), indent=2))


@main.group()
def db() -> None:
    """Database commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply Alembic migrations up to head."""
    settings = Settings.from_env()
    upgrade_db(settings.database_url)
    click.echo("database is at the latest revision", err=True)


def _migrated_database() -> Database:
    """The configured database, migrated to head (for one-off commands)."""
    settings = Settings.from_env()
    upgrade_db(settings.database_url)
    return Database(settings.database_url)


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--email", required=True, help="The Google address the user signed in with.")
@click.option("--name", default="", help="A label for the token.")
@click.option("--team", "team_id", type=int, default=None,
              help="The team it acts in (default: the user's personal team).")
def token_create(email: str, name: str, team_id: int | None) -> None:
    """Print a new API token, alone, on stdout."""
    from app.tokens import UnknownUser, create_token

    database = _migrated_database()
    try:
        with database.write() as session:
            value = create_token(session, email, name, utcnow(), team_id)
    except UnknownUser as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.dispose()
    click.echo(value)


@main.group()
def contacts() -> None:
    """Contacts."""


@contacts.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--email", required=True,
              help="The Google address of a user of the team to import into.")
def contacts_import(file: str, email: str) -> None:
    """Import a CSV of contacts (with a progress bar); prints the report as JSON."""
    import json
    import os

    from sqlalchemy import select

    from scheduler.audience import contacts as contacts_mod
    from scheduler.errors import InvalidInput
    from scheduler.store.models import User

    database = _migrated_database()
    try:
        with database.read() as session:
            team_id = session.scalar(select(User.personal_team_id).where(
                User.email == email.strip().lower()))
        if team_id is None:
            raise click.ClickException(f"no user {email}: sign in with Google once first")
        size = os.path.getsize(file)
        with open(file, "rb") as raw, click.progressbar(
                length=size, label="importing", file=click.get_text_stream("stderr"),
                show_pos=True) as bar:
            counting = contacts_mod.CountingReader(raw)
            done = [0]

            def progress(_rows: int) -> None:
                bar.update(counting.bytes_read - done[0])
                done[0] = counting.bytes_read
            report = contacts_mod.import_csv(database, team_id, counting, utcnow(),
                                             progress=progress)
    except InvalidInput as exc:
        raise click.ClickException(exc.message) from None
    finally:
        database.dispose()
    click.echo(json.dumps(report.as_dict()))


__all__ = ["main"]

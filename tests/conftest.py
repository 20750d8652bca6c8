"""Fixtures: a sandbox Google over real HTTP, and mailrelease served with its worker."""
from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass

import pytest
import requests

from app import create_app
from app.tokens import create_token
from sandbox import SandboxState, create_sandbox_app
from scheduler.settings import Settings
from scheduler.store.db import Database, utcnow
from scheduler.store.migrate import upgrade
from scheduler.wiring import Wiring
from scheduler.worker import ReleaseWorker
from tests import postgres
from tests.helpers import ServerThread, free_port, google_sign_in, write_credentials

# Every API answer in every test is checked against its route's declared models
# (app/api/endpoint.py): an undocumented status, field or type fails the test that met it.
os.environ.setdefault("MAILRELEASE_SELF_CHECK", "1")

CLIENT_ID = "test-client.apps.googleusercontent.com"
CLIENT_SECRET = "test-secret"


@dataclass
class Sandbox:
    url: str
    state: SandboxState

    def sent(self) -> list[dict]:
        """Every message the sandbox Gmail has accepted, oldest first."""
        return requests.get(f"{self.url}/sandbox/api/messages", timeout=10).json()["messages"]

    def count(self) -> int:
        return requests.get(f"{self.url}/sandbox/api/count", timeout=10).json()["count"]

    def fault(self, **fields) -> None:
        """Queue a fault through the sandbox's control API."""
        resp = requests.post(f"{self.url}/sandbox/api/faults", json=fields, timeout=10)
        assert resp.status_code == 200, resp.text

    def configure(self, **fields) -> None:
        requests.post(f"{self.url}/sandbox/api/settings", json=fields, timeout=10)

    def add_draft(self, owner: str, raw: str) -> str:
        """A draft in `owner`'s mailbox, written as Gmail's editor would; returns its id."""
        resp = requests.post(f"{self.url}/sandbox/api/drafts", json={"owner": owner,
                                                                      "raw": raw}, timeout=10)
        return resp.json()["id"]

    def deliver(self, owner: str, raw: str) -> dict:
        """Mail arriving in `owner`'s mailbox (a reply, a bounce); returns {id, threadId}."""
        return requests.post(f"{self.url}/sandbox/api/deliver", json={"owner": owner,
                                                                       "raw": raw},
                             timeout=10).json()

    def revoke(self, email: str) -> None:
        requests.post(f"{self.url}/sandbox/api/revoke", json={"email": email}, timeout=10)


TIERS = ("unit", "integration", "acceptance", "browser")


def pytest_collection_modifyitems(config, items):
    """Mark each test with its tier, the folder it lives in; a test outside one is an error."""
    for item in items:
        tier = item.path.parent.name
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: a test lives in tests/<tier>/, one of "
                                    f"{', '.join(TIERS)}")
        item.add_marker(tier)


@pytest.fixture
def sandbox():
    """The sandbox Google on a real loopback port, with one registered OAuth client."""
    state = SandboxState()
    server = ServerThread(create_sandbox_app(state=state))
    state.clients[CLIENT_ID] = {"secret": CLIENT_SECRET, "redirect_uris": []}
    yield Sandbox(server.url, state)
    server.stop()


@dataclass
class Live:
    url: str
    wiring: Wiring
    worker: ReleaseWorker | None
    sandbox: Sandbox

    @property
    def settings(self) -> Settings:
        return self.wiring.settings

    @property
    def db(self) -> Database:
        return self.wiring.db

    def sign_in(self, email: str = "ada@example.com", **kwargs) -> requests.Response:
        return google_sign_in(self.url, email, **kwargs)

    def token(self, email: str = "ada@example.com", team_id: int | None = None) -> str:
        """An API token of that user, acting in `team_id` (default: their own team)."""
        with self.db.write() as s:
            return create_token(s, email, "test", utcnow(), team_id)

    def api(self, token: str) -> requests.Session:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        return s

    def browser(self, email: str = "ada@example.com") -> requests.Session:
        """A web session (cookie) of that user, signed in with Google."""
        session = requests.Session()
        self.sign_in(email, session=session)
        return session

    def user(self, email: str = "ada@example.com") -> requests.Session:
        """Sign in and return an API session for that user."""
        self.sign_in(email)
        return self.api(self.token(email))


PG_CONTROL: dict[str, list[str]] = {}


@pytest.fixture
def pg_outage(pg_server):
    """stop() and start() the private PostgreSQL server (not an external one)."""
    if not PG_CONTROL:
        pytest.fail("the outage test needs the private PostgreSQL cluster the suite starts: "
                    "unset MAILRELEASE_TEST_PG_URL")

    class Outage:
        def stop(self):
            subprocess.run(PG_CONTROL["stop"], check=True, capture_output=True)

        def start(self):
            subprocess.run(PG_CONTROL["start"], check=True, capture_output=True)
    outage = Outage()
    yield outage
    if subprocess.run(PG_CONTROL["status"], capture_output=True).returncode != 0:
        outage.start()  # the test failed while the server was down


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server: MAILRELEASE_TEST_PG_URL, or a private cluster started here."""
    url = os.environ.get("MAILRELEASE_TEST_PG_URL")
    if url:
        yield url
        return
    if postgres.binaries() is None:
        pytest.fail("PostgreSQL server binaries not found: install Debian's `postgresql` "
                    "package (.ci/run does) or set MAILRELEASE_TEST_PG_URL")
    with postgres.private_cluster() as (server, control):
        # What a test needs to take this server down and up again (a database outage).
        PG_CONTROL.update(control)
        yield server


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty database on the PostgreSQL server for one test."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool
    base = pg_server.rsplit("/", 1)[0] if pg_server.count("/") > 2 else pg_server
    name = f"mr_{uuid.uuid4().hex[:12]}"
    # No pool: a test may restart the server (an outage) between create and drop.
    admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT",
                          poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def make_settings(tmp_path, sandbox: Sandbox, port: int, **env) -> Settings:
    base = f"http://127.0.0.1:{port}"
    creds = tmp_path / "credentials.json"
    write_credentials(creds, sandbox.url, CLIENT_ID, CLIENT_SECRET, f"{base}/auth/callback")
    values = {
        "MAILRELEASE_DATABASE_URL": f"sqlite:///{tmp_path / 'mailrelease.db'}",
        "MAILRELEASE_GOOGLE_CREDENTIALS": str(creds),
        "MAILRELEASE_GMAIL_API_ENDPOINT": sandbox.url + "/",
        "MAILRELEASE_PUBLIC_URL": base,
        "MAILRELEASE_POLL_SECONDS": "1",
        "MAILRELEASE_RETRY_BASE_SECONDS": "0.3",
        "MAILRELEASE_GMAIL_TIMEOUT_SECONDS": "5",
        # Mailbox sync runs when a test asks (or sets a shorter period), so that it never
        # takes a fault a test queued for the release path.
        "MAILRELEASE_SYNC_SECONDS": "3600",
        # The sandbox's Gmail add-on host signs as this account, with the sandbox's key.
        "MAILRELEASE_ADDON_SERVICE_ACCOUNT": SandboxState().addon_service_account,
        "MAILRELEASE_GOOGLE_CERTS_URL": f"{sandbox.url}/oauth2/v1/certs",
        "MAILRELEASE_SELF_CHECK": os.environ.get("MAILRELEASE_SELF_CHECK", ""),
        **env,
    }
    return Settings.from_env(instance_path=tmp_path / "instance", env=values)


def _serve(tmp_path, sandbox, with_worker: bool, **env):
    port = free_port()
    settings = make_settings(tmp_path, sandbox, port, **env)
    upgrade(settings.database_url)
    wiring = Wiring.build(settings)
    # The checks of the app's own invariants stay on in every test that serves it.
    assert wiring.db.self_check == (os.environ.get("MAILRELEASE_SELF_CHECK") == "1")
    worker = ReleaseWorker(wiring) if with_worker else None
    app = create_app(wiring, worker=worker)
    server = ServerThread(app, port)
    if worker:
        worker.start()
    return Live(server.url, wiring, worker, sandbox), server


@pytest.fixture
def live(tmp_path, sandbox):
    """mailrelease (web + worker in one process) over real HTTP against the sandbox."""
    running, server = _serve(tmp_path, sandbox, with_worker=True)
    yield running
    running.worker.stop()
    server.stop()
    running.db.dispose()


@pytest.fixture
def api(live) -> requests.Session:
    """An API session (Bearer token) of ada@example.com, signed in on `live`."""
    return live.user()


@pytest.fixture
def live_no_worker(tmp_path, sandbox):
    """The web app alone: messages stay queued until a test runs the worker itself."""
    running, server = _serve(tmp_path, sandbox, with_worker=False)
    yield running
    server.stop()
    running.db.dispose()


@pytest.fixture
def serve(tmp_path, sandbox):
    """Start mailrelease with extra environment, e.g. serve(MAILRELEASE_GMAIL_SCOPES=...)."""
    started = []

    def start(with_worker: bool = True, **env) -> Live:
        running, server = _serve(tmp_path, sandbox, with_worker, **env)
        started.append((running, server))
        return running

    yield start
    for running, server in started:
        if running.worker:
            running.worker.stop()
        server.stop()
        running.db.dispose()

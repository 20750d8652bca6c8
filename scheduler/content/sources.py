"""Send-time content ("connected content"): JSON fetched at release, with a fallback.

A template's `sources` name URLs (themselves templates) whose JSON becomes a variable. Only
hosts in MAILRELEASE_CONTENT_HOSTS may be fetched, redirects may not leave the host, and a
fetch never takes longer than its timeout: a slow source costs at most that, then the
fallback is used. No fallback and no answer means no value, so the message is held
(never sent with a hole).
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

import urllib3
from jinja2 import ChainableUndefined, StrictUndefined, TemplateSyntaxError
from prometheus_client import Counter

from scheduler.content import budget, outbound
from scheduler.content.budget import BudgetedEnvironment
from scheduler.errors import InvalidInput

DEFAULT_TIMEOUT_MS = 300
MAX_TIMEOUT_MS = 10_000
MAX_CACHE_SECONDS = 86_400
MAX_SOURCES = 5
MAX_BODY_BYTES = 1_000_000
MAX_FILE_BYTES = 25 * 1024 * 1024  # Gmail's limit for a message's attachments
MAX_REDIRECTS = 3
# The one retry waits this long, if the budget leaves room for a second attempt after it.
RETRY_PAUSE_SECONDS = 0.02
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_PLACEHOLDER = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)

FETCHES = Counter("mailrelease_content_fetches", "Send-time content lookups by outcome "
                  "(hit: served from cache; miss: fetched; fallback: fallback used; "
                  "error: failed with no fallback)", ["outcome"])

# Every {{ expression }} in a URL is percent-encoded, so a value cannot add a query
# parameter, a path or another host.
_URL_ENV = BudgetedEnvironment(undefined=StrictUndefined, autoescape=False,
                               finalize=lambda v: quote(str(v), safe=""))


class ContentUnavailable(Exception):
    """A source gave no usable answer and has no fallback."""

    def __init__(self, name: str, why: str):
        super().__init__(f"send-time content '{name}' is unavailable ({why}) and has no "
                         f"fallback")
        self.name = name


@dataclass(frozen=True)
class Source:
    """One checked source."""

    name: str
    url: str
    timeout_ms: int
    cache_seconds: int
    fallback: object  # JSON value, or None for "no fallback"
    has_fallback: bool


def check_url(url, where: str, allowed_hosts: tuple[str, ...]) -> str:
    """A URL template of send-time content: its scheme and host written out and allowed
    (MAILRELEASE_CONTENT_HOSTS), only its path and query may vary; InvalidInput names
    `where` otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput(f"{where} is required", field=where)
    fixed = url.split("{", 1)[0]
    scheme = fixed.partition("://")[0]
    if "{" in url and "/" not in fixed[len(scheme) + 3:]:
        raise InvalidInput(f"{where} must start with http(s)://host/ written out "
                           f"(placeholders only after the host)", field=where)
    if "\\" in url or any(c in _PLACEHOLDER.sub("", url) for c in "\r\n\t "):
        raise InvalidInput(f"{where} may not contain a backslash or white space",
                           field=where)
    try:
        target = outbound.parse(fixed if "{" in url else url)
    except outbound.UnsafeURL as exc:
        raise InvalidInput(f"{where}: {exc}", field=where) from None
    if not outbound.listed(target, allowed_hosts):
        raise InvalidInput(f"{where}: host {target.host} is not in "
                           f"MAILRELEASE_CONTENT_HOSTS", field=where,
                           code="host_not_allowed")
    try:
        _URL_ENV.from_string(url)
    except TemplateSyntaxError as exc:
        raise InvalidInput(f"{where} (line {exc.lineno}): {exc.message}",
                           field=where) from None
    return url


def check_sources(raw, allowed_hosts: tuple[str, ...]) -> list[dict]:
    """Validate a template's `sources`; InvalidInput names the offending field (422)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidInput("sources must be a list", field="sources")
    if len(raw) > MAX_SOURCES:
        raise InvalidInput(f"at most {MAX_SOURCES} sources", field="sources")
    checked, names = [], set()
    for i, item in enumerate(raw):
        where = f"sources[{i}]"
        if not isinstance(item, dict):
            raise InvalidInput(f"{where} must be an object", field=where)
        unknown = set(item) - {"name", "url", "timeout_ms", "cache_seconds", "fallback"}
        if unknown:
            raise InvalidInput(f"{where}.{sorted(unknown)[0]} is not a source field",
                               field=f"{where}.{sorted(unknown)[0]}")
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInput(f"{where}.name must be a variable name (letters, digits, _)",
                               field=f"{where}.name")
        if name in names:
            raise InvalidInput(f"{where}.name '{name}' is used twice", field=f"{where}.name")
        names.add(name)
        url = check_url(item.get("url"), f"{where}.url", allowed_hosts)
        timeout = item.get("timeout_ms", DEFAULT_TIMEOUT_MS)
        if not isinstance(timeout, int) or isinstance(timeout, bool) or not (
                1 <= timeout <= MAX_TIMEOUT_MS):
            raise InvalidInput(f"{where}.timeout_ms must be 1..{MAX_TIMEOUT_MS}",
                               field=f"{where}.timeout_ms")
        cache = item.get("cache_seconds", 0)
        if not isinstance(cache, int) or isinstance(cache, bool) or not (
                0 <= cache <= MAX_CACHE_SECONDS):
            raise InvalidInput(f"{where}.cache_seconds must be 0..{MAX_CACHE_SECONDS}",
                               field=f"{where}.cache_seconds")
        entry = {"name": name, "url": url, "timeout_ms": timeout, "cache_seconds": cache}
        if "fallback" in item:
            entry["fallback"] = item["fallback"]
        checked.append(entry)
    return checked


def stand_ins(sources: list[dict] | None) -> dict:
    """Values that let a template be test-rendered before anything is fetched."""
    return {s["name"]: ChainableUndefined(name=s["name"]) for s in sources or ()}


def _source(entry: dict) -> Source:
    return Source(entry["name"], entry["url"], int(entry.get("timeout_ms",
                                                            DEFAULT_TIMEOUT_MS)),
                  int(entry.get("cache_seconds", 0)), entry.get("fallback"),
                  "fallback" in entry)


class _Cache:
    """A small thread-safe LRU of URL → (expiry, value)."""

    def __init__(self, size: int = 10_000):
        self.size = size
        self._items: OrderedDict[str, tuple[float, object]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str):
        with self._lock:
            hit = self._items.get(key)
            if hit is None or hit[0] < time.monotonic():
                return None, False
            self._items.move_to_end(key)
            return hit[1], True

    def put(self, key: str, value, seconds: int) -> None:
        with self._lock:
            self._items[key] = (time.monotonic() + seconds, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class _Slots:
    """At most `limit` fetches at once per key (a host, a team); waiting ends at a deadline."""

    def __init__(self, limit: int):
        self.limit = limit
        self._gates: dict[object, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def take(self, key, deadline: float) -> threading.BoundedSemaphore | None:
        with self._lock:
            gate = self._gates.get(key)
            if gate is None:
                gate = self._gates[key] = threading.BoundedSemaphore(self.limit)
        return gate if gate.acquire(timeout=max(0.0, deadline - time.monotonic())) else None


class ContentFetcher:
    """Fetches sources for a release or a preview; one per process (shared pool and cache).

    A hanging source costs only its own timeout: a fetch first takes one of its host's
    slots (MAX_PER_HOST) and one of its team's (MAX_PER_TEAM), waiting no longer than its
    deadline, and only then a pool thread; the pool has room for every slot a few teams
    can hold, so one team's or one host's slow answers never queue another's fetches.
    """

    MAX_PER_HOST = 4
    MAX_PER_TEAM = 8
    POOL_THREADS = 64

    def __init__(self, allowed_hosts: tuple[str, ...]):
        self.allowed_hosts = allowed_hosts
        self.cache = _Cache()
        # Connection pools by (scheme, address, port, host): each request goes to the
        # address its host was resolved and checked to (see scheduler/content/outbound.py).
        self._pools: OrderedDict[tuple, urllib3.HTTPConnectionPool] = OrderedDict()
        self._pools_lock = threading.Lock()
        # Fetches run here so the caller can stop waiting at the deadline, whatever the
        # server does (a body trickled byte by byte would outlast socket timeouts).
        self._pool = ThreadPoolExecutor(max_workers=self.POOL_THREADS,
                                        thread_name_prefix="content")
        self._hosts = _Slots(self.MAX_PER_HOST)
        self._teams = _Slots(self.MAX_PER_TEAM)

    def fetch(self, sources: list[dict] | None, data: dict,
              team: int | None = None) -> tuple[dict, list[dict]]:
        """Values for every source, and a report [{name, outcome, detail}].

        `team` is whose message it is (fairness between teams). Raises ContentUnavailable
        when a source fails and has no fallback.
        """
        values, report = {}, []
        for entry in sources or ():
            source = _source(entry)
            value, outcome, detail = self._one(source, data, team)
            report.append({"name": source.name, "outcome": outcome, "detail": detail})
            values[source.name] = value
        return values, report

    def _one(self, source: Source, data: dict, team: int | None):
        try:
            url = budget.render(_URL_ENV.from_string(source.url), data)
        except Exception as exc:  # noqa: BLE001 - a URL that cannot be built is a failure
            return self._fail(source, f"URL could not be built: {exc}")
        cached, hit = self.cache.get(url)
        if hit:
            FETCHES.labels("hit").inc()
            return cached, "hit", None
        deadline = time.monotonic() + source.timeout_ms / 1000
        error = "not fetched"
        for attempt in (1, 2):
            try:
                value = self._within_budget(url, deadline, team)
            except _FetchError as exc:
                error = str(exc)
                # One retry, only if it can still finish within the budget.
                if attempt == 1 and exc.retryable and \
                        deadline - time.monotonic() > RETRY_PAUSE_SECONDS * 3:
                    time.sleep(RETRY_PAUSE_SECONDS)
                    continue
                break
            FETCHES.labels("miss").inc()
            if source.cache_seconds:
                self.cache.put(url, value, source.cache_seconds)
            return value, "fetched", None
        return self._fail(source, error)

    def fetch_file(self, url_template: str, data: dict, team: int | None,
                   timeout_ms: int = MAX_TIMEOUT_MS) -> tuple[bytes, str, str]:
        """An attachment fetched at release under the same rules as send-time content
        (allowed hosts, redirects on the host, the deadline, per-host and per-team
        slots), up to MAX_FILE_BYTES: (bytes, content type, URL). Raises
        ContentUnavailable saying why."""
        try:
            url = budget.render(_URL_ENV.from_string(url_template), data)
        except Exception as exc:  # noqa: BLE001 - a URL that cannot be built is a failure
            raise ContentUnavailable(url_template, f"URL could not be built: {exc}") from None
        deadline = time.monotonic() + timeout_ms / 1000
        try:
            body, content_type = self._within_budget(
                url, deadline, team, lambda: self._get(url, deadline, "*/*", MAX_FILE_BYTES))
        except _FetchError as exc:
            FETCHES.labels("error").inc()
            raise ContentUnavailable(url, str(exc)) from None
        FETCHES.labels("miss").inc()
        return body, content_type, url

    def _within_budget(self, url: str, deadline: float, team: int | None, get=None):
        host = (urlsplit(url).hostname or "").lower()
        host_slot = self._hosts.take(host, deadline)
        if host_slot is None:
            raise _FetchError(f"timed out waiting for {host}, which is busy answering "
                              f"{self.MAX_PER_HOST} other fetches", retryable=False)
        team_slot = self._teams.take(team, deadline) if team is not None else None
        if team is not None and team_slot is None:
            host_slot.release()
            raise _FetchError(f"timed out: this team already has {self.MAX_PER_TEAM} "
                              f"fetches waiting for answers", retryable=False)

        def run():
            try:
                if get is not None:
                    return get()
                body, _ = self._get(url, deadline, "application/json", MAX_BODY_BYTES)
                try:
                    return json.loads(body)
                except ValueError:
                    raise _FetchError("the answer is not JSON", retryable=False) from None
            finally:  # the slots are held until the fetch itself ends, not the wait
                host_slot.release()
                if team_slot is not None:
                    team_slot.release()
        future = self._pool.submit(run)
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            if future.cancel():  # never started: give the slots back here
                host_slot.release()
                if team_slot is not None:
                    team_slot.release()
            raise _FetchError("timed out", retryable=False) from None

    def _fail(self, source: Source, why: str):
        if source.has_fallback:
            FETCHES.labels("fallback").inc()
            return source.fallback, "fallback", why
        FETCHES.labels("error").inc()
        raise ContentUnavailable(source.name, why)

    def _connection_pool(self, target: outbound.Target,
                         address: str) -> urllib3.HTTPConnectionPool:
        key = (target.scheme, address, target.port, target.host)
        with self._pools_lock:
            pool = self._pools.get(key)
            if pool is None:
                if target.scheme == "https":
                    # Connect to the checked address, verify the certificate for the name.
                    pool = urllib3.HTTPSConnectionPool(
                        address, target.port, maxsize=8, retries=False,
                        server_hostname=target.host, assert_hostname=target.host)
                else:
                    pool = urllib3.HTTPConnectionPool(address, target.port, maxsize=8,
                                                      retries=False)
                self._pools[key] = pool
                while len(self._pools) > 64:
                    self._pools.popitem(last=False)[1].close()
            self._pools.move_to_end(key)
            return pool

    def _get(self, url: str, deadline: float, accept: str,
             limit: int) -> tuple[bytes, str]:
        first_host = None
        for _ in range(MAX_REDIRECTS + 1):
            try:
                target = outbound.parse(url)
                if first_host is not None and target.host != first_host:
                    raise outbound.UnsafeURL(f"redirect to another host ({target.host}) "
                                             f"refused")
                address = outbound.resolve(target, self.allowed_hosts)
            except outbound.UnsafeURL as exc:
                raise _FetchError(str(exc), retryable=False) from None
            first_host = target.host
            left = deadline - time.monotonic()
            if left <= 0:
                raise _FetchError("timed out", retryable=False)
            try:
                resp = self._connection_pool(target, address).urlopen(
                    "GET", target.target, redirect=False, preload_content=False,
                    timeout=urllib3.Timeout(connect=left, read=left), assert_same_host=False,
                    headers={"Accept": accept, "Host": target.host_header})
            except urllib3.exceptions.HTTPError as exc:
                raise _FetchError(f"{type(exc).__name__}", retryable=True) from None
            complete = False
            try:
                if resp.status in (301, 302, 303, 307, 308):
                    url = urljoin(url, resp.headers.get("Location", ""))
                    continue
                body = self._read(resp, deadline, limit)
                complete = True
            finally:
                if complete:
                    resp.release_conn()
                else:  # a body left unread: the connection cannot be reused
                    resp.close()
                    if resp.connection is not None:
                        resp.connection.close()
            if resp.status >= 500 or resp.status == 429:
                raise _FetchError(f"HTTP {resp.status}", retryable=True)
            if resp.status >= 400:
                raise _FetchError(f"HTTP {resp.status}", retryable=False)
            return body, resp.headers.get("Content-Type", "")
        raise _FetchError("too many redirects", retryable=False)

    @staticmethod
    def _read(resp, deadline: float, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                if time.monotonic() > deadline:
                    raise _FetchError("timed out", retryable=False)
                chunk = resp.read(65536)
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > limit:
                    shown = (f"{limit // 2**20} MB" if limit % 2**20 == 0
                             else f"{limit / 1e6:g} MB")
                    raise _FetchError(f"the answer is larger than {shown}", retryable=False)
                chunks.append(chunk)
        except urllib3.exceptions.HTTPError as exc:
            raise _FetchError(type(exc).__name__, retryable=False) from None


class _FetchError(Exception):
    def __init__(self, message: str, retryable: bool):
        super().__init__(message)
        self.retryable = retryable

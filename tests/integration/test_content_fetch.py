"""Send-time content against real HTTP servers on loopback: no request reaches a port the
allowlist does not name (the SSRF bypasses and their variants), and one team's hanging
source costs only its own timeout, never the fetch pool of another team."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from flask import Flask, jsonify, redirect

from scheduler.content.sources import ContentFetcher
from tests.helpers import ServerThread, wait_for


def _server(delay: float, redirect_to: str | None = None) -> ServerThread:
    app = Flask(__name__)
    release = threading.Event()
    seen = []

    @app.get("/v")
    def value():
        seen.append(1)
        release.wait(delay)  # a source that hangs (or not) before answering
        return jsonify({"n": 1})

    @app.get("/moved")
    def moved():
        seen.append(1)
        return redirect(redirect_to or "/v")
    server = ServerThread(app)
    server.release, server.seen = release, seen
    return server


def test_a_hanging_source_of_one_team_does_not_starve_another_teams_source():
    hanging, healthy = _server(30.0), _server(0.0)
    slow_host = f"127.0.0.1:{hanging.port}"
    # The same address under two names, so the two are two hosts to the fetcher.
    fast_host = f"localhost:{healthy.port}"
    fetcher = ContentFetcher((slow_host, fast_host))
    slow = [{"name": "v", "url": f"http://{slow_host}/v", "timeout_ms": 1500,
             "fallback": {"n": 0}}]
    fast = [{"name": "v", "url": f"http://{fast_host}/v", "timeout_ms": 1500}]
    try:
        with ThreadPoolExecutor(max_workers=60) as pool:
            # Team 1 floods its hanging source first, with more fetches than the old pool
            # had threads; team 2's healthy ones start while those hang.
            bad = [pool.submit(fetcher.fetch, slow, {}, 1) for _ in range(40)]
            wait_for(lambda: len(hanging.seen) >= ContentFetcher.MAX_PER_HOST)
            # Each must be answered within its own 1.5 s budget: queued behind team 1's
            # hanging fetches, it would time out and fail (it has no fallback).
            good = [pool.submit(fetcher.fetch, fast, {}, 2) for _ in range(20)]
            outcomes = [f.result()[1][0]["outcome"] for f in good]
            bad_outcomes = [f.result()[1][0]["outcome"] for f in bad]
        assert outcomes == ["fetched"] * 20, outcomes
        assert set(bad_outcomes) == {"fallback"}
    finally:
        hanging.release.set()
        hanging.stop()
        healthy.stop()


def test_no_fetch_reaches_a_port_the_allowlist_does_not_name(serve):
    secret = _server(0.0)  # what an attacker wants read (a metadata service, an admin port)
    listed = _server(0.0, redirect_to=f"http://127.0.0.1:{secret.port}/v")
    allowed = f"127.0.0.1:{listed.port}"
    try:
        live = serve(with_worker=False, MAILRELEASE_CONTENT_HOSTS=allowed)
        api = live.user()
        bypasses = [f"http://127.0.0.1:{secret.port}\\@{allowed}/v",
                    f"http://{allowed}\\@127.0.0.1:{secret.port}/v",
                    f"http://x@127.0.0.1:{secret.port}/v", f"http://127.1:{listed.port}/v",
                    f"http://2130706433:{listed.port}/v"]
        for url in bypasses:
            resp = api.post(f"{live.url}/api/v1/templates/preview", json={
                "subject": "s", "html": "{{ v.n }}",
                "sources": [{"name": "v", "url": url}]})
            assert resp.status_code == 422, (url, resp.text)
            assert resp.json()["error"]["field"] == "sources[0].url"
        # Stored by an older version, or reached through a redirect: refused at fetch.
        fetcher = ContentFetcher((allowed,))
        for url in [*bypasses, f"http://{allowed}/moved",
                    f"http://localhost:{listed.port}/v"]:
            _, report = fetcher.fetch([{"name": "v", "url": url, "timeout_ms": 1000,
                                        "fallback": None}], {})
            assert report[0]["outcome"] == "fallback", (url, report)
        assert secret.seen == []
        # The listed port itself answers.
        _, report = fetcher.fetch([{"name": "v", "url": f"http://{allowed}/v"}], {})
        assert report[0]["outcome"] == "fetched"
    finally:
        secret.stop()
        listed.stop()

"""Live image benchmark: a 600×120 countdown, drawn cold and served from the shared cache.

    .venv/bin/python bench/live_image_bench.py              # the figures in README
    .venv/bin/python bench/live_image_bench.py --threads 2  # fewer waitress threads

Two parts:
  drawing  the renderer alone: "cold" is a timer style never drawn before (its background
           and number tiles are made), "new second" a known style at a second not drawn
           yet, "cached" the shared cache's answer for a second already drawn.
  http     the app on waitress (as `mailrelease web` serves it) with SQLite, each fetch
           also counting the open: one campaign's countdown (the same end for everyone:
           one render per second is shared) and per-recipient countdowns (a different
           end each: every fetch is a render), by 1 client (the latency of one fetch) and
           by 8 at once (throughput; on 2 cores their latency is mostly waiting).
Goals (issue 21), on one client's fetches: p99 under 50 ms cached and under 300 ms cold;
images under 150 KB.
Exits 1 when a goal is missed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import update  # noqa: E402

from bench.release_bench import Sandbox, deployment, queue  # noqa: E402
from scheduler.content import drawing, live_images  # noqa: E402
from scheduler.store.db import utcnow  # noqa: E402
from scheduler.store.models import Message  # noqa: E402
from scheduler.wiring import Wiring  # noqa: E402

CLIENTS = 8
SECONDS = 6


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def line(name: str, times: list[float], size: int | None = None,
         wall: float | None = None) -> str:
    ms = [t * 1000 for t in times]
    rate = len(times) / (wall or sum(times) or 1)
    extra = f"  {size / 1000:.1f} KB" if size else ""
    return (f"  {name:<34} n={len(times):<5} p50={statistics.median(ms):7.1f} ms  "
            f"p99={pct(ms, 0.99):7.1f} ms  {rate:7.1f}/s{extra}")


def drawing_part() -> dict:
    print("drawing (one thread)")
    cold, new_second, cached = [], [], []
    size = 0
    for i in range(40):
        # A style never drawn before: a colour of its own.
        style = drawing.Style(color=(i, 17, 17))
        t = time.perf_counter()
        image = drawing.countdown_gif(style, 2 * 86_400 + 13 * 3600 + 45 * 60 + 9)
        cold.append(time.perf_counter() - t)
        size = max(size, len(image))
    style = drawing.Style()
    cache = drawing.RenderCache()
    for i in range(200):
        t = time.perf_counter()
        cache.get(("b", i), lambda i=i: drawing.countdown_gif(style, 90_000 + i))
        new_second.append(time.perf_counter() - t)
    for i in range(2000):
        t = time.perf_counter()
        cache.get(("b", i % 200), lambda: b"")
        cached.append(time.perf_counter() - t)
    print(line("cold (a new timer style)", cold, size))
    print(line("new second (known style)", new_second))
    print(line("cached (same timer, same second)", cached))
    return {"cold": pct(cold, 0.99), "cached": pct(cached, 0.99), "size": size}


def _web(settings, port: int, threads: int) -> None:
    from waitress import serve

    from app import create_app
    serve(create_app(Wiring.build(settings)), host="127.0.0.1", port=port, threads=threads,
          _quiet=True)


def _serve(settings, threads: int) -> tuple[multiprocessing.Process, str]:
    """The web app in its own process, as `mailrelease web` runs (clients apart from it)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = multiprocessing.get_context("fork").Process(target=_web, args=(settings, port, threads),
                                                       daemon=True)
    proc.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            requests.get(url + "/healthz", timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.05)
    return proc, url


def _renders(url: str) -> float:
    text = requests.get(url + "/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("mailrelease_live_image_renders_total"))


def _hammer(urls: list[str], clients: int = CLIENTS) -> tuple[list[float], int]:
    stop = time.monotonic() + SECONDS
    times: list[float] = []
    size = 0

    def client(k: int) -> None:
        nonlocal size
        session = requests.Session()
        session.headers["User-Agent"] = "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"
        n = k
        while time.monotonic() < stop:
            t = time.perf_counter()
            resp = session.get(urls[n % len(urls)], timeout=30)
            times.append(time.perf_counter() - t)
            assert resp.status_code == 200 and resp.content[:3] == b"GIF"
            size = max(size, len(resp.content))
            n += clients
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return times, size


def http_part(folder: Path, threads: int) -> dict:
    sandbox = Sandbox()
    try:
        settings, _, db = deployment(sandbox, folder, 1)
        wiring = Wiring.build(settings, db)
        n = 5000
        now = utcnow()
        queue(db, [(0, now)] * n)
        with db.write() as s:
            s.execute(update(Message).values(status="sent", sent_at=now - dt.timedelta(
                minutes=10)))
        web, url = _serve(settings, threads)
        ends = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2, hours=3)).isoformat()
        shared = live_images.spec_of("countdown", {"until": ends}, {}, None)
        ids = [f"{i:032x}" for i in range(n)]
        def signed(mid: str, spec: dict) -> str:
            return url + wiring.links.live_image_url(mid, spec)[len(wiring.links.public_url):]
        campaign = [signed(mid, shared) for mid in ids]
        # Per recipient: a different end each, so every fetch is its own render.
        own = [signed(mid, live_images.spec_of(
            "countdown", {"until": (dt.datetime.now(dt.UTC) + dt.timedelta(
                days=1, seconds=37 * i)).isoformat()}, {}, None)) for i, mid in enumerate(ids)]
        requests.get(campaign[0], timeout=30)  # the style's first drawing, not measured
        out: dict = {}
        for clients in (1, CLIENTS):
            print(f"http (waitress with {threads} threads, {clients} client"
                  f"{'s' if clients > 1 else ''}, {SECONDS} s each, SQLite, each fetch "
                  f"counts an open)")
            before = _renders(url)
            times, size = _hammer(campaign, clients)
            print(line("one campaign's countdown", times, size, SECONDS)
                  + f"  renders={_renders(url) - before:.0f}")
            if clients == 1:
                out["http_cached"] = pct(times, 0.99)
            before = _renders(url)
            times, size = _hammer(own, clients)
            print(line("per-recipient countdowns (cold)", times, size, SECONDS)
                  + f"  renders={_renders(url) - before:.0f}")
            if clients == 1:
                out["http_cold"], out["http_size"] = pct(times, 0.99), size
        web.terminate()
        return out
    finally:
        sandbox.proc.terminate()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=8,
                        help="waitress threads (8, as `mailrelease web` runs)")
    args = parser.parse_args()
    figures = drawing_part()
    with tempfile.TemporaryDirectory() as folder:
        figures.update(http_part(Path(folder), args.threads))
    missed = []
    if figures["cached"] > 0.05 or figures["http_cached"] > 0.05:
        missed.append("cached p99 under 50 ms")
    if figures["cold"] > 0.3 or figures["http_cold"] > 0.3:
        missed.append("cold p99 under 300 ms")
    if max(figures["size"], figures["http_size"]) > 150_000:
        missed.append("images under 150 KB")
    print("goals:", "all met" if not missed else "MISSED " + ", ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

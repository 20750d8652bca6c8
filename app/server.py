"""Several web processes on gunicorn (the WSGI standard for a pre-forked server): each
process builds its own app after the fork, so no database connection crosses processes."""
from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from gunicorn.app.base import BaseApplication


class _Processes(BaseApplication):
    def __init__(self, make_app: Callable[[], Flask], options: dict):
        self._make_app = make_app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self._make_app()  # in each worker, after the fork


def serve_processes(make_app: Callable[[], Flask], host: str, port: int, processes: int,
                    threads: int) -> None:
    """Serve `make_app()` from `processes` processes of `threads` threads each, until
    SIGTERM or SIGINT (gunicorn then lets requests in progress finish)."""
    _Processes(make_app, {
        "bind": f"{host}:{port}", "workers": processes, "threads": threads,
        "worker_class": "gthread", "preload_app": False, "timeout": 60,
        "graceful_timeout": 30, "keepalive": 5, "accesslog": None,
        "proc_name": "mailrelease-web"}).run()

"""The stack's own limit for the intake benchmark: a Flask app on the same server (waitress
for one process, gunicorn for several) and the same database engine as mailrelease's web,
whose one endpoint inserts one row and answers 202. Nothing of mailrelease is in it.

    python bench/minimal_app.py DATABASE_URL PORT PROCESSES THREADS
"""
from __future__ import annotations

import sys

from flask import Flask, jsonify, request
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, create_engine, insert

metadata = MetaData()
rows = Table("bench_event", metadata, Column("id", Integer, primary_key=True),
             Column("external_id", String(200)), Column("data", JSON))


def make_app(url: str) -> Flask:
    engine = create_engine(url, pool_size=10, max_overflow=20) if url.startswith(
        "postgresql") else create_engine(url, connect_args={"timeout": 30})
    metadata.create_all(engine)
    app = Flask("minimal")

    @app.post("/insert")
    def insert_one():
        body = request.get_json(force=True) or {}
        with engine.begin() as conn:
            conn.execute(insert(rows).values(external_id=str(body.get("id")),
                                             data=body.get("data")))
        return jsonify({"ok": True}), 202

    @app.get("/healthz")
    def health():
        return "ok"
    return app


def main() -> None:
    url, port, processes, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(
        sys.argv[4])
    if processes == 1:
        from waitress import serve
        serve(make_app(url), host="127.0.0.1", port=port, threads=threads, _quiet=True)
        return
    from app.server import serve_processes  # the same gunicorn setup as mailrelease web
    serve_processes(lambda: make_app(url), "127.0.0.1", port, processes, threads)


if __name__ == "__main__":
    main()

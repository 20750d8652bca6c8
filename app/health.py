"""/healthz (database and scheduler state) and /metrics (Prometheus text)."""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import select, text

from app import ctx
from scheduler.store.db import utcnow
from scheduler.store.models import WorkerHeartbeat

bp = Blueprint("health", __name__)
WORKER_STALE_AFTER = dt.timedelta(seconds=60)


@bp.get("/healthz")
def healthz():
    """200 with the database and the release workers' state; 503 when the database is down."""
    c = ctx()
    worker = c.worker
    body = {"status": "ok", "database": "ok",
            "scheduler": {"in_process": worker is not None,
                          "running": bool(worker and worker.running)}}
    try:
        with c.db.read() as session:
            session.execute(text("SELECT 1"))
            since = utcnow() - WORKER_STALE_AFTER
            rows = session.scalars(select(WorkerHeartbeat)
                                   .where(WorkerHeartbeat.seen_at >= since)).all()
            body["scheduler"]["workers"] = [{"id": r.id, "seen_at": r.seen_at.isoformat()}
                                            for r in rows]
    except Exception as exc:  # noqa: BLE001 - any database failure is reported, not raised
        body.update(status="error", database=f"error: {type(exc).__name__}")
        return jsonify(body), 503
    return jsonify(body)


@bp.get("/metrics")
def metrics():
    """This process's counters in Prometheus' text format (scrape every process)."""
    return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)

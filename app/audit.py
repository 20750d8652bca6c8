"""The audit log's guard. Entries are written by the domain operations themselves, in the
transaction of each change (`scheduler.store.audit`); this module only marks the views
that change nothing and, under MAILRELEASE_SELF_CHECK, fails any successful change made
by a member that wrote no entry, so that a new route cannot slip past the log."""
from __future__ import annotations

from flask import Flask, current_app, g, message_flashed, request

from app import ctx
from app.auth import READS
from scheduler.store.audit import entries_written


def changes_nothing(view):
    """Mark a view whose POST changes nothing of the team's (a preview, switching the team
    one looks at) or that machines send in volume and that is stored anyway (events)."""
    view.changes_nothing = True
    return view


def skip() -> None:
    """The request is answered without error but changed nothing (a refused form)."""
    g.audit_skip = True


def _flashed(_app, message, category) -> None:
    if category == "error":  # a form refused: it changed nothing
        g.audit_skip = True


def install(app: Flask) -> None:
    """Under the self-check, every change by a member must have written its entry."""
    message_flashed.connect(_flashed, app)

    @app.before_request
    def _count_before():
        g.audit_entries = entries_written()

    @app.after_request
    def _every_change_is_in_the_log(response):
        view = current_app.view_functions.get(request.endpoint or "")
        if (not ctx().db.self_check or request.method in READS
                or response.status_code >= 400 or response.is_streamed
                or (request.blueprint or "").split(".")[0] not in ("api", "ui")
                or g.get("team_id") is None or g.get("user_id") is None
                or getattr(view, "changes_nothing", False) or g.get("audit_skip")):
            return response
        if entries_written() == g.get("audit_entries", 0):
            raise AssertionError(f"{request.method} {request.path} ({request.endpoint}) "
                                 f"changed something and wrote no audit entry")
        return response

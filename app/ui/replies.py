"""Support replies: pick a recent Gmail thread, choose a saved reply, see it personalized,
send it now or at a time, into the same thread."""
from __future__ import annotations

from flask import Blueprint, flash, g, jsonify, redirect, render_template, request, url_for

from app import audit, ctx, idempotent
from app import gmail_threads as threads
from app.audit import changes_nothing
from app.auth import login_required, viewer_ok
from app.ui import local_send_at, preview_problem
from scheduler import sanity
from scheduler.commands import ThreadReply
from scheduler.content import templates
from scheduler.errors import DomainError
from scheduler.store import idempotency
from scheduler.typed import make

bp = Blueprint("replies", __name__)


def _saved_replies() -> list:
    with ctx().db.read() as s:
        return [{"id": t.id, "name": t.name}
                for t in templates.list_templates(s, g.team_id, "reply")]


@bp.get("/replies")
@login_required
def replies_page():
    """Recent threads of one of your mailboxes, and the team's saved replies."""
    account_id, query = request.args.get("account_id"), request.args.get("q", "")
    found, account, problem = [], None, None
    try:
        account, found = threads.recent(g.team_id, g.user_id, account_id, query, 25)
    except DomainError as exc:
        problem = exc.message
    with ctx().db.read() as s:
        from gmail_client.oauth import can_read
        from scheduler.audience import teams
        mailboxes = [a for a in s.scalars(teams.usable_accounts(g.team_id, g.user_id))
                     if can_read(a.scope_list)]
        mailboxes = [{"id": a.id, "email": a.email} for a in mailboxes]
    return render_template("ui/replies.html", threads=found, account=account, query=query,
                           mailboxes=mailboxes, problem=problem, saved=_saved_replies())


def _reply_body(form, timing: bool = True) -> ThreadReply:
    """The reply the form describes (the API's command)."""
    template = form.get("template_id", "").strip()
    body = {"template_id": sanity.number(template, "template_id", whole=True, minimum=1,
                                         maximum=2 ** 31 - 1) if template else None,
            "from": form.get("from") or None}
    if not body["template_id"]:
        body["html"] = form.get("html", "")
        body["text"] = form.get("text") or None
    if timing:
        body["send_at"] = local_send_at(form)
    return make(ThreadReply, **body)


@bp.route("/replies/<int:account_id>/<thread_id>", methods=["GET", "POST"])
@login_required
def thread_page(account_id, thread_id):
    """The reply form for one thread, with a live preview; POST queues the reply."""
    form = request.form if request.method == "POST" else {}
    error_field = None
    if request.method == "POST":
        try:
            out = threads.reply(g.team_id, g.user_id, account_id, thread_id, _reply_body(form),
                                form_key=idempotent.form_key(form))
        except DomainError as exc:
            audit.skip()
            flash(exc.message, "error")
            error_field = exc.field
        except idempotency.Replay as replay:
            audit.skip()
            flash("This reply was already sent: nothing was queued twice.", "ok")
            return redirect(url_for("ui.queue.message_page", message_id=replay.body["id"]))
        else:
            flash("Reply queued in the thread." if out["status"] == "scheduled" else
                  "Reply saved but held: see why below.", "ok")
            return redirect(url_for("ui.queue.message_page", message_id=out["id"]))
    try:
        account, thread, said = threads.read(g.team_id, g.user_id, account_id, thread_id)
    except DomainError as exc:
        return render_template("ui/error.html", code=exc.status, message=exc.message), \
            exc.status
    addresses = [{"email": account.email, "name": account.display_name or ""}] + [
        a for a in account.send_as or () if a["email"] != account.email.lower()]
    return render_template("ui/reply.html", thread=thread, account=account, form=form,
                           conversation=said,
                           saved=_saved_replies(), addresses=addresses,
                           error_field=error_field), 422 if error_field else 200


@bp.post("/replies/<int:account_id>/<thread_id>/preview")
@login_required
@viewer_ok
@changes_nothing
def reply_preview(account_id, thread_id):
    """JSON: the reply as the customer would see it (for the page's live preview)."""
    try:
        body = _reply_body(request.form, timing=False)
        out = threads.preview(g.team_id, g.user_id, account_id, thread_id, body)
    except DomainError as exc:
        return preview_problem(exc)
    return jsonify({k: out[k] for k in ("subject", "html", "text", "to")})

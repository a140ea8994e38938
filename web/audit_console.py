"""The auditor's console: read-only, and every page view is audited.

The audit trail's verification, the access log (with CSV), the replica browser (lineage
shown, encrypted values masked; revealing one is its own audited action), the
sanitization report and the sync history.
"""

from __future__ import annotations

import datetime as dt
import io

from flask import Blueprint, Response, abort, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy import Table, select

from gateway.security import audit, csvcells
from gateway.replica import freshness
from gateway.replica.dbtypes import ENCRYPTED
from gateway.portal.models import AuditEntry, User
from gateway.replica.tables import SyncRun
from gateway.replica.sanitize import load_policy
from gateway.replica.schema import canonical_tables, encryption_context
from web import context, db
from web.consoles import ActionForm, role_required

bp = Blueprint("auditor", __name__)


PAGE_SIZE = 50

MAX_PAGE = 1_000_000

@bp.get("/audit")
@role_required("auditor")
def audit_home() -> ResponseReturnValue:
    settings = context.settings()
    # Reading the whole chain is long: a plain (deferred) transaction on SQLite, so it neither
    # waits for this request's own write lock nor holds one against the other workers.
    reader = db.portal().get_bind().execution_options(sqlite_begin="BEGIN")
    db.portal().commit()  # verification waits for appends in flight, which may wait for this request's lock
    result = audit.verify(reader, context.keys().audit, settings.audit.checkpoint_file)  # type: ignore[arg-type]
    context.record("auditor.view", page="verification")
    return render_template("console_audit.html", result=result)

@bp.get("/audit/access-log")
@role_required("auditor")
def access_log() -> ResponseReturnValue:
    entries = _access_entries(limit=200)
    context.record("auditor.view", page="access_log", filters=dict(request.args))
    return render_template("console_access_log.html", entries=entries, args=request.args, zone=context.settings().zone,
                           usernames=_usernames(entries))

@bp.get("/audit/access-log.csv")
@role_required("auditor")
def access_log_csv() -> ResponseReturnValue:
    """The access log as CSV (same filters as the page)."""
    rows = _access_entries(limit=100_000)
    out = io.StringIO()
    usernames = _usernames(rows)
    csvcells.write_rows(out, ["at", "user_id", "username", "role", "action", "source_system", "student_source_id",
                              "page", "reason", "ip"],
                        ([e.at.isoformat(), e.actor_user_id, usernames.get(e.actor_user_id or 0, ""), e.actor_role, e.action,
                          e.source_system, e.student_source_id, (e.detail or {}).get("page", ""),
                          (e.detail or {}).get("reason", ""), e.ip] for e in rows))
    context.record("auditor.export", page="access_log")
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=access-log.csv"})

def _access_entries(limit: int) -> list[AuditEntry]:
    """Record views and refusals, filtered by ?student=, ?user= and ?from=/?to= (district dates)."""
    # Only rows in the chain (ids from 1; verification names any other): a forged row is never listed.
    query = select(AuditEntry).where(AuditEntry.id >= 1, AuditEntry.action.in_(("record.view", "record.refused")))
    student, user = request.args.get("student", "").strip(), request.args.get("user", "").strip()
    if student:
        query = query.where(AuditEntry.student_source_id == student)
    if user.isdigit():
        query = query.where(AuditEntry.actor_user_id == int(user))
    elif user:
        query = query.where(AuditEntry.actor_user_id.in_(select(User.id).where(User.username == user)))
    zone = context.settings().zone
    for name, compare in (("from", lambda col, day: col >= day), ("to", lambda col, day: col < day + dt.timedelta(days=1))):
        day = _date_arg(name)
        if day is not None:
            query = query.where(compare(AuditEntry.at, dt.datetime.combine(day, dt.time(), zone)))
    return list(db.portal().scalars(query.order_by(AuditEntry.id.desc()).limit(limit)))

def _usernames(entries: list[AuditEntry]) -> dict[int, str]:
    """Who each user id is: the log keeps ids (usernames can be reused after deletion), people read names."""
    ids = {e.actor_user_id for e in entries if e.actor_user_id is not None}
    if not ids:
        return {}
    return {user_id: name for user_id, name in db.portal().execute(select(User.id, User.username).where(User.id.in_(ids)))}

def _date_arg(name: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None

LINEAGE = ("source_system", "source_id", "row_hash", "synced_at", "sync_run_id")


def lineage_first(model: Table) -> list[str]:
    """The browser's column order: id and the lineage first, so a wide table never hides where a row came from."""
    names = [c.name for c in model.columns]
    lineage = [name for name in LINEAGE if name in names]
    return ["id", *lineage, *(name for name in names if name != "id" and name not in lineage)]


def _table(name: str) -> Table:
    table = canonical_tables().get(name)
    if table is None:
        abort(404)
    return table

@bp.get("/audit/replica")
@role_required("auditor")
def replica_tables() -> ResponseReturnValue:
    context.record("auditor.view", page="replica")
    return render_template("console_replica_index.html", tables=list(canonical_tables()))

@bp.get("/audit/replica/<table>")
@role_required("auditor")
def replica_browser(table: str) -> ResponseReturnValue:
    """A canonical table with its lineage; encrypted values masked until revealed one by one."""
    model = _table(table)
    page = min(max(request.args.get("page", 1, type=int), 1), MAX_PAGE)  # junk falls back to 1, never a 500
    source_id = request.args.get("source_id", "").strip()
    query = select(model).order_by(model.c.id).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    if source_id:
        query = query.where(model.c.source_id == source_id)
    rows = db.replica().execute(query).mappings().all()
    masked = {column.name for column in model.columns if column.info.get("storage") == ENCRYPTED}
    context.record("auditor.view", page="replica", table=table, page_number=page, source_id=source_id or None)
    return render_template("console_replica.html", table=table, columns=lineage_first(model), rows=rows,
                           lineage=LINEAGE,
                           masked=masked, page=page, more=len(rows) == PAGE_SIZE, source_id=source_id, form=ActionForm())

@bp.post("/audit/replica/<table>/<int:row_id>/reveal/<column>")
@role_required("auditor")
def reveal(table: str, row_id: int, column: str) -> ResponseReturnValue:
    """Decrypt one field for an auditor: a separate action, audited with what was revealed."""
    if not ActionForm().validate_on_submit():
        abort(400)
    model = _table(table)
    if column not in model.columns or model.columns[column].info.get("storage") != ENCRYPTED:
        abort(404)
    row = db.replica().execute(select(model.c.source_system, model.c.source_id, model.c[column]).where(model.c.id == row_id)).first()
    if row is None:
        abort(404)
    value = context.cipher().decrypt_optional(row[2], encryption_context(table, column))
    context.record("auditor.reveal", table=table, column=column, row_source_system=row[0], row_source_id=row[1])
    return render_template("console_reveal.html", table=table, column=column, source_id=row[1], value=value)

@bp.get("/audit/sanitization")
@role_required("auditor")
def sanitization() -> ResponseReturnValue:
    """Every replica column with its class under the policy, and what recent runs left unmapped."""
    policy = load_policy(context.settings().sync.sanitize_policy or None)
    columns = [(name, column.name, policy.storage_of(name, column.name))
               for name, table in canonical_tables().items() for column in table.columns]
    runs = freshness.last_successes(db.replica())
    context.record("auditor.view", page="sanitization")
    return render_template("console_sanitization.html", columns=columns, runs=runs, policy=policy)

@bp.get("/audit/sync-history")
@role_required("auditor")
def sync_history() -> ResponseReturnValue:
    runs = db.replica().scalars(select(SyncRun).order_by(SyncRun.id.desc()).limit(100)).all()
    context.record("auditor.view", page="sync_history")
    return render_template("console_sync_history.html", runs=runs, zone=context.settings().zone)

"""The consoles of the people who run the portal: staff, IT, auditors.

Each route names its roles. Anonymous requests go to the login page; any other signed-in
role gets 404, exactly as for a page that does not exist. Staff roles always signed in
with their second factor. The IT console only writes job definitions and run requests;
the auditor's pages change nothing but the audit entries of their own views.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from sqlalchemy import Table, select, text
from sqlalchemy.exc import SQLAlchemyError
from wtforms import BooleanField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from gateway import alerts, applications, audit, freshness, jobs, letters
from gateway.dbtypes import ENCRYPTED, utcnow
from gateway.sanitize import load_policy
from gateway.schema import canonical_tables, encryption_context
from gateway.accounts import AccountError, create_user, end_all_sessions
from gateway.portal import Application, AuditEntry, SecurityReport, User
from gateway.replica import SyncReject, SyncRun
from web import context, db
from web import letters as letter_pages

bp = Blueprint("consoles", __name__)
View = TypeVar("View", bound=Callable[..., ResponseReturnValue])


def role_required(*roles: str) -> Callable[[View], View]:
    """Only these roles (and admin); anyone else signed in gets 404."""

    def decorate(view: View) -> View:
        @wraps(view)
        @login_required
        def guarded(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            if context.user().role not in (*roles, "admin"):
                context.record("console.refused", page=request.endpoint or "")
                abort(404)
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


class ActionForm(FlaskForm):  # type: ignore[misc]
    """Only the CSRF token: every console action is a POST with one."""


# --- IT -------------------------------------------------------------------------------------------

@bp.get("/it")
@role_required("it")
def it_home() -> ResponseReturnValue:
    replica = db.replica()
    runs = replica.scalars(select(SyncRun).order_by(SyncRun.id.desc()).limit(20)).all()
    fresh = freshness.by_table(replica, utcnow(), context.settings().policy.stale_after_hours)
    return render_template("console_it.html", jobs=jobs.list_jobs(db.portal()), runs=runs, fresh=sorted(fresh.values(), key=lambda f: f.table),
                           next_runs=next_runs(),
                           alerts=alerts.open_alerts(db.portal(), "it"), connectors=context.settings().connectors,
                           form=ActionForm(), zone=context.settings().zone)


@bp.post("/it/run-now/<connector>")
@role_required("it")
def it_run_now(connector: str) -> ResponseReturnValue:
    if not ActionForm().validate_on_submit():
        abort(400)
    request_id = jobs.request_run(db.portal(), context.settings(), connector, full=False,
                                  requested_by=f"web:{context.user().username}")
    context.record("sync.run_requested", connector=connector, request_id=request_id)
    flash(_("Run requested; the scheduler starts it within seconds."))
    return redirect(url_for("consoles.it_home"))


# --- Auditor ------------------------------------------------------------------------------------

@bp.get("/audit")
@role_required("auditor")
def audit_home() -> ResponseReturnValue:
    settings = context.settings()
    result = audit.verify(db.portal().get_bind(), context.keys().audit, settings.audit.checkpoint_file)  # type: ignore[arg-type]
    context.record("auditor.view", page="verification")
    return render_template("console_audit.html", result=result)


@bp.get("/audit/access-log")
@role_required("auditor")
def access_log() -> ResponseReturnValue:
    entries = _access_entries(limit=200)
    context.record("auditor.view", page="access_log", filters=dict(request.args))
    return render_template("console_access_log.html", entries=entries, args=request.args, zone=context.settings().zone)


# --- Staff (Student Accounting) -------------------------------------------------------------------

@bp.get("/staff")
@role_required("staff")
def staff_home() -> ResponseReturnValue:
    portal, replica = db.portal(), db.replica()
    pending = [(a, applications.candidates(replica, context.cipher(), a)) for a in applications.pending(portal)]
    reports = portal.scalars(select(SecurityReport).where(SecurityReport.status != "resolved")
                             .order_by(SecurityReport.created_at)).all()
    context.record("staff.view", page="queues")
    return render_template("console_staff.html", pending=pending, reports=reports, form=ActionForm(),
                           alerts=alerts.open_alerts(portal, "staff"), zone=context.settings().zone)


@bp.post("/staff/applications/<int:application_id>/approve/<guardian>")
@role_required("staff")
def approve(application_id: int, guardian: str) -> ResponseReturnValue:
    if not ActionForm().validate_on_submit():
        abort(400)
    application = db.portal().get(Application, application_id) or abort(404)
    try:
        approval = applications.approve(db.portal(), db.replica(), context.settings(), context.cipher(), application,
                                        guardian, staff_id=context.user().id)
    except applications.ApplicationError as refused:
        flash(str(refused))
        return redirect(url_for("consoles.staff_home"))
    db.portal().commit()
    context.record("application.approved", application_id=application_id, guardian=guardian)
    flash(_("Approved: the code was sent to the email the school holds.") if approval.emailed_to_sis_address
          else _("Approved. The school holds no email for this guardian: print a letter with code %(code)s.", code=approval.code))
    return redirect(url_for("consoles.staff_home"))


class LettersForm(FlaskForm):  # type: ignore[misc]
    school = StringField(_l("School id"), validators=[Length(max=64)])
    grade = StringField(_l("Grade"), validators=[Length(max=16)])
    include_students = BooleanField(_l("Also a Student Portal letter for each student"))


@bp.route("/staff/letters", methods=["GET", "POST"])
@role_required("staff")
def letters_page() -> ResponseReturnValue:
    """Issue codes and print one letter per guardian-student link of a school or grade."""
    form = LettersForm()
    if form.validate_on_submit() and (form.school.data or form.grade.data):
        chosen = letters.select_students(db.replica(), form.school.data or None, form.grade.data or None, [])
        batch = letters.issue_letters(db.portal(), db.replica(), context.settings(), chosen,
                                      bool(form.include_students.data), staff_id=context.user().id)
        db.portal().commit()
        context.record("letters.issued", count=len(batch), school=form.school.data, grade=form.grade.data)
        return letter_pages.render(batch, context.settings())
    return render_template("console_letters.html", form=form)


PAGE_SIZE = 50
MAX_PAGE = 1_000_000


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
    return render_template("console_replica.html", table=table, columns=[c.name for c in model.columns], rows=rows,
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


class JobForm(FlaskForm):  # type: ignore[misc]
    connector = SelectField(_l("Connector"), choices=[])
    schedule = StringField(_l("Every (30s, 15m, 2h, 1d) or a crontab expression"), validators=[DataRequired(), Length(max=64)])
    full = BooleanField(_l("Full runs"))


@bp.route("/it/jobs", methods=["GET", "POST"])
@role_required("it")
def it_jobs() -> ResponseReturnValue:
    """Add a job definition; the scheduler process picks it up within seconds."""
    form = JobForm()
    form.connector.choices = [SelectChoice(c.name, c.name) for c in context.settings().connectors]
    if form.validate_on_submit():
        text_ = form.schedule.data.strip()
        is_cron = " " in text_
        try:
            added = jobs.add_job(db.portal(), context.settings(), form.connector.data, text_ if is_cron else None,
                                 None if is_cron else text_, bool(form.full.data))
        except jobs.JobError as refused:
            form.schedule.errors.append(str(refused))
        else:
            context.record("job.added", jobs=[job.id for job in added])
            return redirect(url_for("consoles.it_home"))
    return render_template("console_jobs.html", form=form, jobs=jobs.list_jobs(db.portal()), action=ActionForm())


@bp.post("/it/jobs/<int:job_id>/<action>")
@role_required("it")
def it_job_action(job_id: int, action: str) -> ResponseReturnValue:
    if action not in ("pause", "resume", "remove"):
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        if action == "remove":
            jobs.remove_job(db.portal(), job_id)
        else:
            jobs.set_paused(db.portal(), job_id, action == "pause")
    except jobs.JobError:
        abort(404)
    context.record(f"job.{action}", job_id=job_id)
    return redirect(url_for("consoles.it_jobs"))


@bp.get("/it/runs/<int:run_id>")
@role_required("it", "auditor")
def it_run(run_id: int) -> ResponseReturnValue:
    """One run: counts per table, unmapped fields, and the records it set aside."""
    run = db.replica().get(SyncRun, run_id)
    if run is None:
        abort(404)
    rejects = db.replica().scalars(select(SyncReject).where(SyncReject.sync_run_id == run_id).order_by(SyncReject.id).limit(500)).all()
    if context.user().role == "auditor":
        context.record("auditor.view", page="sync_run", run_id=run_id)
    return render_template("console_run.html", run=run, rejects=rejects, zone=context.settings().zone)


@bp.get("/audit/access-log.csv")
@role_required("auditor")
def access_log_csv() -> ResponseReturnValue:
    """The access log as CSV (same filters as the page)."""
    rows = _access_entries(limit=100_000)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["at", "user_id", "role", "action", "source_system", "student_source_id", "page", "ip"])
    for e in rows:
        writer.writerow([e.at.isoformat(), e.actor_user_id, e.actor_role, e.action, e.source_system, e.student_source_id,
                         (e.detail or {}).get("page", ""), e.ip])
    context.record("auditor.export", page="access_log")
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=access-log.csv"})


def _access_entries(limit: int) -> list[AuditEntry]:
    """Record views and refusals, filtered by ?student=, ?user= and ?from=/?to= (district dates)."""
    query = select(AuditEntry).where(AuditEntry.action.in_(("record.view", "record.refused")))
    student, user = request.args.get("student", "").strip(), request.args.get("user", "").strip()
    if student:
        query = query.where(AuditEntry.student_source_id == student)
    if user.isdigit():
        query = query.where(AuditEntry.actor_user_id == int(user))
    zone = context.settings().zone
    for name, compare in (("from", lambda col, day: col >= day), ("to", lambda col, day: col < day + dt.timedelta(days=1))):
        day = _date_arg(name)
        if day is not None:
            query = query.where(compare(AuditEntry.at, dt.datetime.combine(day, dt.time(), zone)))
    return list(db.portal().scalars(query.order_by(AuditEntry.id.desc()).limit(limit)))


def _date_arg(name: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None


@bp.get("/audit/sync-history")
@role_required("auditor")
def sync_history() -> ResponseReturnValue:
    runs = db.replica().scalars(select(SyncRun).order_by(SyncRun.id.desc()).limit(100)).all()
    context.record("auditor.view", page="sync_history")
    return render_template("console_sync_history.html", runs=runs, zone=context.settings().zone)


class StaffAccountForm(FlaskForm):  # type: ignore[misc]
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    display_name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    role = SelectField(_l("Role"), choices=[SelectChoice(r, r) for r in ("staff", "it", "auditor", "admin")])
    password = StringField(_l("First password (they change it after signing in)"), validators=[DataRequired(), Length(max=256)])


@bp.route("/admin", methods=["GET", "POST"])
@role_required("admin")
def admin_home() -> ResponseReturnValue:
    """Admins manage the staff-role accounts (each enrols its own second factor at first sign-in)."""
    form = StaffAccountForm()
    if form.validate_on_submit():
        try:
            created = create_user(db.portal(), context.settings(), username=form.username.data, password=form.password.data,
                                  role=form.role.data, display_name=form.display_name.data)
        except AccountError as refused:
            form.password.errors.append(str(refused))
        else:
            db.portal().commit()
            context.record("staff_account.created", target_user=created.id, role=created.role)
            return redirect(url_for("consoles.admin_home"))
    staff = db.portal().scalars(select(User).where(User.role.in_(("staff", "it", "auditor", "admin"))).order_by(User.username)).all()
    return render_template("console_admin.html", form=form, staff=staff, action=ActionForm())


@bp.post("/admin/accounts/<int:user_id>/disable")
@role_required("admin")
def disable_account(user_id: int) -> ResponseReturnValue:
    if not ActionForm().validate_on_submit():
        abort(400)
    user = db.portal().get(User, user_id)
    if user is None or user.id == context.user().id:
        abort(404)
    user.disabled_at = utcnow()
    end_all_sessions(db.portal(), user.id, "disabled")
    db.portal().commit()
    context.record("staff_account.disabled", target_user=user.id)
    return redirect(url_for("consoles.admin_home"))


def next_runs() -> dict[str, dt.datetime]:
    """Next run times from the scheduler's own job store, where it has run at least once."""
    try:
        rows = db.portal().execute(text("SELECT id, next_run_time FROM apscheduler_jobs")).all()
    except SQLAlchemyError:
        db.portal().rollback()
        return {}
    return {job_id: dt.datetime.fromtimestamp(moment, dt.timezone.utc) for job_id, moment in rows if moment is not None}


class RejectForm(FlaskForm):  # type: ignore[misc]
    reason = StringField(_l("Reason for rejecting"), validators=[DataRequired(), Length(max=500)])


@bp.post("/staff/applications/<int:application_id>/reject")
@role_required("staff")
def reject(application_id: int) -> ResponseReturnValue:
    form = RejectForm()
    if not form.validate_on_submit():
        abort(400)
    application = db.portal().get(Application, application_id) or abort(404)
    try:
        applications.reject(db.portal(), application, form.reason.data, staff_id=context.user().id)
    except applications.ApplicationError as refused:
        flash(str(refused))
        return redirect(url_for("consoles.staff_home"))
    db.portal().commit()
    context.record("application.rejected", application_id=application_id)
    flash(_("Application %(number)s rejected.", number=application_id))
    return redirect(url_for("consoles.staff_home"))

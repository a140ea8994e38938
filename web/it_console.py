"""The IT console: connectors and jobs (definitions and run requests only), runs, freshness, alerts."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from wtforms import BooleanField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from gateway.portal import alerts, jobs
from gateway.replica import freshness
from gateway.replica.dbtypes import utcnow
from gateway.replica.tables import SyncReject, SyncRun
from web import context, db
from web.consoles import ActionForm, role_required

bp = Blueprint("it", __name__)


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
    return redirect(url_for("it.it_home"))

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
            return redirect(url_for("it.it_home"))
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
    return redirect(url_for("it.it_jobs"))

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

def next_runs() -> dict[str, dt.datetime]:
    """Next run times from the scheduler's own job store, where it has run at least once."""
    try:
        rows = db.portal().execute(text("SELECT id, next_run_time FROM apscheduler_jobs")).all()
    except SQLAlchemyError:
        db.portal().rollback()
        return {}
    return {job_id: dt.datetime.fromtimestamp(moment, dt.timezone.utc) for job_id, moment in rows if moment is not None}

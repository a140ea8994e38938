"""The IT console: connectors, jobs (definitions and run requests only), the scheduler's heartbeat, runs, freshness, alerts."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_timedelta
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from gateway.errors import UnknownPlugin
from gateway.portal import alerts, heartbeat, jobs
from gateway.replica import freshness
from gateway.replica.dbtypes import utcnow
from gateway.replica.run_findings import finding_lines
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
                           scheduler=heartbeat.state(db.portal(), context.settings().scheduler.poll_seconds),
                           alerts=alerts.open_alerts(db.portal(), "it"), connectors=context.settings().connectors,
                           form=ActionForm(), zone=context.settings().zone)

@bp.post("/it/run-now/<connector>")
@role_required("it")
def it_run_now(connector: str) -> ResponseReturnValue:
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        request_id = jobs.request_run(db.portal(), context.settings(), connector, full=False,
                                      requested_by=f"web:{context.user().username}")
    except UnknownPlugin:
        abort(404)  # a connector the configuration does not name: nothing to run
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
        cron, every = jobs.read_schedule(form.schedule.data)
        try:
            added = jobs.add_job(db.portal(), context.settings(), form.connector.data, cron, every,
                                 bool(form.full.data))
        except jobs.JobError as refused:
            form.schedule.errors.append(schedule_problem(refused))
        else:
            context.record("job.added", jobs=[job.id for job in added])
            return redirect(url_for("it.it_home"))
    return render_template("console_jobs.html", form=form, jobs=jobs.list_jobs(db.portal()), action=ActionForm())

def schedule_problem(refused: jobs.JobError) -> str:
    """Why a schedule typed in the form was refused, in the form's own terms (never a parser's text)."""
    if isinstance(refused, jobs.BadSchedule) and refused.kind == "cron":
        return _("“%(schedule)s” is not a crontab schedule: write five fields (minute, hour, day of month, month, "
                 "day of week), e.g. 30 2 * * * for 2:30 every night.", schedule=refused.schedule)
    if isinstance(refused, jobs.BadSchedule):
        return _("“%(schedule)s” is not a duration or a crontab schedule: write a duration such as 15m, 2h or 1d, "
                 "or five crontab fields such as 30 2 * * *.", schedule=refused.schedule)
    if isinstance(refused, jobs.TooOften):
        return _("“%(schedule)s” would run every %(every)s; runs of a job must be at least %(minimum)s apart. "
                 "Choose a longer interval.", schedule=refused.schedule, every=span(refused.seconds),
                 minimum=span(refused.minimum))
    if isinstance(refused, jobs.DuplicateJob):
        return _("Job %(job)s already runs %(connector)s on this schedule the same way.", job=refused.existing,
                 connector=refused.connector)
    return str(refused)


def span(seconds: int) -> str:
    """``300`` as "5 minutes" (in the page's language), in the largest unit that says it exactly."""
    unit = "hour" if seconds % 3600 == 0 else "minute" if seconds % 60 == 0 else "second"
    return format_timedelta(dt.timedelta(seconds=seconds), granularity=unit, threshold=10**9)


@bp.get("/it/jobs/<int:job_id>/remove")
@role_required("it")
def it_job_remove(job_id: int) -> ResponseReturnValue:
    """Ask before removing: the page names the job; only its form removes it."""
    try:
        job = jobs.get_job(db.portal(), job_id)
    except jobs.NoSuchJob:
        abort(404)
    return render_template("console_job_remove.html", job=job, action=ActionForm())


@bp.post("/it/jobs/<int:job_id>/<action>")
@role_required("it")
def it_job_action(job_id: int, action: str) -> ResponseReturnValue:
    if action not in ("pause", "resume", "remove"):
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        if action == "remove" and request.form.get("confirm") != "yes":  # not from the confirmation page
            jobs.get_job(db.portal(), job_id)  # an unknown job is 404 here, not a redirect to a 404
            return redirect(url_for("it.it_job_remove", job_id=job_id), 303)
        if action == "remove":
            jobs.remove_job(db.portal(), job_id)
        else:
            jobs.set_paused(db.portal(), job_id, action == "pause")
    except jobs.NoSuchJob:
        abort(404)
    context.record(f"job.{action}", job_id=job_id)
    if action == "remove":
        flash(_("Job %(job)s removed; the scheduler stops running it within seconds.", job=job_id))
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
    return render_template("console_run.html", run=run, rejects=rejects, findings=finding_lines(run.findings),
                           zone=context.settings().zone)

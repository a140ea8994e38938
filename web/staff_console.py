"""Student Accounting's desk: reports, training sessions, guidelines, accounts, written requests."""

from __future__ import annotations

import datetime as dt
from typing import NoReturn

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import DateField, DateTimeLocalField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from gateway.portal import accounts, alerts, facts, guidelines, people
from gateway.portal.facts import StudentRef
from gateway.replica.dbtypes import utcnow
from gateway.portal.models import Denial, SecurityReport, TerminationRequest, TrainingSession, User
from web import context, db
from web.consoles import ActionForm, role_required

bp = Blueprint("staff", __name__, url_prefix="/staff")
STATUSES = ("new", "in_progress", "resolved")


class ReportForm(FlaskForm):  # type: ignore[misc]
    status = SelectField(_l("Status"), choices=[SelectChoice(s, s.replace("_", " ")) for s in STATUSES])
    staff_notes = TextAreaField(_l("Notes (staff only)"), validators=[Length(max=5000)])
    resolution = TextAreaField(_l("Resolution"), validators=[Length(max=5000)])


@bp.route("/reports/<int:report_id>", methods=["GET", "POST"])
@role_required("staff")
def report(report_id: int) -> ResponseReturnValue:
    row = db.portal().get(SecurityReport, report_id)
    if row is None:
        abort(404)
    form = ReportForm(obj=row)
    if form.validate_on_submit():
        row.status, row.staff_notes, row.resolution, row.updated_at = (form.status.data, form.staff_notes.data,
                                                                       form.resolution.data, utcnow())
        db.portal().commit()
        alerts.security_report_status_changed(db.portal(), report_id, row.status)
        context.record("security_report.updated", report_id=report_id, status=row.status)
        flash(_("Report %(number)s updated.", number=report_id))
        return redirect(url_for("consoles.staff_home"))
    return render_template("staff_report.html", report=row, form=form, zone=context.settings().zone)


class TrainingForm(FlaskForm):  # type: ignore[misc]
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200)])
    starts_at = DateTimeLocalField(_l("Starts (district time)"), validators=[DataRequired()])
    location = StringField(_l("Where"), validators=[DataRequired(), Length(max=200)])


@bp.route("/training", methods=["GET", "POST"])
@role_required("staff")
def training() -> ResponseReturnValue:
    form = TrainingForm()
    portal = db.portal()
    if form.validate_on_submit():
        starts = form.starts_at.data.replace(tzinfo=context.settings().zone)
        portal.add(TrainingSession(title=form.title.data, location=form.location.data, starts_at=starts))
        portal.commit()
        context.record("training.added", title=form.title.data)
        return redirect(url_for("staff.training"))
    sessions = portal.scalars(select(TrainingSession).where(TrainingSession.retired_at.is_(None))
                              .order_by(TrainingSession.starts_at)).all()
    return render_template("staff_training.html", form=form, sessions=sessions, action=ActionForm(), zone=context.settings().zone)


@bp.post("/training/<int:session_id>/retire")
@role_required("staff")
def retire_training(session_id: int) -> ResponseReturnValue:
    if not ActionForm().validate_on_submit():
        abort(400)
    row = db.portal().get(TrainingSession, session_id)
    if row is None:
        abort(404)
    row.retired_at = utcnow()
    db.portal().commit()
    context.record("training.retired", session_id=session_id)
    return redirect(url_for("staff.training"))


class GuidelinesForm(FlaskForm):  # type: ignore[misc]
    body = TextAreaField(_l("The new user guidelines"), validators=[DataRequired(), Length(min=20, max=20000)])


@bp.route("/guidelines", methods=["GET", "POST"])
@role_required("staff")
def publish_guidelines() -> ResponseReturnValue:
    portal = db.portal()
    current = guidelines.ensure_published(portal)
    form = GuidelinesForm(body=current.body)
    if form.validate_on_submit():
        version = guidelines.publish(portal, form.body.data, context.user().id)
        portal.commit()
        context.record("guidelines.published", version=version.version)
        flash(_("Version %(number)s published: every user accepts it at their next request.", number=version.version))
        return redirect(url_for("consoles.staff_home"))
    return render_template("staff_guidelines.html", form=form, current=current)


class DenyForm(FlaskForm):  # type: ignore[misc]
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=500)])


@bp.get("/accounts")
@role_required("staff")
def accounts_page() -> ResponseReturnValue:
    # A name or username is short; a longer query is cut rather than sent to LIKE, which
    # SQLite refuses past 50,000 bytes. "%" and "_" are matched as themselves.
    query = request.args.get("q", "").strip().lower()[:200]
    found = []
    if query:
        found = [u for u in db.portal().scalars(select(User).where(
            func.lower(User.username).contains(query, autoescape=True)
            | func.lower(User.display_name).contains(query, autoescape=True)).limit(50))
            if accounts.may_manage(context.user().role, u.role)]
    # A denial that also holds an account above the actor's rank is not theirs to read or lift.
    denials = people.liftable(db.portal(), db.replica(), context.keys().blind_index, context.user().role)
    context.record("staff.view", page="accounts", query=query or None)
    return render_template("staff_accounts.html", query=query, found=found, denials=denials, action=ActionForm(), deny=DenyForm())


@bp.post("/accounts/<int:user_id>/<action>")
@role_required("staff")
def account_action(user_id: int, action: str) -> ResponseReturnValue:
    user = db.portal().get(User, user_id)
    form = DenyForm() if action == "deny" else ActionForm()
    if user is None or action not in ("unlock", "deny") or not accounts.may_manage(context.user().role, user.role):
        _refuse_account(user_id, action)
    if not form.validate_on_submit():
        abort(400)
    if action == "unlock":
        accounts.unlock(db.portal(), user.username)
    else:
        people.deny(db.portal(), context.cipher(), context.keys().blind_index, form.reason.data,
                    source_system=user.source_system, guardian_source_id=user.guardian_source_id,
                    username=user.username, by=context.user().id)
    db.portal().commit()
    context.record(f"account.{action}", target_user=user.id)
    flash(_("Done: %(action)s %(username)s.", action=action, username=user.username))
    return redirect(url_for("staff.accounts_page", q=user.username))


@bp.post("/denials/<int:denial_id>/restore")
@role_required("staff")
def restore(denial_id: int) -> ResponseReturnValue:
    if not ActionForm().validate_on_submit():
        abort(400)
    denial = db.portal().get(Denial, denial_id)
    if denial is not None and not people.may_lift(db.portal(), db.replica(), context.keys().blind_index,
                                                  context.user().role, denial_id):
        _refuse_denial(denial_id)
    try:
        people.restore(db.portal(), denial_id, by=context.user().id)
    except people.PeopleError:
        abort(404)
    db.portal().commit()
    context.record("account.restored", denial_id=denial_id)
    return redirect(url_for("staff.accounts_page"))


def _refuse_denial(denial_id: int) -> NoReturn:
    """404 for a denial covering an account out of the actor's rank, as for one that does not exist; audited."""
    context.record("account.refused", denial_id=denial_id, attempted="restore")
    abort(404)


def _refuse_account(user_id: int, action: str) -> NoReturn:
    """404 for an account out of the actor's rank, exactly as for one that does not exist; audited."""
    context.record("account.refused", target_user=user_id, attempted=action[:32])
    abort(404)


class PaperRequestForm(FlaskForm):  # type: ignore[misc]
    student = StringField(_l("Student id (SIS)"), validators=[DataRequired(), Length(max=64)])
    source_system = StringField(_l("Source system (only if the id exists in several)"), validators=[Length(max=64)])
    recorded = DateField(_l("Received on"), validators=[DataRequired()])
    effective = DateField(_l("Effective from (if a later date is written in it)"), validators=[Optional()])
    guardians = StringField(_l("Only these guardian ids, separated by commas (empty: all parents)"), validators=[Length(max=500)])


@bp.route("/terminations", methods=["GET", "POST"])
@role_required("staff")
def terminations() -> ResponseReturnValue:
    form = PaperRequestForm(recorded=dt.date.today())
    portal = db.portal()
    if form.validate_on_submit():
        student = form.student.data.strip()
        try:
            # The student's source system comes from the SIS record, never a guess: an
            # ambiguous or unknown id is refused rather than stored where it matches nothing.
            source = people.resolve_student(db.replica(), student, (form.source_system.data or "").strip() or None)
            people.record_paper_request(portal, source, student, form.recorded.data, form.effective.data,
                                        [g.strip() for g in (form.guardians.data or "").split(",") if g.strip()],
                                        by=context.user().id)
        except people.PeopleError as refused:
            form.student.errors.append(str(refused))
        else:
            portal.commit()
            context.record("termination.recorded", source_system=source, student_source_id=student)
            return redirect(url_for("staff.terminations"))
    requests = portal.scalars(select(TerminationRequest).order_by(TerminationRequest.recorded_at.desc()).limit(100)).all()
    names = facts.student_names(db.replica(), [StudentRef(r.source_system, r.student_source_id) for r in requests])
    return render_template("staff_terminations.html", form=form, requests=requests, zone=context.settings().zone,
                           names={(ref.source_system, ref.source_id): name for ref, name in names.items()}
                           ), 400 if form.errors else 200

"""What every console shares (the role guard), and Student Accounting's queues and letters.

Each console route names its roles. Anonymous requests go to the login page; any other
signed-in role gets 404, exactly as for a page that does not exist. Staff roles always
signed in with their second factor. The IT, auditor and admin pages live in
``it_console``, ``audit_console`` and ``admin_console``; the staff desk's other pages in
``staff_console``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, StringField
from wtforms.validators import DataRequired, Length

from gateway.portal import alerts, applications, facts, letters
from gateway.portal.facts import StudentRef
from gateway.portal.models import Application, SecurityReport
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

@bp.get("/staff")
@role_required("staff")
def staff_home() -> ResponseReturnValue:
    portal, replica = db.portal(), db.replica()
    ring = context.keys().blind_index
    pending = [(a, applications.with_denials(portal, replica, applications.candidates(replica, context.cipher(), a)),
                applications.denial_of(portal, replica, ring, a))
               for a in applications.pending(portal)]
    reports = portal.scalars(select(SecurityReport).where(SecurityReport.status != "resolved")
                             .order_by(SecurityReport.created_at)).all()
    students = facts.student_names(replica, [StudentRef(c.source_system, c.student_source_id)
                                             for _, matches, _denial in pending for c in matches])
    context.record("staff.view", page="queues")
    return render_template("console_staff.html", pending=pending, reports=reports, form=ActionForm(),
                           students={(ref.source_system, ref.source_id): name for ref, name in students.items()},
                           alerts=alerts.open_alerts(portal, "staff"), zone=context.settings().zone)

@bp.post("/staff/applications/<int:application_id>/approve/<guardian>")
@role_required("staff")
def approve(application_id: int, guardian: str) -> ResponseReturnValue:
    if not ActionForm().validate_on_submit():
        abort(400)
    application = db.portal().get(Application, application_id) or abort(404)
    try:
        approval = applications.approve(db.portal(), db.replica(), context.settings(), context.cipher(),
                                        context.keys().blind_index, application,
                                        guardian, staff_id=context.user().id)
    except applications.ApplicationError as refused:
        flash(str(refused))
        return redirect(url_for("consoles.staff_home"))
    db.portal().commit()
    context.record("application.approved", application_id=application_id, guardian=guardian)
    flash(_("Approved: the code was sent to the email the school holds.") if approval.emailed_to_sis_address
          else _("Approved. The school holds no email for this guardian: print a letter with code %(code)s.", code=approval.code))
    return redirect(url_for("consoles.staff_home"))

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
        return letter_pages.render(batch, context.settings(), applications.upcoming_training(db.portal()))
    return render_template("console_letters.html", form=form)

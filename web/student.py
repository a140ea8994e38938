"""The Student Portal's own page: a student of 18 may end parents' access in writing (II.E)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, SelectMultipleField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired
from wtforms.widgets import CheckboxInput, ListWidget

from gateway.portal import facts
from gateway.portal.facts import StudentRef
from gateway.portal.models import TerminationRequest, TerminationRequestGuardian
from gateway.replica.tables import Guardian, StudentGuardian
from gateway.portal.schoolyear import eighteenth_birthday
from web import context, db

bp = Blueprint("student", __name__)


class TerminationForm(FlaskForm):  # type: ignore[misc]
    all_parents = BooleanField(_l("All my parents and guardians, including any linked later"), default=True)
    guardians = SelectMultipleField(_l("Or only these"), choices=[], option_widget=CheckboxInput(),
                                    widget=ListWidget(prefix_label=False))
    confirm = BooleanField(_l("I ask in writing that these parents' access to my records end now"), validators=[DataRequired()])


def _own_ref() -> StudentRef:
    user = context.user()
    if user.role != "student" or not user.student_source_id:
        abort(404)
    return StudentRef(user.source_system or "", user.student_source_id)


@bp.route("/me/end-parent-access", methods=["GET", "POST"])
@login_required
def end_parent_access() -> ResponseReturnValue:
    ref = _own_ref()
    birth = facts.birth_date(facts.student_row(db.replica(), ref), context.cipher())
    if birth is None or eighteenth_birthday(birth) > context.today():
        return render_template("end_access.html", form=None, adult=False, filed=[])
    choices = _guardian_choices(ref)
    names = {choice.value: choice.label for choice in choices}
    filed = [{"effective": t.effective_date, "started": t.effective_date <= context.today(), "all": t.covers_all,
              "names": sorted(names.get(g, g) for g in t.guardian_source_ids)}
             for t in sorted(facts.terminations(db.portal(), ref), key=lambda t: t.effective_date)]
    if any(request["all"] for request in filed):  # nothing is left to ask: show the request, not the form again
        return render_template("end_access.html", form=None, adult=True, filed=filed)
    form = TerminationForm()
    form.guardians.choices = choices
    if form.validate_on_submit():
        _file_request(ref, bool(form.all_parents.data), list(form.guardians.data or []))
        flash(_("Your request was recorded. The parents it names no longer see your records."))
        return redirect(url_for("portal.dashboard"))
    return render_template("end_access.html", form=form, adult=True, filed=filed)


def _guardian_choices(ref: StudentRef) -> list[SelectChoice]:
    rows = db.replica().execute(select(Guardian.source_id, Guardian.given_name, Guardian.family_name).join(
        StudentGuardian, (StudentGuardian.guardian_source_id == Guardian.source_id)
        & (StudentGuardian.source_system == Guardian.source_system))
        .where(StudentGuardian.source_system == ref.source_system, StudentGuardian.student_source_id == ref.source_id))
    return [SelectChoice(source_id, f"{given} {family}") for source_id, given, family in rows]


def _file_request(ref: StudentRef, covers_all: bool, guardians: list[str]) -> None:
    portal = db.portal()
    request = TerminationRequest(source_system=ref.source_system, student_source_id=ref.source_id, channel="online",
                                 covers_all=covers_all or not guardians, filed_by_id=context.user().id,
                                 effective_date=context.today())
    portal.add(request)
    portal.flush()
    if not request.covers_all:
        portal.add_all(TerminationRequestGuardian(request_id=request.id, guardian_source_id=g) for g in guardians)
    context.record("termination.filed", source_system=ref.source_system, student_source_id=ref.source_id,
                   covers_all=request.covers_all, guardians=sorted(guardians))

"""Reporting a suspected security problem (policy III.E): to Student Accounting, shown to no one else."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from gateway.portal import alerts
from gateway.portal.models import SecurityReport
from web import context, db

bp = Blueprint("report", __name__)


class ReportForm(FlaskForm):  # type: ignore[misc]
    body = TextAreaField(_l("What did you notice? Say where and when, and what you saw."),
                         validators=[DataRequired(), Length(min=10, max=5000)])


@bp.route("/report", methods=["GET", "POST"])
@login_required
def report() -> ResponseReturnValue:
    form = ReportForm()
    if form.validate_on_submit():
        portal = db.portal()
        row = SecurityReport(reporter_id=context.user().id, body=form.body.data.strip())
        portal.add(row)
        portal.commit()
        context.record("security_report.filed", report_id=row.id)
        alerts.raise_alert(portal, context.settings(), "staff", "security_report",
                           alerts.security_report_subject(row.id),
                           f"A suspected security problem was reported (report {row.id}). See the staff console.")
        flash(_("Thank you. Your report (number %(number)s) went to the Student Accounting Department. "
                "Please do not show the problem to anyone else.", number=row.id))
        return redirect(url_for("portal.dashboard"))
    return render_template("report.html", form=form)

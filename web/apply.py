"""The online application (policy II.A): recommends training and lists the next sessions."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DateField, EmailField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length

from gateway.portal import applications
from web import context, db

bp = Blueprint("apply", __name__)


class ApplicationForm(FlaskForm):  # type: ignore[misc]
    given_name = StringField(_l("Your first name"), validators=[DataRequired(), Length(max=100)])
    family_name = StringField(_l("Your last name"), validators=[DataRequired(), Length(max=100)])
    email = EmailField(_l("Your email address"), validators=[DataRequired(), Email(), Length(max=200)])
    relationship = SelectField(_l("You are the student's"),
                               choices=[SelectChoice(r, r.capitalize()) for r in applications.RELATIONSHIPS])
    student_number = StringField(_l("The student's number (from a report card or the school)"), validators=[DataRequired(), Length(max=32)])
    birth_date = DateField(_l("The student's date of birth"), validators=[DataRequired()])


@bp.route("/apply", methods=["GET", "POST"])
def apply() -> ResponseReturnValue:
    form = ApplicationForm()
    portal = db.portal()
    if form.validate_on_submit():
        try:
            row = applications.submit(portal, context.settings(), context.cipher(), context.keys().blind_index,
                                      context.client_ip(), given_name=form.given_name.data, family_name=form.family_name.data,
                                      email=form.email.data, relationship=form.relationship.data,
                                      student_number=form.student_number.data, birth_date=form.birth_date.data,
                                      user_id=context.user().id if current_user.is_authenticated else None)
        except applications.ApplicationError as refused:
            portal.commit()  # the throttle's count stays
            form.email.errors.append(str(refused))
        else:
            portal.commit()
            context.record("application.submitted", application_id=row.id)
            return render_template("applied.html", training=applications.upcoming_training(portal), zone=context.settings().zone)
    return render_template("apply.html", form=form, training=applications.upcoming_training(portal),
                           zone=context.settings().zone), 200 if not form.errors else 400

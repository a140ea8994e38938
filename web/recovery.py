"""Forgotten passwords and usernames: links and reminders to the email on file only."""

from __future__ import annotations

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from gateway.portal import recovery
from gateway.portal.accounts import AccountError
from web import context, db

bp = Blueprint("recovery", __name__)
# The same answer whatever happened: it never says whether an account exists.
ANSWER = recovery.GENERIC_ANSWER
_l("If an account matches, a message is on its way to the email address on file. If nothing arrives, ask your school.")


class ForgotForm(FlaskForm):  # type: ignore[misc]
    identifier = StringField(_l("Your username or email address"), validators=[DataRequired(), Length(max=200)])


class ReminderForm(FlaskForm):  # type: ignore[misc]
    email = EmailField(_l("Your email address"), validators=[DataRequired(), Length(max=200)])


class ResetForm(FlaskForm):  # type: ignore[misc]
    password = PasswordField(_l("New password (at least 15 characters)"), validators=[DataRequired(), Length(max=256)])


@bp.route("/forgot-password", methods=["GET", "POST"])
def forgot_password() -> ResponseReturnValue:
    form = ForgotForm()
    if form.validate_on_submit():
        recovery.request_reset(db.portal(), context.settings(), form.identifier.data, context.client_ip())
        db.portal().commit()
        context.record("recovery.requested")
        flash(_(ANSWER))
        return redirect(url_for("auth.login"))
    return render_template("forgot.html", form=form, title=_("Forgot your password?"))


@bp.route("/forgot-username", methods=["GET", "POST"])
def forgot_username() -> ResponseReturnValue:
    form = ReminderForm()
    if form.validate_on_submit():
        recovery.request_reminder(db.portal(), context.settings(), form.email.data, context.client_ip())
        db.portal().commit()
        context.record("recovery.reminder")
        flash(_(ANSWER))
        return redirect(url_for("auth.login"))
    return render_template("forgot.html", form=form, title=_("Forgot your username?"))


@bp.route("/reset", methods=["GET", "POST"])
def reset() -> ResponseReturnValue:
    # The token rides in the query string: access logs record paths only, and this page
    # sends no referrer, so it is never written down anywhere on its way.
    token = request.args.get("token", "")
    if recovery.valid_token(db.portal(), token) is None:
        abort(404)
    form = ResetForm()
    if form.validate_on_submit():
        try:
            user = recovery.reset_password(db.portal(), context.settings(), token, form.password.data)
        except AccountError as refused:
            form.password.errors.append(str(refused))
        else:
            db.portal().commit()
            context.record("password.reset", actor_user_id=user.id)
            flash(_("Your password was changed. Sign in with it now."))
            return redirect(url_for("auth.login"))
    response = make_response(render_template("forgot.html", form=form, title=_("Choose a new password")))
    response.headers["Referrer-Policy"] = "no-referrer"
    return response

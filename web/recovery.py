"""Forgotten passwords and usernames: links and reminders to the email on file only."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from gateway import recovery
from gateway.accounts import AccountError
from web import context, db

bp = Blueprint("recovery", __name__)


class ForgotForm(FlaskForm):  # type: ignore[misc]
    identifier = StringField("Your username or email address", validators=[DataRequired(), Length(max=200)])


class ReminderForm(FlaskForm):  # type: ignore[misc]
    email = EmailField("Your email address", validators=[DataRequired(), Length(max=200)])


class ResetForm(FlaskForm):  # type: ignore[misc]
    password = PasswordField("New password (at least 15 characters)", validators=[DataRequired(), Length(max=256)])


@bp.route("/forgot-password", methods=["GET", "POST"])
def forgot_password() -> ResponseReturnValue:
    form = ForgotForm()
    if form.validate_on_submit():
        answer = recovery.request_reset(db.portal(), context.settings(), form.identifier.data, context.client_ip())
        db.portal().commit()
        context.record("recovery.requested")
        flash(answer)
        return redirect(url_for("auth.login"))
    return render_template("forgot.html", form=form, title="Forgot your password?")


@bp.route("/forgot-username", methods=["GET", "POST"])
def forgot_username() -> ResponseReturnValue:
    form = ReminderForm()
    if form.validate_on_submit():
        answer = recovery.request_reminder(db.portal(), context.settings(), form.email.data, context.client_ip())
        db.portal().commit()
        context.record("recovery.reminder")
        flash(answer)
        return redirect(url_for("auth.login"))
    return render_template("forgot.html", form=form, title="Forgot your username?")


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset(token: str) -> ResponseReturnValue:
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
            flash("Your password was changed. Sign in with it now.")
            return redirect(url_for("auth.login"))
    return render_template("forgot.html", form=form, title="Choose a new password")

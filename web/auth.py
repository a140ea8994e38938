"""Signing in and out, activating with a letter's code, accepting the guidelines, the account page.

No "remember me" and no persistent cookie (policy III.B.2): the cookie is a browser-session
cookie holding a token for a server-side session, which ends on logout, idle, age, a
password change, "sign out everywhere" or a denial.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_date
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from gateway.security import totp
from gateway.portal import accounts, activation
from gateway.portal import second_factor as second_factor_service
from gateway.portal import guidelines as guideline_service
from gateway.replica.dbtypes import utcnow
from gateway.portal.models import STAFF_ROLES, GuidelineVersion, User, UserSession, UserStudent
from web import context, db, i18n

bp = Blueprint("auth", __name__)
OPEN_ENDPOINTS = {"auth.login", "auth.logout", "auth.guidelines", "auth.activate", "auth.second_factor",
                  "public.index", "public.healthz",
                  "public.help", "apply.apply", "recovery.forgot_password", "recovery.forgot_username",
                  "recovery.reset", "static"}


def init_login(login: LoginManager) -> None:
    login.login_view = "auth.login"
    login.login_message = "Please sign in to see that page."
    login.session_protection = None  # our own server-side sessions do this job
    login.request_loader(_load_from_session)
    login.user_loader(lambda _id: None)  # never from Flask-Login's own cookie: only our session token


def _load_from_session(_request: object) -> context.Account | None:
    token = session.get("sid")
    if not token:
        return None
    portal = db.portal()
    found = accounts.load_session(portal, context.settings(), token, replica=db.replica(),
                                  index_ring=context.keys().blind_index)
    portal.commit()
    if found is None:
        reason, language = accounts.ended_reason(portal, token), session.get("lang")
        session.clear()
        if language:
            session["lang"] = language  # the sign-in page stays in the language the reader chose
        if reason:
            flash(_session_ended_message(reason))  # shown on the sign-in page the visitor is sent to
        return None
    return context.Account(found[0], found[1].id)


def _session_ended_message(reason: str) -> str:
    """The sign-in page's words for why the last session ended, so a timeout is not mistaken for a fault."""
    web = context.settings().web
    if reason == "idle":
        return _("You were signed out because nothing happened for %(minutes)s minutes. Sign in again to continue.",
                 minutes=web.idle_timeout_minutes)
    if reason == "expired":
        return _("You were signed out because a session lasts at most %(hours)s hours. Sign in again to continue.",
                 hours=web.absolute_timeout_hours)
    return _("Your session was ended (%(reason)s). Sign in again to continue.",
             reason=i18n.END_REASONS.get(reason, reason))


@bp.before_app_request
def require_current_guidelines() -> ResponseReturnValue | None:
    """The current user guidelines must be accepted before any other page."""
    if request.endpoint in OPEN_ENDPOINTS or not current_user.is_authenticated:
        return None
    if not guideline_service.has_accepted_current(db.portal(), context.user().id):
        return redirect(url_for("auth.guidelines", next=request.path))
    return None


class LoginForm(FlaskForm):  # type: ignore[misc]
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=256)])


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    form = LoginForm()
    if form.validate_on_submit():
        result = accounts.authenticate(db.portal(), context.settings(), form.username.data, form.password.data,
                                       context.client_ip(), replica=db.replica(), index_ring=context.keys().blind_index)
        if result.user is not None:
            if result.user.role in STAFF_ROLES:
                return _start_second_factor(result.user)
            return _sign_in(result.user)
        context.record("login.failed", username=form.username.data[:64], reason=result.refusal)
        form.password.errors.append(_refusal_message(result))
    return render_template("login.html", form=form), 200 if request.method == "GET" or not form.errors else 401


def _start_second_factor(user: User) -> ResponseReturnValue:
    """Staff roles sign in with a second factor; until then no session exists.

    The pending sign-in is a row on the server; the cookie carries only its token.
    """
    portal = db.portal()
    token = second_factor_service.start(portal, context.cipher(), user, context.client_ip())
    portal.commit()
    _renew_session()
    session["second_factor"] = token
    return redirect(url_for("auth.second_factor", next=request.args.get("next")))


class SecondFactorForm(FlaskForm):  # type: ignore[misc]
    code = StringField(_l("The 6-digit code from your authenticator app, or a recovery code"),
                       validators=[DataRequired(), Length(max=32)])


@bp.route("/login/second-factor", methods=["GET", "POST"])
def second_factor() -> ResponseReturnValue:
    portal, cipher = db.portal(), context.cipher()
    token = session.get("second_factor")
    found = (second_factor_service.pending(portal, cipher, token, replica=db.replica(), index_ring=context.keys().blind_index)
             if isinstance(token, str) else None)
    if found is None:
        session.pop("second_factor", None)
        return redirect(url_for("auth.login"))
    form = SecondFactorForm()
    if form.validate_on_submit():
        outcome = second_factor_service.attempt(portal, context.settings(), cipher, found, form.code.data,
                                                context.client_ip())
        portal.commit()
        if outcome.result == "signed_in":
            return _second_factor_passed(found.user, outcome.recovery_codes)
        context.record("mfa.failed", actor_user_id=found.user.id, reason=outcome.result)
        if outcome.result != "wrong":
            session.pop("second_factor", None)
            flash(_refusal_message(accounts.LoginResult(None, "locked", outcome.locked_until))
                  if outcome.result == "locked" else _("Please sign in again."))
            return redirect(url_for("auth.login"))
        form.code.errors.append(_("That code is not right, or was already used."))
    uri = totp.provisioning_uri(found.secret, found.user.username, context.settings().district.name) if found.enrolling else None
    return render_template("second_factor.html", form=form, enrolling=found.enrolling,
                           secret=found.secret if found.enrolling else None, qr=totp.qr_svg(uri) if uri else None)


def _second_factor_passed(user: User, recovery_codes: list[str] | None) -> ResponseReturnValue:
    if recovery_codes is None:
        return _sign_in(user)
    context.record("mfa.enrolled", actor_user_id=user.id)
    _sign_in(user)
    return render_template("recovery_codes.html", codes=recovery_codes)


def _refusal_message(result: accounts.LoginResult) -> str:
    if result.refusal == "locked" and result.locked_until:
        local = result.locked_until.astimezone(context.settings().zone)
        return _("Too many attempts. Try again after %(time)s, or ask your school to unlock your account.",
                 time=local.strftime("%H:%M"))
    if result.refusal == "denied":
        return _("This account cannot sign in. Contact the Student Accounting Department.")
    return _("That username and password do not match.")


def _code_message(refused: activation.CodeRefused) -> str:
    """A refused code, in the reader's language (the service's English is the fallback)."""
    messages = {
        "malformed": _("An activation code has 16 letters and digits, like 7KQ2-M9XW-3DHF-RT6P. Check it against your letter."),
        "unknown": _("That code is not right. Check it against your letter, or ask your school for a new one."),
        "used": _("That code has already been used. Sign in with the account it created, or ask your school for a new letter."),
        "revoked": _("That code was withdrawn by the school. Ask your school for a new letter."),
        "expired": _("That code expired on %(date)s. Ask your school for a new letter.",
                     date=format_date(refused.when, "long") if refused.when else "?"),
        "denied": _("This code cannot be used. Contact the Student Accounting Department."),
        "other_guardian": _("That code was sent to another parent or guardian of the student. "
                            "Each parent activates with their own letter."),
        "other_student": _("That code is a student's own Student Portal code; only that student can use it."),
        "gone": _("The school's records no longer hold the person this code was written for. Contact your school."),
        "not_in_force": _("The school's records no longer give this code's parent or guardian portal access to the student. "
                          "Contact your school."),
    }
    return messages.get(refused.reason, str(refused))


def _sign_in(user: User) -> ResponseReturnValue:
    portal = db.portal()
    _renew_session()  # a new session at every login: no fixation
    token = accounts.start_session(portal, user, context.client_ip(), request.headers.get("User-Agent"))
    portal.commit()
    session["sid"] = token
    live = portal.scalars(select(UserSession).where(UserSession.token_hash == accounts.token_hash(token))).one()
    login_user(context.Account(user, live.id), remember=False)
    context.record("login")
    return redirect(_safe_next(request.args.get("next")))


def _renew_session() -> None:
    """Drop everything in the old cookie session but the visitor's language."""
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language


def _safe_next(target: str | None) -> str:
    """Only a page of this site: a path the URL map knows, never another host (no open redirects)."""
    fallback = url_for("portal.dashboard")
    if not target or not target.startswith("/") or target.startswith("//") or not target.isprintable() \
            or any(c in target for c in "\\ "):
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return fallback
    try:
        current_app.url_map.bind("localhost").match(parts.path, method="GET")
    except HTTPException:  # unknown, or a redirect the map would make: not a page we send anyone to
        return fallback
    return target


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    if current_user.is_authenticated:
        portal = db.portal()
        live = portal.get(UserSession, current_user.session_id)
        if live is not None:
            accounts.end_session(portal, live, "logout")
        context.record("logout")
    logout_user()
    session.clear()
    flash(_("You are signed out."))
    return redirect(url_for("auth.login"))


class GuidelinesForm(FlaskForm):  # type: ignore[misc]
    accept = BooleanField(_l("I have read and accept the user guidelines"), validators=[DataRequired()])


@bp.route("/guidelines", methods=["GET", "POST"])
@login_required
def guidelines() -> ResponseReturnValue:
    portal = db.portal()
    version = guidelines_current()
    form = GuidelinesForm()
    if form.validate_on_submit():
        guidelines_accept(version.id)
        context.record("guidelines.accepted", version=version.version)
        return redirect(_safe_next(request.args.get("next")))
    return render_template("guidelines.html", form=form, version=version, accepted=guideline_service.has_accepted_current(portal, context.user().id))


def guidelines_current() -> GuidelineVersion:
    version = guideline_service.ensure_published(db.portal())
    db.portal().commit()
    return version


def guidelines_accept(version_id: int) -> None:
    guideline_service.accept(db.portal(), context.user().id, version_id)
    db.portal().commit()


class ActivateForm(FlaskForm):  # type: ignore[misc]
    code = StringField(_l("Activation code (from your letter)"), validators=[DataRequired(), Length(max=40)])
    username = StringField(_l("Choose a username"), validators=[Length(max=64)])
    password = PasswordField(_l("Choose a password (at least 15 characters)"), validators=[Length(max=256)])
    responsibilities = BooleanField(_l("I will keep my password to myself, never set a browser to sign in automatically, "
                                       "and look only at my own children's records"))


@bp.route("/activate", methods=["GET", "POST"])
def activate() -> ResponseReturnValue:
    """Redeem a letter's code: a new account, or another child for the signed-in one."""
    form = ActivateForm()
    if form.validate_on_submit():
        error = _try_activate(form)
        if error is None:
            return redirect(url_for("portal.dashboard"))
        form.code.errors.append(error)
    return render_template("activate.html", form=form, signed_in=current_user.is_authenticated), 200 if not form.errors else 400


def _try_activate(form: ActivateForm) -> str | None:
    settings, portal = context.settings(), db.portal()
    ip = context.client_ip()
    now = utcnow()
    # Counted first, in the request's transaction: the counted row stays locked until the
    # commit, so parallel attempts from one address are tried one after another, each seeing
    # the others' counts (a refused claim rolls back only its own savepoint).
    if activation.take_attempt(portal, settings, ip, now) is not None:
        portal.commit()
        return _("Too many codes were tried from here. Try again later, or ask your school for help.")
    try:
        unfinished = _redeem(form)
    except (activation.CodeRefused, accounts.AccountError) as refused:
        activation.attempt_refused(portal, settings, ip, now)
        portal.commit()
        context.record("activation.refused", reason=getattr(refused, "reason", "account"))
        return _code_message(refused) if isinstance(refused, activation.CodeRefused) else str(refused)
    activation.attempt_succeeded(portal, ip)
    portal.commit()
    return unfinished


def _redeem(form: ActivateForm) -> str | None:
    settings, portal, replica, ring = context.settings(), db.portal(), db.replica(), context.keys().blind_index
    if current_user.is_authenticated:
        link = activation.redeem_for(portal, replica, settings, ring, form.code.data, context.user())
        user = context.user()
    else:
        if not form.responsibilities.data:
            return _("Please read and accept the responsibilities below.")
        user = activation.redeem_new_account(portal, replica, settings, ring, context.cipher(), form.code.data,
                                             form.username.data or "", form.password.data or "")
        link = portal.scalars(select(UserStudent).where(UserStudent.user_id == user.id)).one()
    portal.commit()
    context.record("activation", source_system=link.source_system, student_source_id=link.student_source_id)
    if not current_user.is_authenticated:
        _sign_in(user)
    return None


class PasswordForm(FlaskForm):  # type: ignore[misc]
    current = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=256)])
    new = PasswordField(_l("New password (at least 15 characters)"), validators=[DataRequired(), Length(max=256)])


class EmptyForm(FlaskForm):  # type: ignore[misc]
    """A form with only its CSRF token (for buttons that change something)."""


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account() -> ResponseReturnValue:
    form = PasswordForm()
    if form.validate_on_submit():
        try:
            accounts.change_password(db.portal(), context.settings(), context.user(), form.current.data, form.new.data,
                                     keep=current_user.session_id)
            db.portal().commit()
            context.record("password.changed")
            flash(_("Your password was changed. Other sessions were signed out."))
            return redirect(url_for("auth.account"))
        except accounts.AccountError as refused:
            form.new.errors.append(str(refused))
    history = accounts.login_history(db.portal(), context.user().id)
    return render_template("account.html", form=form, history=history, everywhere=EmptyForm(),
                           zone=context.settings().zone, current_id=current_user.session_id)


@bp.post("/account/sign-out-everywhere")
@login_required
def sign_out_everywhere() -> ResponseReturnValue:
    if not EmptyForm().validate_on_submit():
        abort(400)
    accounts.end_all_sessions(db.portal(), context.user().id, "signed_out_everywhere", keep=current_user.session_id)
    context.record("sessions.ended")
    flash(_("Every other session was signed out."))
    return redirect(url_for("auth.account"))

"""The admin's page: staff-role accounts (each enrols its own second factor at first sign-in)."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from gateway.portal.accounts import AccountError, create_user, end_all_sessions, may_manage
from gateway.replica.dbtypes import utcnow
from gateway.portal.models import User
from web import context, db
from web.consoles import ActionForm, role_required

bp = Blueprint("admin", __name__)


class StaffAccountForm(FlaskForm):  # type: ignore[misc]
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    display_name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    role = SelectField(_l("Role"), choices=[SelectChoice(r, r) for r in ("staff", "it", "auditor", "admin")])
    password = StringField(_l("First password (they change it after signing in)"), validators=[DataRequired(), Length(max=256)])

@bp.route("/admin", methods=["GET", "POST"])
@role_required("admin")
def admin_home() -> ResponseReturnValue:
    """Admins manage the staff-role accounts (each enrols its own second factor at first sign-in)."""
    form = StaffAccountForm()
    if form.validate_on_submit():
        try:
            created = create_user(db.portal(), context.settings(), username=form.username.data, password=form.password.data,
                                  role=form.role.data, display_name=form.display_name.data)
        except AccountError as refused:
            form.password.errors.append(str(refused))
        else:
            db.portal().commit()
            context.record("staff_account.created", target_user=created.id, role=created.role)
            return redirect(url_for("admin.admin_home"))
    staff = db.portal().scalars(select(User).where(User.role.in_(("staff", "it", "auditor", "admin"))).order_by(User.username)).all()
    return render_template("console_admin.html", form=form, staff=staff, action=ActionForm())

@bp.post("/admin/accounts/<int:user_id>/disable")
@role_required("admin")
def disable_account(user_id: int) -> ResponseReturnValue:
    if not ActionForm().validate_on_submit():
        abort(400)
    user = db.portal().get(User, user_id)
    if user is None or user.id == context.user().id or not may_manage(context.user().role, user.role):
        abort(404)
    user.disabled_at = utcnow()
    end_all_sessions(db.portal(), user.id, "disabled")
    db.portal().commit()
    context.record("staff_account.disabled", target_user=user.id)
    return redirect(url_for("admin.admin_home"))

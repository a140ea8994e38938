"""The parent dashboard and each child's pages (schedule, grades, assignments, attendance).

Every student-scoped page asks the access rules first. A signed-in user asking for a
student they may not see gets 404, exactly as for one that does not exist, and the
refusal is audited; repeated refusals alert staff. Every view is audited too.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from flask import Blueprint, abort, current_app, g, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_date
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy import func, select

from gateway.portal import access, alerts, denials, facts
from gateway.replica import freshness
from gateway.replica.dbtypes import utcnow
from gateway.portal.facts import StudentRef
from gateway.portal.models import AuditEntry
from gateway.replica.tables import Student
from web import context, db, records

bp = Blueprint("portal", __name__)
PAGES = ("schedule", "grades", "assignments", "attendance")
FRESHNESS_REUSE_SECONDS = 30.0
PAGE_TABLES = ("students", "enrollments", "sections", "section_enrollments", "term_grades", "scores", "attendance")


def sentence(decision: access.Decision) -> str:
    """The dashboard's words for a decision (from its code and dates), in the reader's language."""
    d = {key: format_date(value, "long") for key, value in decision.dates.items()}
    if decision.allowed:
        if "ends" not in d:
            return ""
        return _("The student turned 18 on %(birthday)s; your access continues until %(ends)s.", **d)
    messages = {
        access.ACCOUNT_DENIED: lambda: _("Your account cannot see student records. Contact the Student Accounting Department."),
        access.NO_PORTAL_ACCESS: lambda: _("The school's records do not give you access to this student's records. Contact the school."),
        access.LINK_NOT_IN_FORCE: lambda: (_("Your link to this student in the school's records ended on %(ended)s.", **d) if "ended" in d
                                           else _("Your link to this student in the school's records is not in force.")),
        access.NOT_ACTIVATED: lambda: _("Enter the activation code from your letter to see this student's records."),
        access.NOT_ENROLLED: lambda: _("The student is not currently enrolled, so their records are no longer shown."),
        access.TURNED_18_BEFORE_YEAR: lambda: _("The student turned 18 on %(birthday)s; parent access ended on %(ended)s.", **d),
        access.ACTIVATED_AFTER_18: lambda: _("The student turned 18 on %(birthday)s, before you activated access. "
                                             "Access continues only for parents who activated before the 18th birthday.", **d),
        access.BIRTH_DATE_UNKNOWN: lambda: _("The school has no birth date for this student. Ask the school to correct its records."),
        access.TERMINATION_REQUEST: lambda: _("At the student's written request, parent access ended on %(effective)s.", **d),
    }
    return str(messages.get(decision.code or "", lambda: _("This student's records are not available."))())


def decide(ref: StudentRef) -> access.Decision:
    """The access decision for the signed-in user and this student, today."""
    user, settings = context.user(), context.settings()
    policy = facts.policy_of(settings)
    if user.role == "parent":
        gathered = facts.parent_facts(db.replica(), db.portal(), settings, context.cipher(), context.keys().blind_index,
                                      user, ref, student_of(ref))
        return access.parent_access(gathered, context.today(), policy)
    if user.role == "student" and (user.source_system, user.student_source_id) == (ref.source_system, ref.source_id):
        denied = denials.user_denied(db.portal(), db.replica(), context.keys().blind_index, user)
        return access.student_access(not denied, facts.enrolments(db.replica(), ref),
                                     context.today(), policy)
    return access.Decision.refuse("not_their_student")  # staff see records only through their consoles


def student_of(ref: StudentRef) -> Student | None:
    """The student's replica row, read once per request (the access rules and the page both need it)."""
    cache: dict[StudentRef, Student | None] = g.setdefault("students", {})
    if ref not in cache:
        cache[ref] = facts.student_row(db.replica(), ref)
    return cache[ref]


def authorize(ref: StudentRef, page: str) -> None:
    """404 unless the user may see this student; the refusal is audited and may alert staff."""
    decision = decide(ref)
    if decision.allowed:
        return
    context.record("record.refused", source_system=ref.source_system, student_source_id=ref.source_id, page=page,
                   reason=decision.code)
    _alert_on_repeated_refusals()
    abort(404)


def _alert_on_repeated_refusals() -> None:
    user, settings = context.user(), context.settings()
    since = utcnow() - dt.timedelta(days=1)
    count = db.portal().scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "record.refused", AuditEntry.actor_user_id == user.id, AuditEntry.at >= since)) or 0
    if count >= settings.security.refusal_alert_threshold:
        alerts.raise_alert(db.portal(), settings, "staff", "repeated_refusals", f"user {user.id} ({user.username})",
                           f"{user.username} was refused {count} student pages in the last day.")


@bp.get("/dashboard")
@login_required
def dashboard() -> ResponseReturnValue:
    user = context.user()
    if user.role == "student":
        return redirect(url_for("portal.child", source_system=user.source_system, source_id=user.student_source_id, page="schedule"))
    if user.role != "parent":
        return render_template("staff_home.html")
    children = [_child_summary(ref) for ref in facts.children_of(db.replica(), db.portal(), user)]
    context.record("dashboard.view", children=len(children), refused=sum(not c["allowed"] for c in children))
    return render_template("dashboard.html", children=children, fresh=_freshness(), pages=PAGES)


def _child_summary(ref: StudentRef) -> dict[str, Any]:
    """A refused child is named with the reason, and nothing more from the replica: a parent
    whose rights ended must not follow the child to a new school or grade."""
    student = student_of(ref)
    decision = decide(ref)
    summary = {"ref": ref, "name": _name(student) if student else _("A student"), "grade": None, "school": None,
               "allowed": decision.allowed, "sentence": sentence(decision), "code": decision.code}
    if decision.allowed and student is not None:
        summary.update(grade=student.grade_level, school=records.school_name(db.replica(), student))
    return summary


def _name(student: Any) -> str:
    return f"{student.preferred_name or student.given_name} {student.family_name}"


def _freshness() -> dict[str, Any]:
    """When the pages' tables were last confirmed current; each worker reuses what it read
    for FRESHNESS_REUSE_SECONDS (it changes once per sync, and is read on every page)."""
    cache = current_app.extensions.setdefault("gateway.replica.freshness", {"until": 0.0})
    if cache["until"] > time.monotonic():
        return cache["value"]  # type: ignore[no-any-return]
    settings = context.settings()
    by_table = freshness.by_table(db.replica(), utcnow(), settings.policy.stale_after_hours)
    relevant = [by_table[t] for t in PAGE_TABLES if t in by_table]
    value = ({"at": None, "stale": True} if not relevant else
             {"at": min(f.confirmed_at for f in relevant), "stale": any(f.stale for f in relevant)})
    cache.update(value=value, until=time.monotonic() + FRESHNESS_REUSE_SECONDS)
    return value


@bp.get("/students/<source_system>/<source_id>/<page>")
@login_required
def child(source_system: str, source_id: str, page: str) -> ResponseReturnValue:
    if page not in PAGES:
        abort(404)
    ref = StudentRef(source_system, source_id)
    authorize(ref, page)
    student = student_of(ref)
    if student is None:
        abort(404)
    data = _page_data(ref, page)
    context.record("record.view", source_system=ref.source_system, student_source_id=ref.source_id, page=page)
    return render_template(f"child_{page}.html", student=student, name=_name(student), ref=ref, page=page, pages=PAGES,
                           school=records.school_name(db.replica(), student), fresh=_freshness(), **data)


def _page_data(ref: StudentRef, page: str) -> dict[str, Any]:
    replica = db.replica()
    if page == "schedule":
        return {"sections": records.schedule(replica, ref, context.today())}
    if page == "grades":
        return {"grades": records.grades(replica, ref)}
    if page == "assignments":
        return {"assignments": records.assignments(replica, ref)}
    return {"attendance": records.attendance(replica, ref)}

"""Facts for the access rules, gathered from the replica (read-only) and the portal database."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.portal import access, denials
from gateway.security.crypto import FieldCipher
from gateway.security.keys import KeyRing
from gateway.portal.models import TerminationRequest, TerminationRequestGuardian, User, UserStudent
from gateway.replica.tables import Enrollment, Student, StudentGuardian
from gateway.replica.schema import encryption_context
from gateway.settings import Settings


@dataclass(frozen=True)
class StudentRef:
    source_system: str
    source_id: str


def policy_of(settings: Settings) -> access.Policy:
    p = settings.policy
    return access.Policy(p.school_year_start, p.summer_bridge_exit_window_days, p.summer_bridge_days_after_year,
                         p.unknown_birth_date)


def district_date(moment: dt.datetime, zone: ZoneInfo) -> dt.date:
    return moment.astimezone(zone).date()


def student_row(replica: Session, ref: StudentRef) -> Student | None:
    return replica.scalars(select(Student).where(Student.source_system == ref.source_system,
                                                 Student.source_id == ref.source_id)).first()


def student_names(replica: Session, refs: list[StudentRef]) -> dict[StudentRef, str]:
    """Display names ("preferred or given, family") for staff lists, read from the replica in one query;
    a student the replica does not hold is left out (the caller shows the id)."""
    wanted = set(refs)
    if not wanted:
        return {}
    rows = replica.execute(select(Student.source_system, Student.source_id, Student.preferred_name, Student.given_name,
                                  Student.family_name).where(Student.source_id.in_({ref.source_id for ref in wanted})))
    return {StudentRef(system, source_id): f"{preferred or given} {family}"
            for system, source_id, preferred, given, family in rows if StudentRef(system, source_id) in wanted}


def birth_date(student: Student | None, cipher: FieldCipher) -> dt.date | None:
    if student is None or student.birth_date is None:
        return None
    return dt.date.fromisoformat(cipher.decrypt(student.birth_date, encryption_context("students", "birth_date")))


def enrolments(replica: Session, ref: StudentRef) -> list[access.Enrolment]:
    rows = replica.scalars(select(Enrollment).where(Enrollment.source_system == ref.source_system,
                                                    Enrollment.student_source_id == ref.source_id))
    return [access.Enrolment(r.entry_date, r.exit_date, r.exit_kind) for r in rows]


def terminations(portal: Session, ref: StudentRef) -> list[access.Termination]:
    requests = portal.scalars(select(TerminationRequest).where(
        TerminationRequest.source_system == ref.source_system, TerminationRequest.student_source_id == ref.source_id,
        TerminationRequest.withdrawn_at.is_(None))).all()
    result = []
    for request in requests:
        named = portal.scalars(select(TerminationRequestGuardian.guardian_source_id)
                               .where(TerminationRequestGuardian.request_id == request.id)).all()
        result.append(access.Termination(request.effective_date, request.covers_all, frozenset(named)))
    return result


def parent_facts(replica: Session, portal: Session, settings: Settings, cipher: FieldCipher, index_ring: KeyRing,
                 user: User, ref: StudentRef, student: Student | None) -> access.ParentFacts:
    """The facts for a parent's access to ``ref``; ``student`` is its replica row (the caller has it)."""
    links = replica.scalars(select(StudentGuardian).where(
        StudentGuardian.source_system == ref.source_system, StudentGuardian.student_source_id == ref.source_id,
        StudentGuardian.guardian_source_id == (user.guardian_source_id or ""))).all()
    activation = portal.scalars(select(UserStudent).where(
        UserStudent.user_id == user.id, UserStudent.source_system == ref.source_system,
        UserStudent.student_source_id == ref.source_id)).first()
    account_ok = not denials.user_denied(portal, replica, index_ring, user)
    return access.ParentFacts(
        guardian_source_id=user.guardian_source_id or "", account_ok=account_ok,
        links=[access.Link(l.portal_access, l.start_date, l.end_date) for l in links],  # noqa: E741
        activated_on=district_date(activation.activated_at, settings.zone) if activation else None,
        birth_date=birth_date(student, cipher), enrolments=enrolments(replica, ref),
        terminations=terminations(portal, ref))


def children_of(replica: Session, portal: Session, user: User) -> list[StudentRef]:
    """Students this account activated, and those the SIS links to this guardian (for the dashboard)."""
    refs = {StudentRef(a.source_system, a.student_source_id)
            for a in portal.scalars(select(UserStudent).where(UserStudent.user_id == user.id))}
    if user.guardian_source_id:
        rows = replica.execute(select(StudentGuardian.source_system, StudentGuardian.student_source_id).where(
            StudentGuardian.source_system == user.source_system,
            StudentGuardian.guardian_source_id == user.guardian_source_id, StudentGuardian.portal_access.is_(True)))
        refs |= {StudentRef(ss, sid) for ss, sid in rows}
    return sorted(refs, key=lambda r: (r.source_system, r.source_id))

"""Staff services over people: denial as a security risk, and paper termination requests."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.db import rowcount
from gateway.portal import denials
from gateway.portal.accounts import FAMILY_ROLES, end_all_sessions, find_user, may_manage
from gateway.security.crypto import FieldCipher, email_index, normalize_email
from gateway.replica.dbtypes import utcnow
from gateway.errors import GatewayError
from gateway.security.keys import KeyRing
from gateway.portal.models import Denial, TerminationRequest, TerminationRequestGuardian, User
from gateway.replica.schema import encryption_context
from gateway.replica.tables import Student


class PeopleError(GatewayError):
    exit_code = 2


def deny(session: Session, cipher: FieldCipher, index_ring: KeyRing, reason: str, *, source_system: str | None = None,
         guardian_source_id: str | None = None, email: str | None = None, username: str | None = None,
         by: int | None = None) -> Denial:
    """Deny a person as a security risk: by SIS guardian, by email, or by account; ends their sessions."""
    if not reason.strip():
        raise PeopleError("a denial needs a reason")
    user = find_user(session, username) if username else None
    if username and user is None:
        raise PeopleError(f"there is no account {username!r}")
    if not (guardian_source_id or email or user):
        raise PeopleError("name the person: --guardian, --email or --username")
    # The email is kept encrypted beside its blind index, so a blind-index key rotation can
    # recompute the index; without it the denial would silently stop matching.
    stored = cipher.encrypt(normalize_email(email), encryption_context("denials", "email")) if email else None
    denial = Denial(source_system=source_system, guardian_source_id=guardian_source_id, email=stored,
                    email_index=email_index(index_ring, email), user_id=user.id if user else None,
                    reason=reason.strip(), created_by_id=by)
    session.add(denial)
    for account in _accounts_of(session, user, source_system, guardian_source_id):
        end_all_sessions(session, account.id, "denied")
    session.flush()
    return denial


def _accounts_of(session: Session, user: User | None, source_system: str | None, guardian: str | None) -> list[User]:
    found = [user] if user else []
    if guardian:
        found += session.scalars(select(User).where(User.source_system == source_system,
                                                    User.guardian_source_id == guardian)).all()
    return found


def out_of_rank(session: Session, replica: Session, index_ring: KeyRing, actor_role: str) -> set[int]:
    """The ids of denials in force that cover an account the actor may not manage.

    A denial covers every account of the person it names (by account, guardian or email,
    through the one denial rule), so a denial made by email or guardian may hold an IT,
    auditor or admin account too: only an actor who may manage every covered account may
    lift it, or read its reason. Only non-family accounts can be out of rank.
    """
    found: set[int] = set()
    for user in session.scalars(select(User).where(User.role.not_in(FAMILY_ROLES))):
        if not may_manage(actor_role, user.role):
            person = denials.of_user(replica, index_ring, user)
            found.update(session.scalars(select(Denial.id).where(Denial.lifted_at.is_(None), denials.names(person))))
    return found


def liftable(session: Session, replica: Session, index_ring: KeyRing, actor_role: str) -> list[Denial]:
    """The denials in force this actor may see and lift, newest first."""
    hidden = out_of_rank(session, replica, index_ring, actor_role)
    return [d for d in session.scalars(select(Denial).where(Denial.lifted_at.is_(None)).order_by(Denial.created_at.desc()))
            if d.id not in hidden]


def may_lift(session: Session, replica: Session, index_ring: KeyRing, actor_role: str, denial_id: int) -> bool:
    return denial_id not in out_of_rank(session, replica, index_ring, actor_role)


def restore(session: Session, denial_id: int, by: int | None = None) -> None:
    """Lift a denial (the caller has checked ``may_lift`` for a console actor; the CLI is the operator)."""
    lifted = rowcount(session.execute(update(Denial).where(Denial.id == denial_id, Denial.lifted_at.is_(None))
                                      .values(lifted_at=utcnow(), lifted_by_id=by)))
    if not lifted:
        raise PeopleError(f"there is no denial {denial_id} in force")


def resolve_student(replica: Session, student_source_id: str, source_system: str | None = None) -> str:
    """The source system of the SIS student a staff member names, from the replica's students.

    Refuses a student the SIS does not have, and an id two source systems both use unless
    the source system is given: an action stored against a guess would report success
    and change nothing.
    """
    query = select(Student.source_system).where(Student.source_id == student_source_id)
    if source_system:
        query = query.where(Student.source_system == source_system)
    systems = sorted(set(replica.scalars(query)))
    if not systems:
        where = f" in source system {source_system!r}" if source_system else ""
        raise PeopleError(f"the SIS has no student {student_source_id!r}{where}; check the student id")
    if len(systems) > 1:
        raise PeopleError(f"student id {student_source_id!r} exists in several source systems ({', '.join(systems)}); "
                          "say which one (--source-system)")
    return systems[0]


def record_paper_request(session: Session, source_system: str, student_source_id: str, recorded_on: dt.date,
                         effective: dt.date | None, guardians: list[str], by: int | None = None) -> TerminationRequest:
    """A written request received on paper: in force from the date recorded, or a later date written in it."""
    starts = effective or recorded_on
    if starts < recorded_on:
        raise PeopleError("a paper request cannot take effect before the day it is recorded")
    request = TerminationRequest(source_system=source_system, student_source_id=student_source_id, channel="paper",
                                 covers_all=not guardians, recorded_by_id=by, effective_date=starts)
    session.add(request)
    session.flush()
    session.add_all(TerminationRequestGuardian(request_id=request.id, guardian_source_id=g) for g in guardians)
    return request

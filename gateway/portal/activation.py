"""Activation codes (policy II.A-C): the letter a family receives, and what redeeming it does.

A code is 80 random bits written as 16 characters of Crockford's base32 in four groups
(``7KQ2-M9XW-3DHF-RT6P``): easy to type, with no I, L, O or U to misread. Only its SHA-256
is stored. It is single use, expires, and is tied to one guardian-student link (or one
student, for the Student Portal), and issued only for a link the SIS has, in force, with
portal access; it redeems only while that still holds. A reissue revokes the link's earlier
codes. A person denied as a security risk gets none and cannot redeem one. Redeeming is one conditional update, so of parallel
requests with one code exactly one creates an account.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.db import rowcount
from gateway.portal import access, accounts, denials
from gateway.portal.schoolyear import local_today
from gateway.replica.dbtypes import utcnow
from gateway.replica.schema import encryption_context
from gateway.replica.tables import Guardian, Student, StudentGuardian
from gateway.errors import GatewayError
from gateway.portal.models import ActivationCode, User, UserStudent
from gateway.security.crypto import FieldCipher
from gateway.security.keys import KeyRing
from gateway.settings import Settings

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 16  # 16 x 5 bits = 80 bits
LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})


class CodeRefused(GatewayError):
    """A code that cannot be used, with a sentence the family can act on."""

    def __init__(self, reason: str, message: str, when: dt.datetime | None = None) -> None:
        self.reason, self.when = reason, when
        super().__init__(message)


@dataclass(frozen=True)
class IssuedCode:
    id: int
    code: str
    expires_at: dt.datetime


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return "-".join(raw[i:i + 4] for i in range(0, LENGTH, 4))


def normalize(text: str) -> str:
    return "".join(ch for ch in text.upper().translate(LOOKALIKES) if ch in ALPHABET)


def code_hash(text: str) -> str:
    return hashlib.sha256(normalize(text).encode()).hexdigest()


class IssueRefused(GatewayError):
    """No code for this link: the sentence says what the SIS lacks or why the person is refused."""

    exit_code = 2


def why_not_issuable(session: Session, replica: Session, settings: Settings, purpose: str, source_system: str,
                     student_source_id: str, guardian_source_id: str | None = None) -> str | None:
    """Why no code may be issued for this link (None: it may). A code is issued only for a
    link the SIS has, in force today, with portal access, to a guardian not denied; a
    Student Portal code only for a student the SIS has."""
    if purpose not in ("guardian", "student") or (purpose == "guardian") != bool(guardian_source_id):
        return "a guardian code names the guardian (--guardian); a Student Portal code names none"
    where = f"student {student_source_id!r} of source system {source_system!r}"
    if replica.scalar(select(Student.id).where(Student.source_system == source_system,
                                               Student.source_id == student_source_id)) is None:
        return f"the SIS has no {where}; check the student id and --source-system"
    if purpose == "student":
        return None
    links = [access.Link(row.portal_access, row.start_date, row.end_date) for row in replica.scalars(
        select(StudentGuardian).where(StudentGuardian.source_system == source_system,
                                      StudentGuardian.student_source_id == student_source_id,
                                      StudentGuardian.guardian_source_id == guardian_source_id))]
    today = local_today(settings.zone, settings.policy.today)
    if not links:
        return (f"the SIS does not link guardian {guardian_source_id!r} to {where}; "
                "a code is issued only for a link the SIS has")
    if not any(link.portal_access for link in links):
        return f"the SIS gives guardian {guardian_source_id!r} no portal access (educational rights) to {where}"
    if not any(link.portal_access and link.in_force(today) for link in links):
        return f"the link between guardian {guardian_source_id!r} and {where} is not in force today ({today})"
    if denials.is_denied(session, denials.of_guardian(replica, source_system, guardian_source_id or "")):
        return f"guardian {guardian_source_id!r} is denied access as a security risk; no code is issued"
    return None


def issue(session: Session, replica: Session, settings: Settings, purpose: str, source_system: str,
          student_source_id: str, guardian_source_id: str | None = None, created_by: int | None = None,
          application_id: int | None = None) -> IssuedCode:
    """A new code for one guardian-student link (purpose guardian) or one student; the
    link's earlier live codes are revoked, so only the newest letter works."""
    refusal = why_not_issuable(session, replica, settings, purpose, source_system, student_source_id, guardian_source_id)
    if refusal:
        raise IssueRefused(refusal)
    now = utcnow()
    session.execute(update(ActivationCode).where(
        ActivationCode.purpose == purpose, ActivationCode.source_system == source_system,
        ActivationCode.student_source_id == student_source_id,
        ActivationCode.guardian_source_id.is_(None) if guardian_source_id is None
        else ActivationCode.guardian_source_id == guardian_source_id,
        ActivationCode.used_at.is_(None), ActivationCode.revoked_at.is_(None)).values(revoked_at=now))
    code = new_code()
    expires = now + dt.timedelta(days=settings.security.activation_code_days)
    row = ActivationCode(code_hash=code_hash(code), purpose=purpose, source_system=source_system,
                         student_source_id=student_source_id, guardian_source_id=guardian_source_id,
                         created_by_id=created_by, application_id=application_id, expires_at=expires)
    session.add(row)
    session.flush()
    return IssuedCode(row.id, code, expires)


def check(session: Session, text: str, now: dt.datetime | None = None) -> ActivationCode:
    """The usable code for ``text``, or a refusal saying what to do."""
    now = now or utcnow()
    if len(normalize(text)) != LENGTH:
        raise CodeRefused("malformed", "An activation code has 16 letters and digits, like 7KQ2-M9XW-3DHF-RT6P. "
                                       "Check it against your letter.")
    row = session.scalars(select(ActivationCode).where(ActivationCode.code_hash == code_hash(text))).first()
    if row is None:
        raise CodeRefused("unknown", "That code is not right. Check it against your letter, or ask your school for a new one.")
    if row.used_at is not None:
        raise CodeRefused("used", "That code has already been used. Sign in with the account it created, "
                                  "or ask your school for a new letter.")
    if row.revoked_at is not None:
        raise CodeRefused("revoked", "That code was withdrawn by the school. Ask your school for a new letter.")
    if row.expires_at <= now:
        raise CodeRefused("expired", f"That code expired on {row.expires_at:%B %d, %Y}. Ask your school for a new letter.",
                          row.expires_at)
    return row


def take_attempt(session: Session, settings: Settings, ip: str, now: dt.datetime) -> dt.datetime | None:
    """Count an activation attempt against the address BEFORE it is tried; the lockout's end
    if it may not be tried (None: it may). Counting first, atomically, holds a burst of
    parallel requests to the limit: of a burst, only attempts numbered up to it are tried.
    The claim that follows runs in a savepoint, so a refusal keeps the count."""
    sec = settings.security
    window = dt.timedelta(minutes=sec.code_window_minutes)
    return accounts.take_attempt(session, "code_ip", ip, now, sec.code_max_attempts, window, window)


def attempt_refused(session: Session, settings: Settings, ip: str, now: dt.datetime) -> None:
    """A taken attempt was refused, whatever the reason: a wrong code, but also a taken
    username or a weak password on a good one. A refused claim leaves a good code unused, so
    without this one code would answer "is this name taken?" without end."""
    sec = settings.security
    window = dt.timedelta(minutes=sec.code_window_minutes)
    accounts.attempt_refused(session, "code_ip", ip, now, sec.code_max_attempts, window)


def attempt_succeeded(session: Session, ip: str) -> None:
    """A taken attempt redeemed its code (or was a form left incomplete): it no longer counts."""
    accounts.give_back_attempt(session, "code_ip", ip)


DENIED = "This code cannot be used. Contact the Student Accounting Department."


def redeem_for(session: Session, replica: Session, settings: Settings, index_ring: KeyRing, text: str,
               user: User) -> UserStudent:
    """A signed-in account adds the code's student: a parent only with its own guardian's
    code, a student only with its own Student Portal code."""
    code = check(session, text)
    _refuse_denied(session, replica, index_ring, code, user)
    _refuse_out_of_force(session, replica, settings, code)
    if code.purpose == "guardian" and (user.role, user.source_system, user.guardian_source_id) != (
            "parent", code.source_system, code.guardian_source_id):
        raise CodeRefused("other_guardian", "That code was sent to another parent or guardian of the student. "
                                            "Each parent activates with their own letter.")
    if code.purpose == "student" and (user.role, user.source_system, user.student_source_id) != (
            "student", code.source_system, code.student_source_id):
        raise CodeRefused("other_student", "That code is a student's own Student Portal code; only that student can use it.")
    with session.begin_nested():
        _claim(session, code, user.id)
        return _link(session, code, user)


def redeem_new_account(session: Session, replica: Session, settings: Settings, index_ring: KeyRing, cipher: FieldCipher,
                       text: str, username: str, password: str) -> User:
    """A new account from a code, named and addressed from the SIS's record of the person the
    code is for (the guardian; for a Student Portal code, the student)."""
    code = check(session, text)
    _refuse_denied(session, replica, index_ring, code, None)
    _refuse_out_of_force(session, replica, settings, code)
    name, email = _named_from_sis(replica, cipher, code)
    # The claim comes first: of parallel requests with one code, one wins the conditional
    # update and the others stop before creating anything. A refused account (a taken name,
    # a weak password) rolls the claim back with it.
    with session.begin_nested():
        _claim(session, code, None)
        user = accounts.create_user(
            session, settings, username=username, password=password, role="parent" if code.purpose == "guardian" else "student",
            display_name=name, email=email, source_system=code.source_system, guardian_source_id=code.guardian_source_id,
            student_source_id=code.student_source_id if code.purpose == "student" else None)
        code.used_by_id = user.id
        _link(session, code, user)
    return user


def _refuse_denied(session: Session, replica: Session, index_ring: KeyRing, code: ActivationCode, user: User | None) -> None:
    person = denials.of_guardian(replica, code.source_system, code.guardian_source_id) if code.guardian_source_id else None
    if (person is not None and denials.is_denied(session, person)) or \
            (user is not None and denials.user_denied(session, replica, index_ring, user)):
        raise CodeRefused("denied", DENIED)


NOT_IN_FORCE = ("The school's records no longer give this code's parent or guardian portal access to the student. "
                "Contact your school.")


def _refuse_out_of_force(session: Session, replica: Session, settings: Settings, code: ActivationCode) -> None:
    """The rule a code was issued under holds at redemption too: a link the SIS still has, in
    force today, with portal access (a Student Portal code: a student the SIS still has). A
    code issued before the link ended makes no account and stays unused."""
    if why_not_issuable(session, replica, settings, code.purpose, code.source_system, code.student_source_id,
                        code.guardian_source_id) is None:
        return
    if code.purpose == "student" or replica.scalar(select(Guardian.id).where(
            Guardian.source_system == code.source_system, Guardian.source_id == code.guardian_source_id)) is None:
        raise CodeRefused("gone", "The school's records no longer hold the person this code was written for. "
                                  "Contact your school.")
    raise CodeRefused("not_in_force", NOT_IN_FORCE)


def _named_from_sis(replica: Session, cipher: FieldCipher, code: ActivationCode) -> tuple[str, str | None]:
    if code.purpose == "student":
        student = replica.scalars(select(Student).where(Student.source_system == code.source_system,
                                                        Student.source_id == code.student_source_id)).first()
        if student is None:
            raise CodeRefused("gone", "The school's records no longer hold this student. Contact your school.")
        return f"{student.given_name} {student.family_name}", None
    guardian = replica.scalars(select(Guardian).where(Guardian.source_system == code.source_system,
                                                      Guardian.source_id == code.guardian_source_id)).first()
    if guardian is None:
        raise CodeRefused("gone", "The school's records no longer hold the parent this code was written for. "
                                  "Contact your school.")
    email = cipher.decrypt_optional(guardian.email, encryption_context("guardians", "email"))
    return f"{guardian.given_name} {guardian.family_name}", email


def _claim(session: Session, code: ActivationCode, user_id: int | None) -> None:
    """Use the code up with one conditional update: under parallel requests exactly one wins."""
    now = utcnow()
    won = rowcount(session.execute(update(ActivationCode).where(
        ActivationCode.id == code.id, ActivationCode.used_at.is_(None), ActivationCode.revoked_at.is_(None),
        ActivationCode.expires_at > now).values(used_at=now, used_by_id=user_id)))
    if won != 1:
        raise CodeRefused("used", "That code has already been used. Sign in with the account it created, "
                                  "or ask your school for a new letter.")


def _link(session: Session, code: ActivationCode, user: User) -> UserStudent:
    existing = session.scalars(select(UserStudent).where(
        UserStudent.user_id == user.id, UserStudent.source_system == code.source_system,
        UserStudent.student_source_id == code.student_source_id)).first()
    if existing is not None:
        return existing
    link = UserStudent(user_id=user.id, source_system=code.source_system, student_source_id=code.student_source_id,
                       activation_code_id=code.id)
    session.add(link)
    session.flush()
    return link

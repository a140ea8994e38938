"""Activation codes (policy II.A-C): the letter a family receives, and what redeeming it does.

A code is 80 random bits written as 16 characters of Crockford's base32 in four groups
(``7KQ2-M9XW-3DHF-RT6P``): easy to type, with no I, L, O or U to misread. Only its SHA-256
is stored. It is single use, expires, and is tied to one guardian-student link (or one
student, for the Student Portal). A person denied as a security risk cannot redeem one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.replica.dbtypes import utcnow
from gateway.errors import GatewayError
from gateway.portal.models import ActivationCode, Denial, User, UserStudent
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


def issue(session: Session, settings: Settings, purpose: str, source_system: str, student_source_id: str,
          guardian_source_id: str | None = None, created_by: int | None = None,
          application_id: int | None = None) -> IssuedCode:
    """A new code for one guardian-student link (purpose guardian) or one student."""
    if purpose not in ("guardian", "student") or (purpose == "guardian") != bool(guardian_source_id):
        raise GatewayError("a guardian code names the guardian; a student code names none")
    code = new_code()
    expires = utcnow() + dt.timedelta(days=settings.security.activation_code_days)
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


def is_denied(session: Session, source_system: str, guardian_source_id: str | None, email_index: str | None) -> bool:
    """A person denied as a security risk, by SIS guardian identity or by email."""
    query = select(Denial.id).where(Denial.lifted_at.is_(None))
    clauses = []
    if guardian_source_id:
        clauses.append((Denial.source_system == source_system) & (Denial.guardian_source_id == guardian_source_id))
    if email_index:
        clauses.append(Denial.email_index == email_index)
    if not clauses:
        return False
    condition = clauses[0] if len(clauses) == 1 else clauses[0] | clauses[1]
    return session.scalars(query.where(condition)).first() is not None


def redeem(session: Session, code: ActivationCode, user: User, email_index: str | None = None) -> UserStudent:
    """Give ``user`` the code's student; the code is used up."""
    if is_denied(session, code.source_system, code.guardian_source_id, email_index):
        raise CodeRefused("denied", "This code cannot be used. Contact the Student Accounting Department.")
    if code.purpose == "guardian" and user.guardian_source_id not in (None, code.guardian_source_id):
        raise CodeRefused("other_guardian", "That code was sent to another parent or guardian of the student. "
                                            "Each parent activates with their own letter.")
    if code.purpose == "student" and user.student_source_id not in (None, code.student_source_id):
        raise CodeRefused("other_student", "That code belongs to another student.")
    existing = session.scalars(select(UserStudent).where(
        UserStudent.user_id == user.id, UserStudent.source_system == code.source_system,
        UserStudent.student_source_id == code.student_source_id)).first()
    code.used_at, code.used_by_id = utcnow(), user.id
    if existing is not None:
        return existing
    link = UserStudent(user_id=user.id, source_system=code.source_system, student_source_id=code.student_source_id,
                       activation_code_id=code.id)
    session.add(link)
    session.flush()
    return link

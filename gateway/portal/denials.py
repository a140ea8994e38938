"""The one rule for "is this person denied as a security risk" (policy: user guidelines).

A person is known by up to three identities: their portal accounts, the SIS guardian
record (``source_system`` + ``guardian_source_id``) and their email addresses, matched
through the blind index so no address is compared in plain. A denial naming any one of
them denies the person everywhere: sign-in, every request's session, the access rules,
activation, applications and code issuing all ask here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.orm import Session

from gateway.portal.models import Denial, User
from gateway.replica.tables import Guardian
from gateway.security.crypto import email_index
from gateway.security.keys import KeyRing


@dataclass(frozen=True)
class Person:
    """Everything a denial may name about one person; empty parts match nothing."""

    user_id: int | None = None
    source_system: str | None = None
    guardian_source_id: str | None = None
    email_indexes: frozenset[str] = frozenset()


def guardian_email_index(replica: Session, source_system: str | None, guardian_source_id: str | None) -> str | None:
    """The blind index of the email the SIS holds for this guardian (the replica keeps only that)."""
    if not (source_system and guardian_source_id):
        return None
    return replica.scalar(select(Guardian.email_index).where(Guardian.source_system == source_system,
                                                             Guardian.source_id == guardian_source_id))


def of_user(replica: Session, index_ring: KeyRing, user: User) -> Person:
    """An account's person: the account, its SIS guardian, its own email and the SIS's email for it."""
    indexes = {email_index(index_ring, user.email), guardian_email_index(replica, user.source_system, user.guardian_source_id)}
    return Person(user.id, user.source_system, user.guardian_source_id, frozenset(i for i in indexes if i))


def of_guardian(replica: Session, source_system: str, guardian_source_id: str) -> Person:
    """A SIS guardian's person (before any account exists): the record and the SIS's email for it."""
    index = guardian_email_index(replica, source_system, guardian_source_id)
    return Person(None, source_system, guardian_source_id, frozenset({index} if index else ()))


def of_email(index_ring: KeyRing, email: str | None, user_id: int | None = None) -> Person:
    """Someone known only by an address they typed (an application), and perhaps their account."""
    index = email_index(index_ring, email)
    return Person(user_id, email_indexes=frozenset({index} if index else ()))


def names(person: Person) -> ColumnElement[bool]:
    """True for a denial row that names this person by account, guardian or email."""
    clauses: list[ColumnElement[bool]] = []
    if person.user_id is not None:
        clauses.append(Denial.user_id == person.user_id)
    if person.source_system and person.guardian_source_id:
        clauses.append(and_(Denial.source_system == person.source_system,
                            Denial.guardian_source_id == person.guardian_source_id))
        # A denial of any account of this guardian denies the guardian: it is one person.
        clauses.append(Denial.user_id.in_(select(User.id).where(User.source_system == person.source_system,
                                                                User.guardian_source_id == person.guardian_source_id)))
    if person.email_indexes:
        clauses.append(Denial.email_index.in_(sorted(person.email_indexes)))
    return or_(*clauses) if clauses else false()


def in_force(portal: Session, person: Person) -> Denial | None:
    """The oldest denial in force naming this person, or None."""
    return portal.scalars(select(Denial).where(Denial.lifted_at.is_(None), names(person))
                          .order_by(Denial.id).limit(1)).first()


def is_denied(portal: Session, person: Person) -> bool:
    return in_force(portal, person) is not None


def user_denied(portal: Session, replica: Session, index_ring: KeyRing, user: User) -> bool:
    """Whether this account's person is denied (a disabled account counts as denied too)."""
    return user.disabled_at is not None or is_denied(portal, of_user(replica, index_ring, user))

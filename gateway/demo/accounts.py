"""Demo accounts: one per role, and a parent for each case of POLICY-CASES.md.

Accounts are made through the real services (codes issued and redeemed), then the
activation dates the cases need are set. Passwords are random and exist only in the
instance's ``demo-logins.json``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from gateway.security import totp
from gateway.portal import activation, guidelines
from gateway.portal.accounts import create_user
from gateway.db import create_ro_engine
from gateway.replica.tables import Guardian
from gateway.security.crypto import FieldCipher
from gateway.security.keys import KeyRing, load_keyring
from gateway.portal.applications import upcoming_training
from gateway.portal.models import TerminationRequest, TrainingSession, User, UserStudent
from gateway.portal.schoolyear import eighteenth_birthday
from gateway.settings import Settings

STAFF_ROLES = (("admin", "Portal administrator"), ("staff", "Student Accounting"), ("it", "IT operations"),
               ("auditor", "District auditor"))
LONG_AGO = dt.datetime(2024, 8, 1, 15, tzinfo=dt.timezone.utc)


@dataclass
class Login:
    role: str
    username: str
    password: str
    case: str | None = None
    note: str | None = None
    students: list[str] = field(default_factory=list)
    totp_secret: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"role": self.role, "username": self.username, "password": self.password, "totp_secret": self.totp_secret,
                "case": self.case, "note": self.note, "students": self.students}


def new_password() -> str:
    return secrets.token_urlsafe(18)


@dataclass(frozen=True)
class Services:
    """What the real activation services need besides the portal session."""

    settings: Settings
    replica: Session
    index_ring: KeyRing
    cipher: FieldCipher
    source_system: str


def create_demo_accounts(session: Session, settings: Settings, sis: Engine, source_system: str, today: dt.date) -> list[Login]:
    """Every role's account and every case's parent; returns their logins."""
    guidelines.ensure_published(session)
    cipher = FieldCipher(load_keyring(settings, "field"))
    logins = [_staff(session, settings, cipher, role, name) for role, name in STAFF_ROLES]
    with sis.connect() as connection:
        cases = connection.execute(text("SELECT case_name, pupil_id, contact_id, note FROM demo_cases ORDER BY id")).all()
        births: dict[Any, Any] = dict(connection.execute(text("SELECT pupil_id, dob FROM pupils WHERE pupil_id IN "
                                              "(SELECT pupil_id FROM demo_cases)")).all())
    with Session(create_ro_engine(settings.replica.url)) as replica:
        services = Services(settings, replica, load_keyring(settings, "blind_index"), cipher, source_system)
        by_contact: dict[str, Login] = {}
        for case, pupil, contact, note in cases:
            if str(contact) in by_contact:  # a guardian with several children: one account, another code
                _add_child(session, services, by_contact[str(contact)], str(pupil), str(contact))
                continue
            login = _parent(session, services, case, str(pupil), str(contact), note,
                            _activated_at(case, births.get(pupil), today))
            by_contact[str(contact)] = login
            logins.append(login)
        logins.append(_adult_student(session, services, cases, today))
    session.commit()
    return logins


def _staff(session: Session, settings: Settings, cipher: FieldCipher, role: str, name: str) -> Login:
    """A staff-role account with its second factor enrolled (the secret goes to demo-logins.json)."""
    secret = totp.new_secret()
    login = Login(role, f"demo-{role}", new_password(), note=f"{name}: sign in with the password, then a code from totp_secret",
                  totp_secret=secret)
    user = create_user(session, settings, username=login.username, password=login.password, role=role, display_name=name)
    user.totp_secret = cipher.encrypt(secret, totp.CONTEXT)
    return login


def _parent(session: Session, services: Services, case: str, pupil: str, contact: str, note: str,
            activated_at: dt.datetime) -> Login:
    """A parent made as a family makes one: a code for the link, redeemed for a new account."""
    login = Login("parent", f"parent-{case.replace('_', '-')}", new_password(), case, note, [pupil])
    settings, replica = services.settings, services.replica
    if activation.why_not_issuable(session, replica, settings, "guardian", services.source_system, pupil, contact):
        user = _activated_before(session, services, login, pupil, contact)
    else:
        code = activation.issue(session, replica, settings, "guardian", services.source_system, pupil, contact)
        user = activation.redeem_new_account(session, replica, settings, services.index_ring, services.cipher, code.code,
                                             login.username, login.password)
    session.execute(update(UserStudent).where(UserStudent.user_id == user.id).values(activated_at=activated_at))
    return login


def _activated_before(session: Session, services: Services, login: Login, pupil: str, contact: str) -> User:
    """A parent who activated in 2024, while the SIS still gave the link portal access: no
    code can be issued for it today (that is the case it shows), so the account and its
    activation are recorded as they stand."""
    guardian = services.replica.scalars(select(Guardian).where(Guardian.source_system == services.source_system,
                                                               Guardian.source_id == contact)).one()
    user = create_user(session, services.settings, username=login.username, password=login.password, role="parent",
                       display_name=f"{guardian.given_name} {guardian.family_name}", source_system=services.source_system,
                       guardian_source_id=contact)
    session.add(UserStudent(user_id=user.id, source_system=services.source_system, student_source_id=pupil))
    session.flush()
    return user


def _add_child(session: Session, services: Services, login: Login, pupil: str, contact: str) -> None:
    user = session.scalars(select(User).where(User.username == login.username)).one()
    code = activation.issue(session, services.replica, services.settings, "guardian", services.source_system, pupil, contact)
    activation.redeem_for(session, services.replica, services.settings, services.index_ring, code.code, user)
    session.execute(update(UserStudent).where(UserStudent.user_id == user.id).values(activated_at=LONG_AGO))
    login.students.append(pupil)


def _activated_at(case: str, birth: Any, today: dt.date) -> dt.datetime:
    """2024 for every case but the parent who activates after the 18th birthday."""
    if case != "activated_after_18" or birth is None:
        return LONG_AGO
    born = birth if isinstance(birth, dt.date) else dt.date.fromisoformat(str(birth))
    after = min(eighteenth_birthday(born) + dt.timedelta(days=1), today)
    return dt.datetime.combine(after, dt.time(15), dt.timezone.utc)


def _adult_student(session: Session, services: Services, cases: Sequence[Any], today: dt.date) -> Login:
    """The student of the termination case, who has filed the written request."""
    pupil = next(str(p) for case, p, _, _ in cases if case == "termination_request")
    login = Login("student", "student-turned-18", new_password(), "termination_request",
                  "an 18-year-old student who has asked that parents' access end", [pupil])
    code = activation.issue(session, services.replica, services.settings, "student", services.source_system, pupil)
    user = activation.redeem_new_account(session, services.replica, services.settings, services.index_ring,
                                         services.cipher, code.code, login.username, login.password)
    session.add(TerminationRequest(source_system=services.source_system, student_source_id=pupil, channel="online",
                                   covers_all=True, filed_by_id=user.id, effective_date=today))
    return login


def has_accounts(session: Session) -> bool:
    return session.scalars(select(User.id).limit(1)).first() is not None


# Two evening sessions, one and two weeks ahead, where the demo has none to come.
DEMO_TRAINING = (("Parent Portal basics", "Library, Riverbend High School", 7),
                 ("Parent Portal basics (en español)", "Cafeteria, Riverbend Middle School", 14))


def ensure_training(session: Session, settings: Settings, now: dt.datetime) -> list[TrainingSession]:
    """Upcoming training sessions for the help page, letters and mails (added when none are to come)."""
    if not upcoming_training(session):
        evening = dt.time(18, 30, tzinfo=settings.zone)
        for title, location, days in DEMO_TRAINING:
            day = now.astimezone(settings.zone).date() + dt.timedelta(days=days)
            session.add(TrainingSession(title=title, location=location,
                                        starts_at=dt.datetime.combine(day, evening).astimezone(dt.timezone.utc)))
        session.commit()
    return upcoming_training(session)

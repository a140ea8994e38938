"""Demo accounts: one per role, and a parent for each case of POLICY-CASES.md.

Accounts are made through the real services (codes issued and redeemed), then the
activation dates the cases need are set. Passwords are random and exist only in the
instance's ``demo-logins.json``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from gateway.security import totp
from gateway.portal import activation, guidelines
from gateway.portal.accounts import create_user
from gateway.security.crypto import FieldCipher
from gateway.security.keys import load_keyring
from gateway.portal.models import TerminationRequest, User, UserStudent
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


def create_demo_accounts(session: Session, settings: Settings, sis: Engine, source_system: str, today: dt.date) -> list[Login]:
    """Every role's account and every case's parent; returns their logins."""
    guidelines.ensure_published(session)
    cipher = FieldCipher(load_keyring(settings, "field"))
    logins = [_staff(session, settings, cipher, role, name) for role, name in STAFF_ROLES]
    with sis.connect() as connection:
        cases = connection.execute(text("SELECT case_name, pupil_id, contact_id, note FROM demo_cases ORDER BY id")).all()
        births = dict(connection.execute(text("SELECT pupil_id, dob FROM pupils WHERE pupil_id IN "
                                              "(SELECT pupil_id FROM demo_cases)")).all())
    by_contact: dict[str, Login] = {}
    for case, pupil, contact, note in cases:
        if str(contact) in by_contact:  # a guardian with several children: one account, another code
            _add_child(session, settings, source_system, by_contact[str(contact)], str(pupil), str(contact))
            continue
        login = _parent(session, settings, source_system, case, str(pupil), str(contact), note,
                        _activated_at(case, births.get(pupil), today))
        by_contact[str(contact)] = login
        logins.append(login)
    logins.append(_adult_student(session, settings, source_system, cases, today))
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


def _parent(session: Session, settings: Settings, source_system: str, case: str, pupil: str, contact: str,
            note: str, activated_at: dt.datetime) -> Login:
    login = Login("parent", f"parent-{case.replace('_', '-')}", new_password(), case, note, [pupil])
    code = activation.issue(session, settings, "guardian", source_system, pupil, contact)
    user = create_user(session, settings, username=login.username, password=login.password, role="parent",
                       display_name=f"Demo parent ({case.replace('_', ' ')})", source_system=source_system,
                       guardian_source_id=contact)
    row = activation.check(session, code.code)
    activation.redeem(session, row, user)
    session.execute(update(UserStudent).where(UserStudent.user_id == user.id).values(activated_at=activated_at))
    return login


def _add_child(session: Session, settings: Settings, source_system: str, login: Login, pupil: str, contact: str) -> None:
    user = session.scalars(select(User).where(User.username == login.username)).one()
    code = activation.issue(session, settings, "guardian", source_system, pupil, contact)
    activation.redeem(session, activation.check(session, code.code), user)
    session.execute(update(UserStudent).where(UserStudent.user_id == user.id).values(activated_at=LONG_AGO))
    login.students.append(pupil)


def _activated_at(case: str, birth: Any, today: dt.date) -> dt.datetime:
    """2024 for every case but the parent who activates after the 18th birthday."""
    if case != "activated_after_18" or birth is None:
        return LONG_AGO
    born = birth if isinstance(birth, dt.date) else dt.date.fromisoformat(str(birth))
    after = min(eighteenth_birthday(born) + dt.timedelta(days=1), today)
    return dt.datetime.combine(after, dt.time(15), dt.timezone.utc)


def _adult_student(session: Session, settings: Settings, source_system: str, cases: list[Any], today: dt.date) -> Login:
    """The student of the termination case, who has filed the written request."""
    pupil = next(str(p) for case, p, _, _ in cases if case == "termination_request")
    login = Login("student", "student-turned-18", new_password(), "termination_request",
                  "an 18-year-old student who has asked that parents' access end", [pupil])
    code = activation.issue(session, settings, "student", source_system, pupil)
    user = create_user(session, settings, username=login.username, password=login.password, role="student",
                       display_name="Demo student", source_system=source_system, student_source_id=pupil)
    activation.redeem(session, activation.check(session, code.code), user)
    session.add(TerminationRequest(source_system=source_system, student_source_id=pupil, channel="online",
                                   covers_all=True, filed_by_id=user.id, effective_date=today))
    return login


def has_accounts(session: Session) -> bool:
    return session.scalars(select(User.id).limit(1)).first() is not None

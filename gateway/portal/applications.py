"""Online applications (policy II.A-B): a parent applies, staff approve against the SIS.

An application never creates a link the SIS lacks: staff approve it for a guardian the SIS
links to that student with portal access, and the code goes only to the email the SIS
holds for that guardian (or into a printed letter), never to the address typed in.
"""

from __future__ import annotations

import datetime as dt
import dataclasses
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import mail
from gateway.portal import activation, denials
from gateway.portal.accounts import locked_until, record_failure
from gateway.security.crypto import FieldCipher
from gateway.replica.dbtypes import utcnow
from gateway.errors import GatewayError
from gateway.security.keys import KeyRing
from gateway.portal.models import Application, Denial, TrainingSession
from gateway.replica.tables import Guardian, Student, StudentGuardian
from gateway.replica.schema import encryption_context
from gateway.settings import Settings

RELATIONSHIPS = ("mother", "father", "parent", "guardian", "grandparent", "other")


class ApplicationError(GatewayError):
    exit_code = 2


@dataclass(frozen=True)
class Candidate:
    """A guardian the SIS links to the applicant's student, shown beside the application."""

    source_system: str
    student_source_id: str
    guardian_source_id: str
    name: str
    relationship: str | None
    portal_access: bool
    has_email: bool
    denied: bool = False  # the one denial rule names this guardian: approving for them is refused


def submit(session: Session, settings: Settings, cipher: FieldCipher, index_ring: KeyRing, ip: str, *,
           given_name: str, family_name: str, email: str, relationship: str, student_number: str,
           birth_date: dt.date, user_id: int | None = None) -> Application:
    """Record an application; throttled per address and per student so it cannot probe records."""
    now, sec = utcnow(), settings.security
    window = dt.timedelta(minutes=sec.code_window_minutes)
    for scope, key in (("application_ip", ip), ("application_student", student_number.strip().lower())):
        if locked_until(session, scope, key, now) or record_failure(session, scope, key, now, sec.code_max_attempts, window, window):
            raise ApplicationError("Too many applications were sent. Try again later, or apply at your school.")
    # A denied person's application is taken like anyone's (the answer tells them nothing);
    # staff see it flagged (``denial_of``) and it cannot be approved.
    application = Application(given_name=given_name.strip(), family_name=family_name.strip(), email=email.strip(),
                              relationship=relationship, student_number=student_number.strip(), ip=ip, user_id=user_id,
                              student_birth_date=cipher.encrypt(birth_date.isoformat(), "applications.student_birth_date"))
    session.add(application)
    session.flush()
    return application


def upcoming_training(session: Session, limit: int = 5) -> list[TrainingSession]:
    return list(session.scalars(select(TrainingSession).where(
        TrainingSession.retired_at.is_(None), TrainingSession.starts_at > utcnow()).order_by(TrainingSession.starts_at).limit(limit)))


def candidates(replica: Session, cipher: FieldCipher, application: Application) -> list[Candidate]:
    """The SIS's guardians of the student whose number and birth date the applicant gave."""
    birth = cipher.decrypt(application.student_birth_date or "", "applications.student_birth_date")
    found = []
    for student in replica.scalars(select(Student).where(Student.student_number == application.student_number)):
        if student.birth_date is None or cipher.decrypt(student.birth_date, encryption_context("students", "birth_date")) != birth:
            continue
        rows = replica.execute(select(StudentGuardian, Guardian).join(Guardian, (Guardian.source_id == StudentGuardian.guardian_source_id)
                                                                      & (Guardian.source_system == StudentGuardian.source_system))
                               .where(StudentGuardian.source_system == student.source_system,
                                      StudentGuardian.student_source_id == student.source_id))
        found += [Candidate(student.source_system, student.source_id, guardian.source_id,
                            f"{guardian.given_name} {guardian.family_name}", link.relationship, link.portal_access,
                            guardian.email is not None) for link, guardian in rows]
    return found


@dataclass(frozen=True)
class Approval:
    code: str
    emailed_to_sis_address: bool


def with_denials(session: Session, replica: Session, found: list[Candidate]) -> list[Candidate]:
    """The candidates, each flagged if a denial in force names that guardian, so staff see a
    denied person who applied under a fresh address before they try to approve."""
    return [dataclasses.replace(c, denied=denials.is_denied(session, denials.of_guardian(
        replica, c.source_system, c.guardian_source_id))) for c in found]


def denial_of(session: Session, replica: Session, index_ring: KeyRing, application: Application) -> Denial | None:
    """The denial in force naming the applicant: by the email typed (or the account applying),
    or as a SIS guardian whose email on file is the one typed."""
    person = denials.of_email(index_ring, application.email, application.user_id)
    guardians = replica.execute(select(Guardian.source_system, Guardian.source_id)
                                .where(Guardian.email_index.in_(sorted(person.email_indexes)))).all()
    people = [person, *(denials.of_guardian(replica, system, source_id) for system, source_id in guardians)]
    return next(filter(None, (denials.in_force(session, p) for p in people)), None)


def approve(session: Session, replica: Session, settings: Settings, cipher: FieldCipher, index_ring: KeyRing,
            application: Application, guardian_source_id: str, staff_id: int | None = None) -> Approval:
    """Approve for a guardian the SIS links to the student; mail the code to the SIS's address only."""
    if application.status != "pending":
        raise ApplicationError(f"application {application.id} is already {application.status}")
    match = next((c for c in candidates(replica, cipher, application) if c.guardian_source_id == guardian_source_id), None)
    if match is None or not match.portal_access:
        raise ApplicationError("the SIS has no link with portal access between that guardian and the student; "
                               "an application never creates one")
    guardian = replica.scalars(select(Guardian).where(Guardian.source_system == match.source_system,
                                                      Guardian.source_id == guardian_source_id)).one()
    if denial_of(session, replica, index_ring, application) is not None:
        raise ApplicationError("the applicant is denied access as a security risk; this application cannot be approved")
    try:
        issued = activation.issue(session, replica, settings, "guardian", match.source_system, match.student_source_id,
                                  guardian_source_id, created_by=staff_id, application_id=application.id)
    except activation.IssueRefused as refused:
        raise ApplicationError(str(refused)) from refused
    application.status, application.reviewed_by_id, application.reviewed_at = "approved", staff_id, utcnow()
    application.source_system, application.guardian_source_id = match.source_system, guardian_source_id
    application.student_source_id = match.student_source_id
    address = cipher.decrypt_optional(guardian.email, encryption_context("guardians", "email"))
    if address:
        mail.send(settings, [address], f"{settings.district.name}: your Parent Portal activation code",
                  _letter(settings, guardian, issued, upcoming_training(session)))
    return Approval(issued.code, address is not None)


def _letter(settings: Settings, guardian: Guardian, issued: activation.IssuedCode,
            training: list[TrainingSession]) -> str:
    return (f"Dear {guardian.given_name} {guardian.family_name},\n\n"
            f"Your application to the {settings.district.name} Parent Portal was approved.\n\n"
            f"Go to {settings.web.public_url.rstrip('/')}/activate and enter this activation code:\n\n"
            f"    {issued.code}\n\n"
            f"The code can be used once and expires on {issued.expires_at:%B %d, %Y}.\n\n"
            f"{_training_text(settings, training)}\n\n"
            "Never share your password, not even with your children.\n")


def _training_text(settings: Settings, training: list[TrainingSession]) -> str:
    if not training:
        return "Training on the portal is recommended; ask your school for the next session."
    lines = [f"  - {t.starts_at.astimezone(settings.zone):%A %B %d, %Y, %H:%M}: {t.title}, {t.location}" for t in training]
    return "Training on the portal is recommended. The next sessions:\n" + "\n".join(lines)


def reject(session: Session, application: Application, reason: str, staff_id: int | None = None) -> None:
    if application.status != "pending":
        raise ApplicationError(f"application {application.id} is already {application.status}")
    application.status, application.decision_reason = "rejected", reason.strip()
    application.reviewed_by_id, application.reviewed_at = staff_id, utcnow()


def pending(session: Session) -> list[Application]:
    return list(session.scalars(select(Application).where(Application.status == "pending").order_by(Application.created_at)))

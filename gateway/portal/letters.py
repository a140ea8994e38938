"""Activation letters (policy IV.B): one page per guardian-student link, or per student.

Each letter carries a fresh code, the portal's address, the expiry date and short
instructions, in the family's language where the SIS gives it (English and Spanish ship).
This module issues the codes; ``web.letters`` renders the pages.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.portal import activation
from gateway.replica.tables import Guardian, School, Student, StudentGuardian
from gateway.settings import Settings

LANGUAGES = ("en", "es")


@dataclass(frozen=True)
class Letter:
    purpose: str  # guardian or student
    recipient: str
    student: str
    school: str
    code: str
    expires: dt.datetime
    language: str


def select_students(replica: Session, school: str | None, grade: str | None, students: list[str]) -> list[Student]:
    query = select(Student).order_by(Student.family_name, Student.given_name)
    if school:
        query = query.where(Student.school_source_id == school)
    if grade:
        query = query.where(Student.grade_level == grade)
    if students:
        query = query.where(Student.source_id.in_(students))
    return list(replica.scalars(query))


def issue_letters(portal: Session, replica: Session, settings: Settings, chosen: list[Student],
                  include_students: bool = False, staff_id: int | None = None) -> list[Letter]:
    """A fresh code and a letter for every portal-access link of the chosen students."""
    letters = []
    for student in chosen:
        school = replica.scalar(select(School.name).where(School.source_system == student.source_system,
                                                          School.source_id == student.school_source_id)) or ""
        name = f"{student.preferred_name or student.given_name} {student.family_name}"
        rows = replica.execute(select(Guardian).join(StudentGuardian, (StudentGuardian.guardian_source_id == Guardian.source_id)
                                                     & (StudentGuardian.source_system == Guardian.source_system))
                               .where(StudentGuardian.source_system == student.source_system,
                                      StudentGuardian.student_source_id == student.source_id,
                                      StudentGuardian.portal_access.is_(True)).order_by(Guardian.family_name)
                               .distinct()).scalars()
        for guardian in rows:
            # A link not in force today, or a guardian denied as a security risk, gets no letter.
            if activation.why_not_issuable(portal, replica, settings, "guardian", student.source_system,
                                           student.source_id, guardian.source_id):
                continue
            issued = activation.issue(portal, replica, settings, "guardian", student.source_system, student.source_id,
                                      guardian.source_id, created_by=staff_id)
            letters.append(Letter("guardian", f"{guardian.given_name} {guardian.family_name}", name, school, issued.code,
                                  issued.expires_at, _language(guardian.preferred_language)))
        if include_students:
            issued = activation.issue(portal, replica, settings, "student", student.source_system, student.source_id,
                                      created_by=staff_id)
            letters.append(Letter("student", name, name, school, issued.code, issued.expires_at,
                                  _language(student.home_language)))
    return letters


def _language(code: str | None) -> str:
    short = (code or "en").strip().lower()[:2]
    return short if short in LANGUAGES else "en"

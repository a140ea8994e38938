"""OneRoster onto the canonical model, shared by the CSV and REST connectors.

Both connectors hand rows over in one normalized shape: field names lower-cased, a
reference as its ``sourcedId``, a list as comma-separated text. So the same district
read from files or from an API yields the same records. Values are read as ONEROSTER.md
says real exports need: enum case ignored, ``YYYY-MM-DD`` or ISO-8601 timestamps, and
slash dates only where just one reading is possible.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from gateway.replica.records import (
    AssignmentRecord, CourseRecord, EnrollmentRecord, GuardianRecord, ScoreRecord, SchoolRecord,
    SectionEnrollmentRecord, SectionRecord, SectionTermRecord, StudentGuardianRecord, StudentRecord, TermRecord,
)

Row = Mapping[str, str]
GUARDIAN_ROLES = ("parent", "guardian", "relative")
SESSION_KINDS = {"schoolyear": "schoolYear", "semester": "semester", "term": "term", "gradingperiod": "gradingPeriod"}
ORG_KINDS = ("school", "district", "department", "local", "state", "national")
DELETED = "tobedeleted"


def text(row: Row, name: str) -> str | None:
    value = (row.get(name) or "").strip()
    return value or None


def required(row: Row, name: str) -> str:
    value = text(row, name)
    if value is None:
        raise ValueError(f"{name} is empty")
    return value


def listed(row: Row, name: str) -> list[str]:
    return [part.strip() for part in (row.get(name) or "").split(",") if part.strip()]


def first(row: Row, name: str) -> str | None:
    values = listed(row, name)
    return values[0] if values else None


def parse_date(value: str | None, name: str) -> dt.date | None:
    """``YYYY-MM-DD`` (or the date of an ISO timestamp); ``M/D/YYYY`` only when unambiguous."""
    if not value:
        return None
    if "/" not in value:
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            raise ValueError(f"{name} {value!r} is not a date") from None
    parts = value.split("/")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"{name} {value!r} is not a date")
    a, b, year = (int(p) for p in parts)
    readings = {_date(year, a, b), _date(year, b, a)} - {None}
    if len(readings) != 1:
        raise ValueError(f"{name} {value!r} is ambiguous (day and month could be either way)")
    return readings.pop()


def _date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def parse_timestamp(value: str | None) -> dt.datetime | None:
    """A ``dateLastModified``: aware UTC, or None when missing or unreadable."""
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc)


def parse_bool(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise ValueError(f"{value!r} is not true or false")


def parse_number(value: str | None, name: str) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a number") from None


def is_deleted(row: Row) -> bool:
    return (text(row, "status") or "").lower() == DELETED


def modified(row: Row) -> dt.datetime | None:
    return parse_timestamp(text(row, "datelastmodified"))


def role_of(row: Row) -> str | None:
    role = text(row, "role")
    return role.lower() if role else None


# --- one function per canonical table -------------------------------------------------------

def school(row: Row) -> SchoolRecord:
    kind = required(row, "type").lower()
    if kind not in ORG_KINDS:
        raise ValueError(f"type {kind!r} is not one of {', '.join(ORG_KINDS)}")
    return SchoolRecord(source_id=required(row, "sourcedid"), modified_at=modified(row), name=required(row, "name"),
                        kind=kind, school_number=text(row, "identifier"), parent_source_id=text(row, "parentsourcedid"))


def term(row: Row) -> TermRecord:
    kind = SESSION_KINDS.get(required(row, "type").lower())
    if kind is None:
        raise ValueError(f"type {row.get('type')!r} is not one of {', '.join(SESSION_KINDS.values())}")
    year = text(row, "schoolyear")
    if year is not None and not year.isdigit():
        raise ValueError(f"schoolYear {year!r} is not a year")
    return TermRecord(source_id=required(row, "sourcedid"), modified_at=modified(row), title=required(row, "title"),
                      kind=kind, start_date=parse_date(text(row, "startdate"), "startDate"),
                      end_date=parse_date(text(row, "enddate"), "endDate"), school_year=int(year) if year else None,
                      parent_source_id=text(row, "parentsourcedid"))


def course(row: Row) -> CourseRecord:
    return CourseRecord(source_id=required(row, "sourcedid"), modified_at=modified(row), title=required(row, "title"),
                        code=text(row, "coursecode"), subject=first(row, "subjects"),
                        school_source_id=text(row, "orgsourcedid"))


def section(row: Row, teacher: tuple[str, str | None] | None) -> SectionRecord:
    return SectionRecord(source_id=required(row, "sourcedid"), modified_at=modified(row), title=required(row, "title"),
                         course_source_id=text(row, "coursesourcedid"), school_source_id=text(row, "schoolsourcedid"),
                         section_code=text(row, "classcode"), period=text(row, "periods"), room=text(row, "location"),
                         teacher_name=teacher[0] if teacher else None, teacher_email=teacher[1] if teacher else None)


def section_terms(row: Row) -> list[SectionTermRecord]:
    class_id = required(row, "sourcedid")
    return [SectionTermRecord(source_id=f"{class_id}:{term_id}", modified_at=modified(row),
                              section_source_id=class_id, term_source_id=term_id)
            for term_id in listed(row, "termsourcedids")]


def student(row: Row, birth_date: dt.date | None, school_id: str | None) -> StudentRecord:
    return StudentRecord(source_id=required(row, "sourcedid"), modified_at=modified(row),
                         given_name=required(row, "givenname"), family_name=required(row, "familyname"),
                         middle_name=text(row, "middlename"), preferred_name=text(row, "preferredgivenname"),
                         student_number=text(row, "identifier"), grade_level=first(row, "grades"),
                         school_source_id=school_id, birth_date=birth_date)


def guardian(row: Row) -> GuardianRecord:
    return GuardianRecord(source_id=required(row, "sourcedid"), modified_at=modified(row),
                          given_name=required(row, "givenname"), family_name=required(row, "familyname"),
                          email=text(row, "email"), phone=text(row, "phone") or text(row, "sms"))


def link(student_id: str, guardian_id: str, relationship: str | None, portal_access: bool,
         at: dt.datetime | None) -> StudentGuardianRecord:
    return StudentGuardianRecord(source_id=f"{student_id}:{guardian_id}", modified_at=at, student_source_id=student_id,
                                 guardian_source_id=guardian_id, relationship=relationship, portal_access=portal_access)


def membership(source_id: str, student_id: str, school_id: str | None, begin: str | None, end: str | None,
               at: dt.datetime | None) -> EnrollmentRecord:
    exit_date = parse_date(end, "endDate")
    return EnrollmentRecord(source_id=source_id, modified_at=at, student_source_id=student_id, school_source_id=school_id,
                            entry_date=parse_date(begin, "beginDate"), exit_date=exit_date,
                            exit_kind="unknown" if exit_date else None)


def roster(row: Row) -> SectionEnrollmentRecord:
    return SectionEnrollmentRecord(source_id=required(row, "sourcedid"), modified_at=modified(row),
                                   section_source_id=required(row, "classsourcedid"),
                                   student_source_id=required(row, "usersourcedid"),
                                   start_date=parse_date(text(row, "begindate"), "beginDate"),
                                   end_date=parse_date(text(row, "enddate"), "endDate"))


def assignment(row: Row, categories: Mapping[str, str]) -> AssignmentRecord:
    category = text(row, "categorysourcedid")
    return AssignmentRecord(source_id=required(row, "sourcedid"), modified_at=modified(row),
                            section_source_id=required(row, "classsourcedid"), title=required(row, "title"),
                            term_source_id=text(row, "gradingperiodsourcedid"),
                            category=categories.get(category, category) if category else None,
                            assigned_date=parse_date(text(row, "assigndate"), "assignDate"),
                            due_date=parse_date(text(row, "duedate"), "dueDate"),
                            points_possible=parse_number(text(row, "resultvaluemax"), "resultValueMax"))


def score(row: Row) -> ScoreRecord:
    status = (text(row, "scorestatus") or "").lower()
    return ScoreRecord(source_id=required(row, "sourcedid"), modified_at=modified(row),
                       assignment_source_id=required(row, "lineitemsourcedid"),
                       student_source_id=required(row, "studentsourcedid"),
                       points=parse_number(text(row, "score"), "score"), score_text=text(row, "textscore"),
                       missing=status == "not submitted" or bool(parse_bool(text(row, "missing"))),
                       late=bool(parse_bool(text(row, "late"))), excused=status == "exempt",
                       scored_on=parse_date(text(row, "scoredate"), "scoreDate"))

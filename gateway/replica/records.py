"""Canonical records: what a connector yields, one frozen dataclass per replica table.

A record holds the canonical plaintext (sync encrypts and hashes it); its fields are
exactly the table's plain and encrypted columns, plus ``source_id`` and the source's
modification time where it has one. Raw source dicts never leave a connector.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

EXIT_KINDS = ("end_of_year", "withdrawal", "graduation", "transfer", "unknown")
ATTENDANCE_STATUSES = ("present", "absent", "tardy", "excused")
TERM_KINDS = ("schoolYear", "semester", "term", "gradingPeriod")


@dataclass(frozen=True, kw_only=True, slots=True)
class Record:
    TABLE: ClassVar[str] = ""
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {}

    source_id: str
    # The source's bookkeeping for cursors (a time, or an integer row version): not part of
    # the row, so not compared.
    modified_at: dt.datetime | int | None = field(default=None, compare=False)

    def values(self) -> dict[str, Any]:
        """The canonical column values (what the row hash covers)."""
        return {name: getattr(self, name) for name in _value_names(type(self))}  # type: ignore[arg-type]  # a frozen dataclass type is hashable

    def problems(self) -> list[str]:
        """Why this record cannot be stored; empty when it can."""
        found = [] if self.source_id.strip() else ["source_id is empty"]
        found += [f"{name} is empty" for name in self.REQUIRED if getattr(self, name) in (None, "")]
        for name, allowed in self.CHOICES.items():
            value = getattr(self, name)
            if value is not None and value not in allowed:
                found.append(f"{name} {value!r} is not one of {', '.join(allowed)}")
        return found


@dataclass(frozen=True, kw_only=True, slots=True)
class SchoolRecord(Record):
    TABLE = "schools"
    REQUIRED = ("name", "kind")
    name: str
    kind: str
    school_number: str | None = None
    parent_source_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TermRecord(Record):
    TABLE = "terms"
    REQUIRED = ("title", "kind")
    CHOICES = {"kind": TERM_KINDS}
    title: str
    kind: str
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    school_year: int | None = None
    parent_source_id: str | None = None
    school_source_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StudentRecord(Record):
    TABLE = "students"
    REQUIRED = ("given_name", "family_name")
    given_name: str
    family_name: str
    middle_name: str | None = None
    preferred_name: str | None = None
    student_number: str | None = None
    grade_level: str | None = None
    school_source_id: str | None = None
    birth_date: dt.date | None = None
    home_language: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class GuardianRecord(Record):
    TABLE = "guardians"
    REQUIRED = ("given_name", "family_name")
    given_name: str
    family_name: str
    email: str | None = None
    phone: str | None = None
    preferred_language: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StudentGuardianRecord(Record):
    TABLE = "student_guardians"
    REQUIRED = ("student_source_id", "guardian_source_id")
    student_source_id: str
    guardian_source_id: str
    relationship: str | None = None
    portal_access: bool = False
    custody: bool | None = None
    lives_with: bool | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class EnrollmentRecord(Record):
    TABLE = "enrollments"
    REQUIRED = ("student_source_id",)
    CHOICES = {"exit_kind": EXIT_KINDS}
    student_source_id: str
    school_source_id: str | None = None
    entry_date: dt.date | None = None
    exit_date: dt.date | None = None
    exit_kind: str | None = None
    grade_level: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CourseRecord(Record):
    TABLE = "courses"
    REQUIRED = ("title",)
    title: str
    code: str | None = None
    subject: str | None = None
    school_source_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SectionRecord(Record):
    TABLE = "sections"
    REQUIRED = ("title",)
    title: str
    course_source_id: str | None = None
    school_source_id: str | None = None
    section_code: str | None = None
    period: str | None = None
    room: str | None = None
    teacher_name: str | None = None
    teacher_email: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SectionTermRecord(Record):
    TABLE = "section_terms"
    REQUIRED = ("section_source_id", "term_source_id")
    section_source_id: str
    term_source_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class SectionEnrollmentRecord(Record):
    TABLE = "section_enrollments"
    REQUIRED = ("section_source_id", "student_source_id")
    section_source_id: str
    student_source_id: str
    start_date: dt.date | None = None
    end_date: dt.date | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AssignmentRecord(Record):
    TABLE = "assignments"
    REQUIRED = ("section_source_id", "title")
    section_source_id: str
    title: str
    term_source_id: str | None = None
    category: str | None = None
    assigned_date: dt.date | None = None
    due_date: dt.date | None = None
    points_possible: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ScoreRecord(Record):
    TABLE = "scores"
    REQUIRED = ("assignment_source_id", "student_source_id")
    assignment_source_id: str
    student_source_id: str
    points: float | None = None
    score_text: str | None = None
    missing: bool = False
    late: bool = False
    excused: bool = False
    scored_on: dt.date | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TermGradeRecord(Record):
    TABLE = "term_grades"
    REQUIRED = ("student_source_id", "section_source_id")
    student_source_id: str
    section_source_id: str
    term_source_id: str | None = None
    mark: str | None = None
    percent: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AttendanceRecord(Record):
    TABLE = "attendance"
    REQUIRED = ("student_source_id", "date", "status")
    CHOICES = {"status": ATTENDANCE_STATUSES}
    student_source_id: str
    date: dt.date
    status: str
    school_source_id: str | None = None
    section_source_id: str | None = None
    period: str | None = None
    code: str | None = None
    minutes: int | None = None


RECORD_TYPES: dict[str, type[Record]] = {
    cls.TABLE: cls for cls in (
        SchoolRecord, TermRecord, StudentRecord, GuardianRecord, StudentGuardianRecord,
        EnrollmentRecord, CourseRecord, SectionRecord, SectionTermRecord, SectionEnrollmentRecord,
        AssignmentRecord, ScoreRecord, TermGradeRecord, AttendanceRecord,
    )
}


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A delta source's word that a record is gone (OneRoster ``tobedeleted``)."""

    table: str
    source_id: str
    modified_at: dt.datetime | int | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """A source row set aside: where it was, why, and a hash of it (never its content)."""

    table: str
    source_position: str
    reason: str
    payload_hash: str | None = None
    source_id: str | None = None  # when known: its stored row is kept, not deleted
    # Rows of the stream's table that this run derives from the rejected source row (a
    # student's links and school memberships): (reference column, source id) pairs whose
    # stored rows are kept too, as the rejected record's own row is.
    keep_rows: tuple[tuple[str, str], ...] = ()
    # The rejected values would narrow access (an enrolment that now ends, a link that now
    # grants less): the stored row is removed rather than kept, so access fails closed.
    narrows: bool = False
    # The record with its unreadable birth date left unknown: applied instead of keeping the
    # stored row where the policy refuses unknown birth dates (then unknown is the narrower).
    unknown_birth_date: Record | None = None


@functools.cache
def _value_names(record_type: type[Record]) -> tuple[str, ...]:
    """A record type's value fields, worked out once (``fields()`` per record cost a tenth of a sync)."""
    return tuple(f.name for f in fields(record_type) if f.name not in ("source_id", "modified_at"))


@dataclass(frozen=True, slots=True)
class KeyChange:
    """A source's word that a row's natural key changed (Ed-Fi ``/keyChanges``).

    The row moves: its source id becomes ``new_source_id`` and the ``*_source_id`` columns
    that name it follow, so its replica id, the rows that refer to it and portal access
    built on it stay. Never a delete and an insert.
    """

    table: str
    old_source_id: str
    new_source_id: str
    modified_at: dt.datetime | int | None = None

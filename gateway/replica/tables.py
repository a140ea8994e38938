"""The canonical replica model (DESIGN.md, "Canonical replica model").

Table names are a contract. Every canonical row carries lineage; every reference is
kept twice (``student_id`` for joins, ``student_source_id`` covered by the row hash).
There is deliberately no column for passwords, SSNs, medical or discipline data.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, Index, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from gateway.replica.dbtypes import LINEAGE, UtcDateTime, blind_index, encrypted, plain, reference_id, reference_source_id

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class ReplicaBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Lineage:
    """Where a row came from: the source's own id, the keyed hash, the run that wrote it."""

    if TYPE_CHECKING:  # each table class names itself
        __tablename__: str

    id: Mapped[int] = mapped_column(primary_key=True, info={"storage": LINEAGE})
    source_system: Mapped[str] = mapped_column(String(64), info={"storage": LINEAGE})
    source_id: Mapped[str] = mapped_column(String(255), info={"storage": LINEAGE})
    row_hash: Mapped[str] = mapped_column(String(64), info={"storage": LINEAGE})
    synced_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, info={"storage": LINEAGE})
    sync_run_id: Mapped[int] = mapped_column(index=True, info={"storage": LINEAGE})

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (UniqueConstraint("source_system", "source_id", name=f"uq_{cls.__tablename__}_source"),)


class School(Lineage, ReplicaBase):
    __tablename__ = "schools"
    name: Mapped[str] = plain(String(255))
    kind: Mapped[str] = plain(String(32))  # school, district, department, local, state, national
    school_number: Mapped[str | None] = plain(String(64))
    parent_id: Mapped[int | None] = reference_id("schools")
    parent_source_id: Mapped[str | None] = reference_source_id(nullable=True)


class Term(Lineage, ReplicaBase):
    __tablename__ = "terms"
    title: Mapped[str] = plain(String(255))
    kind: Mapped[str] = plain(String(32))  # schoolYear, semester, term, gradingPeriod
    start_date: Mapped[dt.date | None] = plain()
    end_date: Mapped[dt.date | None] = plain()
    school_year: Mapped[int | None] = plain()
    parent_id: Mapped[int | None] = reference_id("terms")
    parent_source_id: Mapped[str | None] = reference_source_id(nullable=True)
    school_id: Mapped[int | None] = reference_id("schools")
    school_source_id: Mapped[str | None] = reference_source_id(nullable=True)


class Student(Lineage, ReplicaBase):
    __tablename__ = "students"
    given_name: Mapped[str] = plain(String(255))
    middle_name: Mapped[str | None] = plain(String(255))
    family_name: Mapped[str] = plain(String(255))
    preferred_name: Mapped[str | None] = plain(String(255))
    student_number: Mapped[str | None] = plain(String(64), index=True)
    grade_level: Mapped[str | None] = plain(String(16))
    school_id: Mapped[int | None] = reference_id("schools")
    school_source_id: Mapped[str | None] = reference_source_id(nullable=True)
    birth_date: Mapped[str | None] = encrypted()
    home_language: Mapped[str | None] = plain(String(32))


class Guardian(Lineage, ReplicaBase):
    __tablename__ = "guardians"
    given_name: Mapped[str] = plain(String(255))
    family_name: Mapped[str] = plain(String(255))
    email: Mapped[str | None] = encrypted()
    email_index: Mapped[str | None] = blind_index(of="email")
    phone: Mapped[str | None] = encrypted()
    preferred_language: Mapped[str | None] = plain(String(32))


class StudentGuardian(Lineage, ReplicaBase):
    __tablename__ = "student_guardians"
    student_id: Mapped[int | None] = reference_id("students", required=True)
    student_source_id: Mapped[str] = reference_source_id()
    guardian_id: Mapped[int | None] = reference_id("guardians", required=True)
    guardian_source_id: Mapped[str] = reference_source_id()
    relationship: Mapped[str | None] = plain(String(32))
    portal_access: Mapped[bool] = plain(default=False)
    custody: Mapped[bool | None] = plain()
    lives_with: Mapped[bool | None] = plain()
    start_date: Mapped[dt.date | None] = plain()
    end_date: Mapped[dt.date | None] = plain()


class Enrollment(Lineage, ReplicaBase):
    __tablename__ = "enrollments"
    student_id: Mapped[int | None] = reference_id("students", required=True)
    student_source_id: Mapped[str] = reference_source_id()
    school_id: Mapped[int | None] = reference_id("schools")
    school_source_id: Mapped[str | None] = reference_source_id(nullable=True)
    entry_date: Mapped[dt.date | None] = plain()
    exit_date: Mapped[dt.date | None] = plain()
    exit_kind: Mapped[str | None] = plain(String(16))  # end_of_year, withdrawal, graduation, transfer, unknown
    grade_level: Mapped[str | None] = plain(String(16))


class Course(Lineage, ReplicaBase):
    __tablename__ = "courses"
    title: Mapped[str] = plain(String(255))
    code: Mapped[str | None] = plain(String(64))
    subject: Mapped[str | None] = plain(String(64))
    school_id: Mapped[int | None] = reference_id("schools")
    school_source_id: Mapped[str | None] = reference_source_id(nullable=True)


class Section(Lineage, ReplicaBase):
    __tablename__ = "sections"
    course_id: Mapped[int | None] = reference_id("courses")
    course_source_id: Mapped[str | None] = reference_source_id(nullable=True)
    school_id: Mapped[int | None] = reference_id("schools")
    school_source_id: Mapped[str | None] = reference_source_id(nullable=True)
    title: Mapped[str] = plain(String(255))
    section_code: Mapped[str | None] = plain(String(64))
    period: Mapped[str | None] = plain(String(32))
    room: Mapped[str | None] = plain(String(64))
    teacher_name: Mapped[str | None] = plain(String(255))
    teacher_email: Mapped[str | None] = plain(String(255))


class SectionTerm(Lineage, ReplicaBase):
    __tablename__ = "section_terms"
    section_id: Mapped[int | None] = reference_id("sections", required=True)
    section_source_id: Mapped[str] = reference_source_id()
    term_id: Mapped[int | None] = reference_id("terms", required=True)
    term_source_id: Mapped[str] = reference_source_id()


class SectionEnrollment(Lineage, ReplicaBase):
    __tablename__ = "section_enrollments"
    section_id: Mapped[int | None] = reference_id("sections", required=True)
    section_source_id: Mapped[str] = reference_source_id()
    student_id: Mapped[int | None] = reference_id("students", required=True)
    student_source_id: Mapped[str] = reference_source_id()
    start_date: Mapped[dt.date | None] = plain()
    end_date: Mapped[dt.date | None] = plain()


class Assignment(Lineage, ReplicaBase):
    __tablename__ = "assignments"
    section_id: Mapped[int | None] = reference_id("sections", required=True)
    section_source_id: Mapped[str] = reference_source_id()
    term_id: Mapped[int | None] = reference_id("terms")
    term_source_id: Mapped[str | None] = reference_source_id(nullable=True)
    title: Mapped[str] = plain(String(255))
    category: Mapped[str | None] = plain(String(64))
    assigned_date: Mapped[dt.date | None] = plain()
    due_date: Mapped[dt.date | None] = plain()
    points_possible: Mapped[float | None] = plain()


class Score(Lineage, ReplicaBase):
    __tablename__ = "scores"
    assignment_id: Mapped[int | None] = reference_id("assignments", required=True)
    assignment_source_id: Mapped[str] = reference_source_id()
    student_id: Mapped[int | None] = reference_id("students", required=True)
    student_source_id: Mapped[str] = reference_source_id()
    points: Mapped[float | None] = plain()
    score_text: Mapped[str | None] = plain(String(32))
    missing: Mapped[bool] = plain(default=False)
    late: Mapped[bool] = plain(default=False)
    excused: Mapped[bool] = plain(default=False)
    scored_on: Mapped[dt.date | None] = plain()


class TermGrade(Lineage, ReplicaBase):
    __tablename__ = "term_grades"
    student_id: Mapped[int | None] = reference_id("students", required=True)
    student_source_id: Mapped[str] = reference_source_id()
    section_id: Mapped[int | None] = reference_id("sections", required=True)
    section_source_id: Mapped[str] = reference_source_id()
    term_id: Mapped[int | None] = reference_id("terms")
    term_source_id: Mapped[str | None] = reference_source_id(nullable=True)
    mark: Mapped[str | None] = plain(String(16))
    percent: Mapped[float | None] = plain()


class Attendance(Lineage, ReplicaBase):
    __tablename__ = "attendance"
    student_id: Mapped[int | None] = reference_id("students", required=True)
    student_source_id: Mapped[str] = reference_source_id()
    school_id: Mapped[int | None] = reference_id("schools")
    school_source_id: Mapped[str | None] = reference_source_id(nullable=True)
    section_id: Mapped[int | None] = reference_id("sections")
    section_source_id: Mapped[str | None] = reference_source_id(nullable=True)
    date: Mapped[dt.date] = plain()
    period: Mapped[str | None] = plain(String(32))
    status: Mapped[str] = plain(String(16))  # present, absent, tardy, excused
    code: Mapped[str | None] = plain(String(32))
    minutes: Mapped[int | None] = plain()


CANONICAL_TABLES: tuple[type[Lineage], ...] = (
    School, Term, Student, Guardian, StudentGuardian, Enrollment, Course, Section,
    SectionTerm, SectionEnrollment, Assignment, Score, TermGrade, Attendance,
)


# The warnings of a run (a SQL source whose login can write) ride in ``unmapped_fields``
# under this key, shaped as the streams are ({text: 1}), until they have a column.
RUN_WARNINGS_KEY = "_warnings"


class SyncRun(ReplicaBase):
    __tablename__ = "sync_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    connector: Mapped[str] = mapped_column(String(64), index=True)
    source_system: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))  # full, incremental, rekey
    status: Mapped[str] = mapped_column(String(16))  # running, succeeded, failed
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    unmapped_fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Warnings about the source: what the run read with less than full confidence (unknown
    # columns, dropped values, odd dates, duplicates, narrowed access, rejects by reason);
    # see sync.findings. (``warnings`` below are what a connector says of itself.)
    findings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)

    @property
    def warnings(self) -> list[str]:
        return list((self.unmapped_fields or {}).get(RUN_WARNINGS_KEY, {}))

    @property
    def unmapped_by_stream(self) -> dict[str, Any]:
        return {k: v for k, v in (self.unmapped_fields or {}).items() if k != RUN_WARNINGS_KEY}


class SyncReject(ReplicaBase):
    __tablename__ = "sync_rejects"
    id: Mapped[int] = mapped_column(primary_key=True)
    sync_run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"), index=True)
    table_name: Mapped[str] = mapped_column(String(64))
    source_position: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    payload_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class SyncCursor(ReplicaBase):
    __tablename__ = "sync_cursors"
    __table_args__ = (UniqueConstraint("connector", "stream", name="uq_sync_cursors_stream"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    connector: Mapped[str] = mapped_column(String(64))
    stream: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(64))
    value_kind: Mapped[str] = mapped_column(String(16))  # datetime or integer
    sync_run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id"))
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


# Lookups the portal pages make on every request.
Index("ix_student_guardians_pair", StudentGuardian.guardian_source_id, StudentGuardian.student_source_id)
Index("ix_attendance_student_date", Attendance.student_source_id, Attendance.date)


class SourceResourceId(ReplicaBase):
    """An API item's server-assigned id and the natural key (source id) it was read with.

    Ed-Fi ``/deletes`` on older API versions name only the server id: this map, kept with
    the published run, turns them into tombstones. Not canonical data: never shown.
    """

    __tablename__ = "source_resource_ids"
    __table_args__ = (UniqueConstraint("connector", "resource", "resource_id", name="uq_source_resource_ids_item"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    connector: Mapped[str] = mapped_column(String(64))
    resource: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str] = mapped_column(String(255))

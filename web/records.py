"""What a child's pages show, read from the replica through the read-only session."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from gateway.portal.facts import StudentRef
from gateway.replica.tables import (
    Assignment, Attendance, School, Score, Section, SectionEnrollment, SectionTerm, Student, Term, TermGrade,
)

STATUS_ORDER = ("present", "tardy", "excused", "absent")


def _same_source(model: Any, ref: StudentRef) -> Any:
    return and_(model.source_system == ref.source_system, model.student_source_id == ref.source_id)


def school_name(replica: Session, student: Student) -> str | None:
    return replica.scalar(select(School.name).where(School.source_system == student.source_system,
                                                    School.source_id == student.school_source_id))


def schedule(replica: Session, ref: StudentRef, today: dt.date) -> list[dict[str, Any]]:
    rows = replica.execute(
        select(Section).join(SectionEnrollment, and_(SectionEnrollment.section_source_id == Section.source_id,
                                                     SectionEnrollment.source_system == Section.source_system))
        .where(_same_source(SectionEnrollment, ref),
               (SectionEnrollment.end_date.is_(None)) | (SectionEnrollment.end_date >= today))
        .order_by(Section.period, Section.title)).scalars().all()
    terms = _term_titles(replica, ref.source_system, [section.source_id for section in rows])
    return [{"title": s.title, "period": s.period, "room": s.room, "teacher": s.teacher_name,
             "teacher_email": s.teacher_email, "terms": ", ".join(terms.get(s.source_id, []))} for s in rows]


def _term_titles(replica: Session, source_system: str, section_ids: list[str]) -> dict[str, list[str]]:
    rows = replica.execute(select(SectionTerm.section_source_id, Term.title).join(
        Term, and_(Term.source_id == SectionTerm.term_source_id, Term.source_system == SectionTerm.source_system))
        .where(SectionTerm.source_system == source_system, SectionTerm.section_source_id.in_(section_ids)))
    titles: dict[str, list[str]] = {}
    for section_id, title in rows:
        titles.setdefault(section_id, []).append(title)
    return titles


def grades(replica: Session, ref: StudentRef) -> list[dict[str, Any]]:
    rows = replica.execute(
        select(TermGrade.mark, TermGrade.percent, Section.title, Term.title, Term.end_date)
        .join(Section, and_(Section.source_id == TermGrade.section_source_id, Section.source_system == TermGrade.source_system))
        .outerjoin(Term, and_(Term.source_id == TermGrade.term_source_id, Term.source_system == TermGrade.source_system))
        .where(_same_source(TermGrade, ref)).order_by(Term.end_date, Section.title))
    return [{"mark": mark, "percent": percent, "section": section, "term": term} for mark, percent, section, term, _ in rows]


def assignments(replica: Session, ref: StudentRef) -> list[dict[str, Any]]:
    rows = replica.execute(
        select(Assignment, Score, Section.title)
        .join(Score, and_(Score.assignment_source_id == Assignment.source_id, Score.source_system == Assignment.source_system))
        .join(Section, and_(Section.source_id == Assignment.section_source_id, Section.source_system == Assignment.source_system))
        .where(_same_source(Score, ref)).order_by(Assignment.due_date.desc(), Assignment.title))
    return [{"title": a.title, "section": section, "category": a.category, "due": a.due_date, "points": s.points,
             "possible": a.points_possible, "text": s.score_text, "missing": s.missing, "late": s.late, "excused": s.excused}
            for a, s, section in rows]


@dataclass(frozen=True)
class AttendanceView:
    days: list[dict[str, Any]]
    totals: dict[str, int]
    months: list[dict[str, Any]]  # newest first: {"first": the month's 1st, "days": one entry per school day}


def attendance(replica: Session, ref: StudentRef) -> AttendanceView:
    rows = replica.execute(select(Attendance.date, Attendance.status, Attendance.code, Attendance.period)
                           .where(_same_source(Attendance, ref)).order_by(Attendance.date.desc(), Attendance.period))
    days = [{"date": d, "status": status, "code": code, "period": period} for d, status, code, period in rows]
    daily = {day["date"]: day for day in days if day["period"] is None}
    totals = Counter(day["status"] for day in daily.values())
    return AttendanceView(days, {status: totals.get(status, 0) for status in STATUS_ORDER}, _months(days))


def _months(days: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per day, grouped by month; a day's periods kept under it (shown on demand)."""
    by_day: dict[dt.date, dict[str, Any]] = {}
    for row in days:  # newest day first, as read
        day = by_day.setdefault(row["date"], {"date": row["date"], "status": None, "code": None, "periods": []})
        if row["period"] is None:
            day["status"], day["code"] = row["status"], row["code"]
        else:
            day["periods"].append(row)
    months: dict[dt.date, dict[str, Any]] = {}
    for date, day in by_day.items():
        if day["status"] is None:  # the SIS sent periods only: the day reads as its worst period
            day["status"] = max((p["status"] for p in day["periods"]), key=_rank, default=None)
        months.setdefault(date.replace(day=1), {"first": date.replace(day=1), "days": []})["days"].append(day)
    return list(months.values())


def _rank(status: str) -> int:
    return STATUS_ORDER.index(status) if status in STATUS_ORDER else -1

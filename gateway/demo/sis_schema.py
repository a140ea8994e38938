"""The demo SIS's own, vendor-like schema ("Riverbend SIS").

Deliberately unlike the canonical model: other names, integer ids, codes instead of
words, and the sensitive columns a real SIS has (SSNs, password hashes, medical,
discipline and counsellor notes), which the gateway must never copy.

Portable to SQLite, PostgreSQL and MySQL/MariaDB: every VARCHAR has a length, scores are
double precision (MySQL's FLOAT is single) and MySQL keeps microseconds (DATETIME(6)).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Date, DateTime, Double, Integer, MetaData, String, Table, Text
from sqlalchemy.dialects import mysql

metadata = MetaData()
STAMP = DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _stamps() -> list[Column[object]]:
    # Like RosarioSIS: created_at on insert; updated_at only once a row is changed.
    return [Column("created_at", STAMP, nullable=False), Column("updated_at", STAMP)]


district_orgs = Table(
    "district_orgs", metadata,
    Column("org_id", Integer, primary_key=True), Column("org_name", String(120), nullable=False),
    Column("org_type", String(20), nullable=False), Column("parent_org_id", Integer),
    Column("school_code", String(10)), *_stamps(),
)
marking_periods = Table(
    "marking_periods", metadata,
    Column("mp_id", Integer, primary_key=True), Column("title", String(60), nullable=False),
    Column("mp_type", String(10), nullable=False),  # YEAR, SEM, QTR
    Column("start_date", Date), Column("end_date", Date), Column("parent_mp_id", Integer),
    Column("school_id", Integer), Column("syear", Integer), *_stamps(),
)
pupils = Table(
    "pupils", metadata,
    Column("pupil_id", Integer, primary_key=True), Column("student_no", String(12), nullable=False),
    Column("first_name", String(60), nullable=False), Column("middle_name", String(60)),
    Column("last_name", String(60), nullable=False), Column("nickname", String(60)),
    Column("dob", Date), Column("grade", String(4)), Column("school_id", Integer), Column("home_lang", String(10)),
    Column("ssn", String(11)), Column("password_hash", String(80)),
    Column("medical_notes", Text), Column("discipline_notes", Text), *_stamps(),
)
contacts = Table(
    "contacts", metadata,
    Column("contact_id", Integer, primary_key=True), Column("first_name", String(60), nullable=False),
    Column("last_name", String(60), nullable=False), Column("email", String(120)),
    Column("cell_phone", String(20)), Column("lang", String(10)), Column("ssn", String(11)),
    Column("portal_password_hash", String(80)), *_stamps(),
)
pupil_contacts = Table(
    "pupil_contacts", metadata,
    Column("link_id", Integer, primary_key=True), Column("pupil_id", Integer, nullable=False),
    Column("contact_id", Integer, nullable=False), Column("relation", String(20)),
    Column("edu_rights", Boolean, nullable=False), Column("has_custody", Boolean),
    Column("resides_with", Boolean), Column("valid_from", Date), Column("valid_to", Date), *_stamps(),
)
enrollment_history = Table(
    "enrollment_history", metadata,
    Column("enroll_id", Integer, primary_key=True), Column("pupil_id", Integer, nullable=False),
    Column("school_id", Integer, nullable=False), Column("grade", String(4)),
    Column("entry_date", Date), Column("exit_date", Date),
    Column("exit_code", String(4)),  # EOY, WD, GR, TR
    *_stamps(),
)
staff_members = Table(
    "staff_members", metadata,
    Column("staff_id", Integer, primary_key=True), Column("first_name", String(60), nullable=False),
    Column("last_name", String(60), nullable=False), Column("email", String(120)),
    Column("ssn", String(11)), Column("password_hash", String(80)), *_stamps(),
)
course_catalog = Table(
    "course_catalog", metadata,
    Column("course_id", Integer, primary_key=True), Column("school_id", Integer, nullable=False),
    Column("course_code", String(12)), Column("course_title", String(120), nullable=False),
    Column("dept", String(40)), *_stamps(),
)
class_sections = Table(
    "class_sections", metadata,
    Column("section_id", Integer, primary_key=True), Column("course_id", Integer, nullable=False),
    Column("school_id", Integer, nullable=False), Column("section_no", String(8)),
    Column("period", String(8)), Column("room", String(12)), Column("staff_id", Integer), *_stamps(),
)
section_mps = Table(
    "section_mps", metadata,
    Column("id", Integer, primary_key=True), Column("section_id", Integer, nullable=False),
    Column("mp_id", Integer, nullable=False), *_stamps(),
)
rosters = Table(
    "rosters", metadata,
    Column("roster_id", Integer, primary_key=True), Column("section_id", Integer, nullable=False),
    Column("pupil_id", Integer, nullable=False), Column("start_date", Date), Column("end_date", Date), *_stamps(),
)
gb_assignments = Table(
    "gb_assignments", metadata,
    Column("asg_id", BigInteger, primary_key=True), Column("section_id", Integer, nullable=False),
    Column("mp_id", Integer), Column("title", String(120), nullable=False), Column("category", String(40)),
    Column("assigned_on", Date), Column("due_on", Date), Column("max_points", Double), *_stamps(),
)
gb_scores = Table(
    "gb_scores", metadata,
    Column("score_id", Integer, primary_key=True), Column("asg_id", BigInteger, nullable=False),
    Column("pupil_id", Integer, nullable=False), Column("points", Double), Column("letter", String(4)),
    Column("flag_missing", Boolean, nullable=False), Column("flag_late", Boolean, nullable=False),
    Column("flag_excused", Boolean, nullable=False), Column("scored_on", Date),
    Column("teacher_comment", Text), *_stamps(),
)
report_card = Table(
    "report_card", metadata,
    Column("rc_id", Integer, primary_key=True), Column("pupil_id", Integer, nullable=False),
    Column("section_id", Integer, nullable=False), Column("mp_id", Integer),
    Column("letter_grade", String(4)), Column("pct", Double), Column("counselor_note", Text), *_stamps(),
)
attendance_daily = Table(
    "attendance_daily", metadata,
    Column("att_id", Integer, primary_key=True), Column("pupil_id", Integer, nullable=False),
    Column("school_id", Integer), Column("att_date", Date, nullable=False),
    Column("code", String(2), nullable=False),  # P, A, T, E
    Column("minutes_absent", Integer), *_stamps(),
)
attendance_period = Table(
    "attendance_period", metadata,
    Column("att_id", Integer, primary_key=True), Column("pupil_id", Integer, nullable=False),
    Column("section_id", Integer, nullable=False), Column("att_date", Date, nullable=False),
    Column("period", String(8)), Column("code", String(2), nullable=False), *_stamps(),
)
# Not a real SIS table: which rows illustrate which case of POLICY-CASES.md, for the demo.
demo_cases = Table(
    "demo_cases", metadata,
    Column("id", Integer, primary_key=True), Column("case_name", String(40), nullable=False),
    Column("pupil_id", Integer, nullable=False), Column("contact_id", Integer), Column("note", Text),
)

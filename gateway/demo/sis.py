"""The demo SIS generator: a realistic district in the demo SIS's own schema.

Deterministic for a seed and a "today"; writes in batches as it goes, so its memory does
not grow with the district. It plants recognisable sensitive values (SSNs starting 900-,
``DEMOHASH`` password hashes, ``MEDICAL-DEMO``/``DISCIPLINE-DEMO``/``COUNSEL-DEMO`` notes)
that tests search the replica for, and it adds every case of POLICY-CASES.md.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Table

from gateway.demo import sis_schema as s
from gateway.portal.schoolyear import SchoolYear, school_year_containing

SENSITIVE_MARKERS = ("900-", "DEMOHASH", "MEDICAL-DEMO", "DISCIPLINE-DEMO", "COUNSEL-DEMO")
GRADES = ("K", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12")
SCHOOLS = {  # org_id: (name, code, grades)
    2: ("Riverbend Elementary School", "RES", range(0, 6)),
    3: ("Riverbend Middle School", "RMS", range(6, 9)),
    4: ("Riverbend High School", "RHS", range(9, 13)),
    5: ("Lakeside Elementary School", "LES", range(0, 6)),
}
SUBJECTS = {
    "elementary": ("Homeroom", "Reading", "Mathematics", "Science", "Art", "Physical Education"),
    "secondary": ("English", "Mathematics", "Science", "History", "Spanish", "Physical Education"),
}
FIRST_NAMES = ("Ana", "Ben", "Carla", "Diego", "Emma", "Farah", "Gabriel", "Hana", "Isaac", "Jade",
               "Kofi", "Lucia", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Samuel", "Tamar",
               "Uma", "Victor", "Wen", "Ximena", "Yusuf", "Zoe")
LAST_NAMES = ("Garcia", "Nguyen", "Smith", "Okafor", "Lopez", "Kim", "Patel", "Johnson", "Haddad",
              "Rossi", "Martinez", "Chen", "Brown", "Silva", "Kowalski", "Ibrahim", "Dubois", "Tanaka")
LANGUAGES = ("en",) * 15 + ("es",) * 4 + ("vi",)
SECTION_SIZE = 28


@dataclass
class DemoSummary:
    students: int = 0
    contacts: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)


class _Writer:
    """Buffers rows per table and writes them in batches inside one transaction."""

    def __init__(self, connection: Connection, batch: int = 2000) -> None:
        self.connection, self.batch = connection, batch
        self.buffers: dict[Table, list[dict[str, Any]]] = {}
        self.counts: Counter[str] = Counter()
        self.stamp: Callable[[Table, dict[str, Any]], dt.datetime] | None = None

    def add(self, table: Table, **row: Any) -> None:
        if self.stamp is not None and "created_at" in row:
            row["created_at"] = self.stamp(table, row)
        buffer = self.buffers.setdefault(table, [])
        buffer.append(row)
        if len(buffer) >= self.batch:
            self.flush(table)

    def flush(self, table: Table | None = None) -> None:
        for each in [table] if table is not None else list(self.buffers):
            rows = self.buffers.get(each) or []
            if rows:
                self.connection.execute(each.insert(), rows)
                self.counts[each.name] += len(rows)
                rows.clear()


@dataclass(frozen=True)
class Calendar:
    year: SchoolYear
    first_class: dt.date
    last_class: dt.date
    quarters: tuple[tuple[dt.date, dt.date], ...]

    @classmethod
    def of(cls, year: SchoolYear) -> Calendar:
        first = _next_weekday(dt.date(year.start_year, 8, 20))
        last = _previous_weekday(dt.date(year.start_year + 1, 6, 5))
        marks = [first, _next_weekday(dt.date(year.start_year, 10, 27)),
                 _next_weekday(dt.date(year.start_year + 1, 1, 6)), _next_weekday(dt.date(year.start_year + 1, 3, 16))]
        quarters = tuple((start, (marks[i + 1] - dt.timedelta(days=3)) if i < 3 else last) for i, start in enumerate(marks))
        return cls(year, first, last, quarters)


def _next_weekday(day: dt.date) -> dt.date:
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


def _previous_weekday(day: dt.date) -> dt.date:
    while day.weekday() >= 5:
        day -= dt.timedelta(days=1)
    return day


class DemoDistrict:
    """Everything the generator decides, written through one ``_Writer``."""

    def __init__(self, writer: _Writer, seed: int, today: dt.date, attendance_days: int, assignments: int) -> None:
        self.w, self.rng, self.today = writer, random.Random(seed), today
        self.attendance_days, self.assignments = attendance_days, assignments
        self.calendar = Calendar.of(school_year_containing(today))
        self.previous = Calendar.of(self.calendar.year.previous())
        self.created = dt.datetime.combine(self.calendar.year.first_day, dt.time(6), dt.timezone.utc)
        writer.stamp = self.created_at
        self.next_pupil, self.next_contact, self.next_link = 1, 1, 1
        self.summary = DemoSummary()
        self.section_counts: dict[tuple[int, int], int] = {}
        self.placed: Counter[tuple[int, int]] = Counter()

    def created_at(self, table: Table, row: dict[str, Any]) -> dt.datetime:
        """When a row was created: over the school year so far, as in a real SIS.

        An attendance row is created on its own day; any other row at a moment fixed by its
        table and key (no draw from the generator's random stream, so the data stay the same).
        Spread stamps matter to incremental syncs: a table whose rows all share one instant
        sits at its cursor forever and is read again in full by every run.
        """
        latest = dt.datetime.combine(self.today, dt.time(0), dt.timezone.utc) - dt.timedelta(seconds=1)
        day = row.get("att_date")
        if day is not None:
            return min(dt.datetime.combine(day, dt.time(23), dt.timezone.utc), latest)
        span = max(1, int((latest - self.created).total_seconds()))
        key = next(iter(row.values()))  # each table's primary key is given first
        return self.created + dt.timedelta(seconds=zlib.crc32(f"{table.name}:{key}".encode()) % span)

    # --- organisation ---------------------------------------------------------------

    def write_organisation(self, population: list[tuple[int, int]]) -> None:
        self.w.add(s.district_orgs, org_id=1, org_name="Riverbend Unified School District", org_type="district",
                   parent_org_id=None, school_code="RUSD", created_at=self.created)
        for org_id, (name, code, _) in SCHOOLS.items():
            self.w.add(s.district_orgs, org_id=org_id, org_name=name, org_type="school", parent_org_id=1,
                       school_code=code, created_at=self.created)
            self._write_terms(org_id)
        counts = Counter(population)
        for (school, grade), count in sorted(counts.items()):
            self.section_counts[(school, grade)] = max(1, math.ceil(count / SECTION_SIZE))
            self._write_courses(school, grade)

    def _write_terms(self, school: int) -> None:
        c, year = self.calendar, self.calendar.year
        base = school * 100
        self.w.add(s.marking_periods, mp_id=base, title=f"{year.start_year}-{year.start_year + 1}", mp_type="YEAR",
                   start_date=c.first_class, end_date=c.last_class, parent_mp_id=None, school_id=school,
                   syear=year.start_year, created_at=self.created)
        for half in (0, 1):
            self.w.add(s.marking_periods, mp_id=base + 1 + half, title=f"Semester {half + 1}", mp_type="SEM",
                       start_date=c.quarters[2 * half][0], end_date=c.quarters[2 * half + 1][1], parent_mp_id=base,
                       school_id=school, syear=year.start_year, created_at=self.created)
        for number, (start, end) in enumerate(c.quarters):
            self.w.add(s.marking_periods, mp_id=base + 10 + number, title=f"Quarter {number + 1}", mp_type="QTR",
                       start_date=start, end_date=end, parent_mp_id=base + 1 + number // 2, school_id=school,
                       syear=year.start_year, created_at=self.created)

    def _write_courses(self, school: int, grade: int) -> None:
        kind = "elementary" if grade < 6 else "secondary"
        for number, subject in enumerate(SUBJECTS[kind]):
            course_id = self._course_id(school, grade, number)
            self.w.add(s.course_catalog, course_id=course_id, school_id=school, course_code=f"{subject[:3].upper()}{GRADES[grade]}",
                       course_title=f"{subject} {GRADES[grade]}", dept=subject, created_at=self.created)
            for section in range(self.section_counts[(school, grade)]):
                self._write_section(school, grade, number, section)

    def _write_section(self, school: int, grade: int, course: int, section: int) -> None:
        section_id = self._section_id(school, grade, course, section)
        staff_id = section_id  # one teacher per section keeps the demo simple
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        self.w.add(s.staff_members, staff_id=staff_id, first_name=first, last_name=last,
                   email=f"{first[0].lower()}{last.lower()}{staff_id}@riverbend.k12.example",
                   ssn=self._ssn(staff_id + 500000), password_hash=f"$2y$10$DEMOHASH{staff_id:08d}", created_at=self.created)
        self.w.add(s.class_sections, section_id=section_id, course_id=self._course_id(school, grade, course),
                   school_id=school, section_no=f"{section + 1:02d}", period=str(course + 1),
                   room=f"{school}{grade:02d}{course}", staff_id=staff_id, created_at=self.created)
        for mp in (school * 100 + 1, school * 100 + 2):
            self.w.add(s.section_mps, id=section_id * 10 + mp % 10, section_id=section_id, mp_id=mp, created_at=self.created)
        for number in range(self.assignments):
            self._write_assignment(school, section_id, number)

    def _write_assignment(self, school: int, section_id: int, number: int) -> None:
        due = self._due_date(number)
        quarter = next((i for i, (a, b) in enumerate(self.calendar.quarters) if a <= due <= b), 0)
        category = ("Homework", "Quiz", "Project", "Test")[number % 4]
        self.w.add(s.gb_assignments, asg_id=section_id * 100 + number, section_id=section_id,
                   mp_id=school * 100 + 10 + quarter, title=f"{category} {number + 1}", category=category,
                   assigned_on=due - dt.timedelta(days=7), due_on=due, max_points=float(10 * (1 + number % 4)),
                   created_at=self.created)

    def _due_date(self, number: int) -> dt.date:
        """Spread over the weeks before today (the last one still ahead)."""
        anchor = min(max(self.today, self.calendar.first_class + dt.timedelta(days=30)), self.calendar.last_class)
        return _previous_weekday(anchor - dt.timedelta(days=7 * (self.assignments - 1 - number) - 3))

    @staticmethod
    def _course_id(school: int, grade: int, course: int) -> int:
        return school * 10000 + grade * 100 + course * 10

    @staticmethod
    def _section_id(school: int, grade: int, course: int, section: int) -> int:
        """Readable ids (school, grade, course, section) that stay unique past 100 sections of
        one course, as a high school of a 100,000-student district has: each further hundred
        moves up by ten million, above every school's block."""
        return section // 100 * 10_000_000 + school * 100000 + grade * 1000 + course * 100 + section % 100

    @staticmethod
    def _ssn(number: int) -> str:
        return f"900-{number // 10000 % 100:02d}-{number % 10000:04d}"

    # --- people ----------------------------------------------------------------------

    def add_contact(self, last_name: str, first_name: str | None = None, email: bool = True) -> int:
        contact_id, self.next_contact = self.next_contact, self.next_contact + 1
        first = first_name or self.rng.choice(FIRST_NAMES)
        self.w.add(s.contacts, contact_id=contact_id, first_name=first, last_name=last_name,
                   email=f"{first.lower()}.{last_name.lower()}{contact_id}@example.net" if email else None,
                   cell_phone=f"555-{contact_id // 10000 % 1000:03d}-{contact_id % 10000:04d}",
                   lang=self.rng.choice(LANGUAGES), ssn=self._ssn(contact_id + 700000),
                   portal_password_hash=f"$2y$10$DEMOHASH{contact_id:08d}", created_at=self.created)
        self.summary.contacts += 1
        return contact_id

    def link(self, pupil: int, contact: int, relation: str = "parent", edu_rights: bool = True, custody: bool = True,
             resides: bool = True, valid_to: dt.date | None = None) -> None:
        self.w.add(s.pupil_contacts, link_id=self.next_link, pupil_id=pupil, contact_id=contact, relation=relation,
                   edu_rights=edu_rights, has_custody=custody, resides_with=resides, valid_from=None,
                   valid_to=valid_to, created_at=self.created)
        self.next_link += 1

    def add_student(self, grade: int, school: int, last_name: str, dob: dt.date | None,
                    enrolments: list[tuple[int, dt.date, dt.date | None, str | None]] | None = None) -> int:
        """A student, their enrolment history, and (when enrolled now) schedule, grades, attendance."""
        pupil, self.next_pupil = self.next_pupil, self.next_pupil + 1
        first = self.rng.choice(FIRST_NAMES)
        self.w.add(s.pupils, pupil_id=pupil, student_no=f"{100000 + pupil}", first_name=first,
                   middle_name=self.rng.choice(FIRST_NAMES) if pupil % 3 == 0 else None, last_name=last_name,
                   nickname=first[:3] if pupil % 11 == 0 else None, dob=dob, grade=GRADES[grade], school_id=school,
                   home_lang=self.rng.choice(LANGUAGES), ssn=self._ssn(pupil), password_hash=f"$2y$10$DEMOHASH{pupil:08d}",
                   medical_notes="MEDICAL-DEMO: asthma, inhaler in nurse office" if pupil % 10 == 0 else None,
                   discipline_notes="DISCIPLINE-DEMO: referral for a hallway incident" if pupil % 20 == 0 else None,
                   created_at=self.created)
        history = enrolments if enrolments is not None else self._usual_history(grade, school)
        for number, (at_school, entry, exit_date, code) in enumerate(history):
            self.w.add(s.enrollment_history, enroll_id=pupil * 10 + number, pupil_id=pupil, school_id=at_school,
                       grade=GRADES[grade], entry_date=entry, exit_date=exit_date, exit_code=code, created_at=self.created)
        current = [h for h in history if h[2] is None or h[2] >= self.today]
        if current and current[-1][1] <= max(self.today, self.calendar.first_class):
            self._schedule(pupil, grade, current[-1][0])
        self.summary.students += 1
        return pupil

    def _usual_history(self, grade: int, school: int) -> list[tuple[int, dt.date, dt.date | None, str | None]]:
        history: list[tuple[int, dt.date, dt.date | None, str | None]] = []
        if grade > 0:
            history.append((school_for(grade - 1, school), self.previous.first_class, self.previous.last_class, "EOY"))
        history.append((school, self.calendar.first_class, None, None))
        return history

    def birth_date_for(self, grade: int) -> dt.date:
        """Five years old by 1 September of kindergarten's year."""
        youngest = dt.date(self.calendar.year.start_year - grade - 5, 9, 1)
        return youngest - dt.timedelta(days=self.rng.randrange(365))

    # --- what an enrolled student has --------------------------------------------------

    def _schedule(self, pupil: int, grade: int, school: int) -> None:
        position = self.placed[(school, grade)]
        self.placed[(school, grade)] += 1
        section_index = min(position // SECTION_SIZE, self.section_counts.get((school, grade), 1) - 1)
        sections = [self._section_id(school, grade, course, section_index) for course in range(6)]
        for number, section_id in enumerate(sections):
            self.w.add(s.rosters, roster_id=pupil * 10 + number, section_id=section_id,
                       pupil_id=pupil, start_date=self.calendar.first_class, end_date=None, created_at=self.created)
            self._scores(pupil, section_id)
            self._report_card(pupil, section_id, school)
        self._attendance(pupil, school, grade, sections[0])

    def _scores(self, pupil: int, section_id: int) -> None:
        for number in range(self.assignments):
            due = self._due_date(number)
            if due >= self.today:
                continue
            possible = float(10 * (1 + number % 4))
            roll = self.rng.random()
            missing, late, excused = roll < 0.05, 0.05 <= roll < 0.10, 0.10 <= roll < 0.12
            points = None if missing or excused else round(possible * self.rng.uniform(0.55, 1.0), 1)
            self.w.add(s.gb_scores, score_id=(pupil * 1000 + section_id % 1000) * 10 + number, asg_id=section_id * 100 + number,
                       pupil_id=pupil, points=points, letter=None, flag_missing=missing, flag_late=late,
                       flag_excused=excused, scored_on=due + dt.timedelta(days=2),
                       teacher_comment="COMMENT-DEMO: see me" if roll > 0.97 else None, created_at=self.created)

    def _report_card(self, pupil: int, section_id: int, school: int) -> None:
        for number, (_, end) in enumerate(self.calendar.quarters):
            if end >= self.today:
                break
            percent = round(self.rng.uniform(62, 99), 1)
            self.w.add(s.report_card, rc_id=(pupil * 1000 + section_id % 1000) * 10 + number, pupil_id=pupil,
                       section_id=section_id, mp_id=school * 100 + 10 + number, letter_grade=letter_for(percent),
                       pct=percent, counselor_note="COUNSEL-DEMO: family meeting held" if pupil % 25 == 0 else None,
                       created_at=self.created)

    def _attendance(self, pupil: int, school: int, grade: int, first_section: int) -> None:
        for number, day in enumerate(self.school_days):
            roll = self.rng.random()
            code = "A" if roll < 0.05 else "T" if roll < 0.08 else "E" if roll < 0.10 else "P"
            att_id = pupil * 1000 + number
            self.w.add(s.attendance_daily, att_id=att_id, pupil_id=pupil, school_id=school, att_date=day, code=code,
                       minutes_absent={"A": 390, "E": 390, "T": 12}.get(code, 0), created_at=self.created)
            if grade >= 6 and code != "P":
                self.w.add(s.attendance_period, att_id=att_id, pupil_id=pupil, section_id=first_section, att_date=day,
                           period="1", code=code, created_at=self.created)

    @property
    def school_days(self) -> list[dt.date]:
        if not hasattr(self, "_school_days"):
            days: list[dt.date] = []
            day = min(self.today, self.calendar.last_class)
            while day >= self.calendar.first_class and len(days) < self.attendance_days:
                if day.weekday() < 5:
                    days.append(day)
                day -= dt.timedelta(days=1)
            self._school_days = sorted(days)
        return self._school_days


def school_for(grade: int, elementary: int = 2) -> int:
    if grade < 6:
        return elementary if elementary in (2, 5) else 2
    return 3 if grade < 9 else 4


def letter_for(percent: float) -> str:
    for floor, letter in ((90, "A"), (80, "B"), (70, "C"), (60, "D")):
        if percent >= floor:
            return letter
    return "F"


# --- the cases of POLICY-CASES.md ----------------------------------------------------------

CASE_STUDENTS = 13  # how many students write_cases adds
CASE_GRADES = {  # case: (grade, school) while scheduled, for sizing sections
    "turned_18_during_year": (12, 4), "termination_request": (12, 4), "turned_18_before_year": (12, 4),
    "birth_date_unknown": (10, 4), "siblings": (3, 2), "siblings_older": (7, 3), "split_household": (5, 2),
    "no_portal_access": (8, 3), "link_not_in_force": (6, 3), "transfer": (4, 2),
}


def write_cases(d: DemoDistrict) -> None:
    """One student (and guardians) per case; the portal side (activations, requests) is the demo's."""
    year, today = d.calendar.year, d.today
    during = _not_feb_29(year.first_day + (today - year.first_day) // 2)
    dob_during = during.replace(year=during.year - 18)

    def case(name: str, pupil: int, contact: int | None, note: str) -> None:
        d.summary.cases[name] = {"pupil_id": pupil, "contact_id": contact, "note": note}
        d.w.add(s.demo_cases, case_name=name, pupil_id=pupil, contact_id=contact, note=note)

    def family(grade: int, school: int, dob: dt.date | None, name: str, note: str, **history: Any) -> tuple[int, int]:
        last = d.rng.choice(LAST_NAMES)
        pupil = d.add_student(grade, school, last, dob, **history)
        parent = d.add_contact(last)
        d.link(pupil, parent)
        case(name, pupil, parent, note)
        return pupil, parent

    pupil, _ = family(12, 4, dob_during, "turned_18_during_year", f"turned 18 on {during}; parent activated before")
    second = d.add_contact(d.rng.choice(LAST_NAMES))
    d.link(pupil, second)
    case("activated_after_18", pupil, second, f"turned 18 on {during}; this parent activates after")
    family(12, 4, dob_during, "termination_request", f"turned 18 on {during}; files a written request")
    before = year.first_day - dt.timedelta(days=45)
    family(12, 4, _not_feb_29(before).replace(year=before.year - 18), "turned_18_before_year", f"turned 18 on {before}")
    family(10, 4, None, "birth_date_unknown", "the SIS has no birth date")
    _siblings(d, case)
    _split_household(d, case)
    pupil, _ = family(8, 3, d.birth_date_for(8), "no_portal_access_parent", "mother with educational rights")
    grandparent = d.add_contact(d.rng.choice(LAST_NAMES), "Grandma")
    d.link(pupil, grandparent, relation="grandparent", edu_rights=False, resides=False)
    case("no_portal_access", pupil, grandparent, "grandparent without educational rights")
    pupil, _ = family(6, 3, d.birth_date_for(6), "link_not_in_force", "link ended 30 days ago")
    _end_last_link(d, today - dt.timedelta(days=30))
    _exits(d, family)


def _siblings(d: DemoDistrict, case: Any) -> None:
    last = d.rng.choice(LAST_NAMES)
    parent = d.add_contact(last)
    younger = d.add_student(3, 2, last, d.birth_date_for(3))
    older = d.add_student(7, 3, last, d.birth_date_for(7))
    for pupil in (younger, older):
        d.link(pupil, parent)
    case("siblings", younger, parent, "one parent, two children at two schools")
    case("siblings_older", older, parent, "the older sibling")


def _split_household(d: DemoDistrict, case: Any) -> None:
    mother_name, father_name = d.rng.sample(LAST_NAMES, 2)
    pupil = d.add_student(5, 2, father_name, d.birth_date_for(5))
    mother, father = d.add_contact(mother_name), d.add_contact(father_name)
    d.link(pupil, mother, relation="mother", custody=True, resides=True)
    d.link(pupil, father, relation="father", custody=True, resides=False)
    case("split_household", pupil, mother, "mother: lives with the student")
    case("split_household_father", pupil, father, "father: separate household, shared custody")


def _end_last_link(d: DemoDistrict, valid_to: dt.date) -> None:
    rows = d.w.buffers[s.pupil_contacts]
    rows[-1]["valid_to"] = valid_to


def _exits(d: DemoDistrict, family: Any) -> None:
    c, p, today = d.calendar, d.previous, d.today
    left = max(today - dt.timedelta(days=20), c.first_class + dt.timedelta(days=1))
    family(9, 4, d.birth_date_for(9), "withdrawn", f"withdrew on {left}",
           enrolments=[(4, c.first_class, left, "WD")] if today > c.first_class else [(4, p.first_class, p.first_class + dt.timedelta(days=60), "WD")])
    summer_exit = p.last_class
    family(5, 2, d.birth_date_for(5), "summer_exit", f"left at the end of last year ({summer_exit}); no new enrolment",
           enrolments=[(2, p.first_class, summer_exit, "EOY")])
    family(12, 4, d.birth_date_for(13), "graduated", f"graduated on {p.last_class}",
           enrolments=[(4, p.first_class, p.last_class, "GR")])
    moved = max(today - dt.timedelta(days=40), c.first_class + dt.timedelta(days=1))
    family(4, 2, d.birth_date_for(4), "transfer", f"moved from Lakeside to Riverbend Elementary on {moved}",
           enrolments=[(5, c.first_class, moved, "TR"), (2, moved + dt.timedelta(days=1), None, None)])


def _not_feb_29(day: dt.date) -> dt.date:
    return day + dt.timedelta(days=1) if (day.month, day.day) == (2, 29) else day


# --- the rest of the district ----------------------------------------------------------------

def population(rng: random.Random, count: int) -> list[tuple[int, int]]:
    """(school, grade) of each ordinary student, decided before anything is written."""
    placed = []
    for _ in range(count):
        grade = rng.randrange(13)
        placed.append((school_for(grade, rng.choice((2, 2, 5))), grade))
    return placed


def write_families(d: DemoDistrict, placed: list[tuple[int, int]]) -> None:
    index = 0
    while index < len(placed):
        size = min(d.rng.choice((1, 1, 1, 2, 2, 3)), len(placed) - index)
        last = d.rng.choice(LAST_NAMES)
        parents = [d.add_contact(last, email=d.rng.random() > 0.08) for _ in range(d.rng.choice((1, 2, 2)))]
        for school, grade in placed[index:index + size]:
            pupil = d.add_student(grade, school, last, d.birth_date_for(grade))
            for number, parent in enumerate(parents):
                d.link(pupil, parent, relation=("mother", "father")[number], resides=number == 0 or d.rng.random() > 0.1)
        index += size


def generate(engine: Engine, students: int, seed: int, today: dt.date, attendance_days: int = 20,
             assignments: int = 5) -> DemoSummary:
    """Create the demo SIS's tables in an empty database and fill them."""
    s.metadata.create_all(engine)
    with engine.begin() as connection:
        writer = _Writer(connection)
        district = DemoDistrict(writer, seed, today, attendance_days, assignments)
        ordinary = population(district.rng, max(0, students - CASE_STUDENTS))
        district.write_organisation(ordinary + [(school, grade) for grade, school in CASE_GRADES.values()])
        write_cases(district)
        write_families(district, ordinary)
        writer.flush()
    district.summary.rows = writer.counts
    return district.summary


def iter_tables() -> Iterator[Table]:
    return iter(s.metadata.sorted_tables)


# --- changes, as a district's staff make them (for incremental runs and benchmarks) ----------

MUTABLE = {  # table: (key, column, how to change a value)
    s.pupils: ("pupil_id", "nickname", lambda value, n: f"Nick{n}"),
    s.contacts: ("contact_id", "cell_phone", lambda value, n: f"555-9{n % 100:02d}-{n % 10000:04d}"),
    s.gb_scores: ("score_id", "points", lambda value, n: float(n % 10)),
    s.attendance_daily: ("att_id", "code", lambda value, n: "T" if value != "T" else "P"),
}


def mutate(engine: Engine, share: float, seed: int, at: dt.datetime) -> dict[str, list[int]]:
    """Change ``share`` of the rows of a few tables, stamping ``updated_at``; return the keys changed."""
    from sqlalchemy import bindparam, select

    rng = random.Random(seed)
    changed: dict[str, list[int]] = {}
    with engine.begin() as connection:
        for table, (key, column, change) in MUTABLE.items():
            rows = connection.execute(select(table.c[key], table.c[column])).all()
            picked = rng.sample(rows, max(1, round(len(rows) * share))) if rows else []
            if picked:
                connection.execute(
                    table.update().where(table.c[key] == bindparam("k")).values({column: bindparam("v"), "updated_at": at}),
                    [{"k": row[0], "v": change(row[1], row[0])} for row in picked])
            changed[table.name] = sorted(row[0] for row in picked)
    return changed

"""RosarioSIS 12 on PostgreSQL: the shipped mapping, sanitization, and a source that cannot be written."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from gateway.db import create_source_engine
from gateway.errors import ReadOnlyViolation
from gateway.replica.records import Record
from gateway.settings import ConnectorSettings, Settings

from connectors.mapping import load_mapping
from connectors.sql import SourceError, SqlConnector

PLANTED_SSNS = ("900-11-2222", "900-33-4444", "900-55-6666")
PLANTED_MEDICAL = "MEDICAL-ROSARIO: peanut allergy, epinephrine in office"


CHECKSUM = """
SELECT (SELECT count(*) FROM students), (SELECT count(*) FROM student_mp_stats),
       (SELECT md5(string_agg(concat_ws('|', student_id, marking_period_id, cum_rank, class_size), ',' ORDER BY student_id))
          FROM student_mp_stats),
       (SELECT md5(string_agg(concat_ws('|', student_id, first_name, last_name), ',' ORDER BY student_id)) FROM students)
"""


pytestmark = pytest.mark.interop


def connect(url: str, mapping: str = "rosariosis") -> SqlConnector:
    # The test server's login is a superuser: these tests are about reading, and about
    # what stops a write when the login could (tests/connectors/test_sql_hostile.py).
    return SqlConnector("rosario", "rosario", create_source_engine(url), load_mapping(mapping),
                        allow_writable_login=True)


def everything(connector: SqlConnector) -> dict[str, list[Record]]:
    return {spec.name: [i for i in connector.iter_records(spec.name, None) if isinstance(i, Record)]
            for spec in connector.streams}


def checksum(url: str) -> tuple[object, ...]:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as connection:
        return tuple(connection.execute(CHECKSUM).fetchone() or ())  # type: ignore[arg-type]


def test_the_seed_parent_comes_out_linked_to_student_1(rosario: str) -> None:
    records = everything(connect(rosario))
    links = {(l.student_source_id, l.guardian_source_id): l for l in records["student_guardians"]}  # noqa: E741
    seed = links[("1", "staff:3")]
    assert (seed.portal_access, seed.relationship) == (True, "parent")
    # People: legal custody grants portal access, an emergency contact alone does not.
    assert {(l.guardian_source_id, l.relationship, l.portal_access) for l in records["student_guardians"] if l.student_source_id == "2"} == {
        ("person:10", "Mother", True), ("person:11", "Uncle", False)}
    guardians = {g.source_id: g for g in records["guardians"]}
    assert (guardians["person:10"].email, guardians["person:10"].phone) == ("ana.lopez@example.net", "555-0110")
    assert guardians["staff:3"].given_name == "Parent"


def test_the_population_maps_through_every_stream(rosario: str) -> None:
    records = everything(connect(rosario))
    students = {s.source_id: s for s in records["students"]}
    assert students["1"].birth_date == dt.date(2015, 12, 4) and students["1"].preferred_name == "Bug"
    assert students["3"].birth_date == dt.date(2008, 9, 15)
    enrolments = {e.student_source_id: e for e in records["enrollments"]}
    assert (enrolments["3"].exit_date, enrolments["3"].exit_kind) == (dt.date(2024, 11, 1), "withdrawal")
    assert enrolments["2"].exit_kind is None
    (section,) = records["sections"]
    assert (section.teacher_name, section.period, section.room) == ("Teach Teacher", "Full Day", "204")
    assert {a.source_id for a in records["assignments"]} == {"1:1", "2:1"}
    scores = {s.source_id: s for s in records["scores"]}
    assert (scores["2:1:1"].points, scores["2:1:1"].excused) == (None, True)
    assert scores["1:1:1"].points == 18.0 and scores["2:2:1"].assignment_source_id == "2:1"
    assert [(g.mark, g.percent) for g in records["term_grades"]] == [("B+", 88.5)]
    statuses = {a.source_id: a.status for a in records["attendance"]}
    assert statuses == {"day:2:2024-09-20": "absent", "day:1:2024-09-20": "present", "period:2:2024-09-20:1": "absent"}


def test_no_record_holds_a_password_hash_an_ssn_or_a_medical_value(rosario: str) -> None:
    connector = connect(rosario)
    text = repr(everything(connector))
    for planted in (*PLANTED_SSNS, PLANTED_MEDICAL, "$6$", "COUNSEL-ROSARIO"):
        assert planted not in text, planted
    unmapped = connector.unmapped_fields()
    assert {"students.password", "students.custom_200000003"} <= set(unmapped["students"])
    assert "900-" not in repr(unmapped)


def test_the_sync_engine_loads_rosariosis_into_the_replica(rosario: str, instance: Settings) -> None:
    from connectors import registry
    from sync.engine import run_sync

    entry = ConnectorSettings("rosario", "sql", "rosario", {"url": rosario, "mapping": "rosariosis"},
                              allow_writable_login=True)
    settings = dataclasses.replace(instance, connectors=(entry,))
    result = run_sync(settings, registry.build(entry, settings), "full")
    assert result.status == "succeeded"
    assert (result.counts["students"].inserted, result.counts["student_guardians"].inserted) == (3, 3)


WRITING_MAPPINGS = {
    "update": "UPDATE students SET first_name = 'x'",
    "cte": "WITH d AS (DELETE FROM student_mp_stats RETURNING student_id) SELECT CAST(student_id AS TEXT) AS source_id, "
           "'x' AS given_name, 'y' AS family_name FROM d",
    "function": "SELECT CAST(set_class_rank_mp(1) AS TEXT) AS source_id, 'x' AS given_name, 'y' AS family_name",
}


def test_the_planted_function_really_writes_when_allowed(rosario: str) -> None:
    """Proof that the read-only test below is meaningful: in a writable transaction it changes rows."""
    dsn = make_url(rosario).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as connection:
        connection.execute("SELECT set_class_rank_mp(1)")
        ranks = connection.execute("SELECT student_id, cum_rank FROM student_mp_stats ORDER BY student_id").fetchall()
        connection.rollback()
    assert ranks == [(1, 2), (2, 1)]


@pytest.mark.parametrize("kind", sorted(WRITING_MAPPINGS))
def test_the_source_cannot_be_written_through_the_connector(rosario: str, tmp_path: Path, kind: str) -> None:
    before = checksum(rosario)
    mapping = tmp_path / "evil.toml"
    mapping.write_text(f'[streams.students]\ntable = "students"\nquery = """{WRITING_MAPPINGS[kind]}"""\n')
    with pytest.raises((ReadOnlyViolation, SourceError)) as caught:
        connector = connect(rosario, str(mapping))
        list(connector.iter_records("students", None))
    # The parser refuses all three, the function too: it is not known to read only.
    assert isinstance(caught.value, ReadOnlyViolation)
    if kind == "function":
        assert "set_class_rank_mp() is not known to read only" in str(caught.value)
    assert checksum(rosario) == before


def execute(url: str, sql: str) -> None:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(sql)  # type: ignore[arg-type]


def test_a_half_day_is_present_with_its_code_not_absent_all_day(rosario: str) -> None:
    execute(rosario, "INSERT INTO attendance_day (student_id, school_date, minutes_present, state_value, syear) "
                     "VALUES (1, '2024-09-23', 150, 0.5, 2024)")
    (half,) = [a for a in everything(connect(rosario))["attendance"] if a.source_id == "day:1:2024-09-23"]
    assert (half.status, half.code, half.minutes) == ("present", "half_day", 150)


def test_contact_phones_titled_mobile_cell_or_home_are_read(rosario: str) -> None:
    execute(rosario, """
        INSERT INTO people (person_id, last_name, first_name) VALUES (20, 'Ng', 'Mo'), (21, 'Ng', 'Cel'), (22, 'Ng', 'Ho');
        INSERT INTO people_join_contacts (person_id, title, value) VALUES
            (20, 'Mobile', '555-0120'), (21, 'Cell', '555-0121'), (22, 'Home', '555-0122'), (22, 'Home Email', 'ho@example.net'),
            (10, 'Mobile', '555-0199');""")
    guardians = {g.source_id: g for g in everything(connect(rosario))["guardians"]}
    assert [guardians[f"person:{n}"].phone for n in (20, 21, 22)] == ["555-0120", "555-0121", "555-0122"]
    assert guardians["person:22"].email == "ho@example.net"
    assert guardians["person:10"].phone == "555-0199"  # a mobile number comes before a home phone


# Two more parent accounts in 2024: Rosa (staff 4) for student 2, Olu (staff 5) for student 3.
SECOND_PARENTS = """
INSERT INTO staff (syear, current_school_id, first_name, last_name, username, email, profile, profile_id)
VALUES (2024, 1, 'Rosa', 'Lopez', 'rlopez', 'rosa@example.net', 'parent', 3),
       (2024, 1, 'Olu', 'Okafor', 'ookafor', 'olu@example.net', 'parent', 3);
INSERT INTO students_join_users (student_id, staff_id) VALUES (2, 4), (3, 5);
"""

# The rollover to 2025 as RosarioSIS's School_Setup/Rollover.php does it: schools, marking
# periods and enrolments copied with syear + 1; every staff row copied with a new staff_id
# and rollover_id = the old one; students_join_users copied for the new staff ids.
ROLLOVER = """
INSERT INTO schools (syear, id, title, address, city, state, zipcode, principal, www_address, number_days_rotation)
SELECT syear + 1, id, title, address, city, state, zipcode, principal, www_address, number_days_rotation FROM schools WHERE syear = 2024;
INSERT INTO school_marking_periods (syear, mp, school_id, title, short_name, sort_order, start_date, end_date, rollover_id)
SELECT 2025, mp, school_id, title, short_name, sort_order, start_date + 364, end_date + 364, marking_period_id
FROM school_marking_periods WHERE syear = 2024 AND mp = 'FY';
INSERT INTO staff (syear, current_school_id, title, first_name, last_name, middle_name, username, password, email,
                   custom_200000001, profile, schools, profile_id, rollover_id)
SELECT syear + 1, current_school_id, title, first_name, last_name, middle_name, username, password, email,
       custom_200000001, profile, schools, profile_id, staff_id FROM staff WHERE syear = 2024;
INSERT INTO students_join_users (student_id, staff_id)
SELECT j.student_id, s.staff_id FROM staff s JOIN students_join_users j ON j.staff_id = s.rollover_id WHERE s.syear = 2025;
INSERT INTO student_enrollment (syear, school_id, student_id, grade_id, start_date)
SELECT 2025, school_id, student_id, grade_id, '2025-06-13' FROM student_enrollment WHERE syear = 2024 AND end_date IS NULL;
"""


def test_after_a_rollover_a_link_removed_in_the_new_year_ends_access_and_kept_links_keep_their_guardian(
        rosario: str, instance: Settings) -> None:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from connectors import registry
    from gateway.db import create_rw_engine
    from gateway.portal import access, facts
    from gateway.portal.models import User, UserStudent
    from gateway.replica.tables import Guardian, StudentGuardian
    from gateway.security.crypto import FieldCipher
    from gateway.security.keys import load_keys
    from sync.engine import run_sync

    execute(rosario, SECOND_PARENTS)
    entry = ConnectorSettings("rosario", "sql", "rosario", {"url": rosario, "mapping": "rosariosis"},
                              allow_writable_login=True)  # the test server's superuser
    settings = dataclasses.replace(instance, connectors=(entry,))

    def sync(mode: str) -> None:
        connector = registry.build(entry, settings)
        try:
            assert run_sync(settings, connector, mode).status == "succeeded"
        finally:
            connector.close()

    sync("full")
    execute(rosario, ROLLOVER)
    # In the new year, Rosa's access to student 2 is removed (Users > Associated Students).
    execute(rosario, "DELETE FROM students_join_users j USING staff s "
                     "WHERE s.staff_id = j.staff_id AND s.syear = 2025 AND s.username = 'rlopez'")
    sync("incremental")

    replica, portal = create_rw_engine(settings.replica.url), create_rw_engine(settings.portal.url)
    keys = load_keys(settings)
    verdicts = {}
    with Session(portal) as p, Session(replica) as r:
        for username, guardian, student in (("parent", "staff:3", "1"), ("rlopez", "staff:4", "2")):
            user = User(username=username, username_key=username, role="parent", display_name=username, password_hash="x",
                        source_system="rosario", guardian_source_id=guardian)
            p.add(user)
            p.flush()
            p.add(UserStudent(user_id=user.id, source_system="rosario", student_source_id=student,
                              activated_at=dt.datetime(2024, 9, 1, tzinfo=dt.timezone.utc)))
            p.flush()
            ref = facts.StudentRef("rosario", student)
            gathered = facts.parent_facts(r, p, settings, FieldCipher(keys.field), keys.blind_index, user, ref,
                                          facts.student_row(r, ref))
            verdicts[username] = access.parent_access(gathered, dt.date(2025, 9, 15), facts.policy_of(settings))
    assert verdicts["parent"].allowed  # the same account still matches its guardian after the rollover
    assert (verdicts["rlopez"].allowed, verdicts["rlopez"].code) == (False, access.NO_PORTAL_ACCESS)
    with Session(replica) as r:
        links = set(r.execute(select(StudentGuardian.student_source_id, StudentGuardian.guardian_source_id)).all())
        staff_guardians = sorted(r.scalars(select(Guardian.source_id).where(Guardian.source_id.like("staff:%"))))
    replica.dispose()
    portal.dispose()
    # One guardian id per person across years: their first year's staff_id (3, 4, 5), never the 2025 copies.
    assert staff_guardians == ["staff:3", "staff:4", "staff:5"]
    assert {("1", "staff:3"), ("3", "staff:5")} <= links and ("2", "staff:4") not in links
    assert not any(guardian.startswith("staff:") and guardian not in staff_guardians for _, guardian in links)


def test_a_mapping_selecting_a_column_named_comment_syncs(rosario: str, instance: Settings, tmp_path: Path) -> None:
    from connectors import registry
    from sync.engine import run_sync

    execute(rosario, "UPDATE attendance_day SET comment = 'doctor' WHERE student_id = 2")
    shipped = load_mapping("rosariosis")
    students = next(s for s in shipped.streams if s.spec.name == "students").query
    mapping = tmp_path / "with-comment.toml"
    mapping.write_text(
        f'[streams.students]\ntable = "students"\ntables = ["students"]\nquery = """{students}"""\n\n'
        '[streams.attendance]\ntable = "attendance"\ntables = ["attendance_day"]\nquery = """\n'
        "SELECT 'day:' || CAST(d.student_id AS VARCHAR(20)) AS source_id, CAST(d.student_id AS VARCHAR(20)) AS student_source_id,\n"
        "       d.school_date AS date, 'absent' AS status, CASE WHEN d.comment IS NULL THEN NULL ELSE 'noted' END AS code\n"
        'FROM attendance_day d WHERE d.comment IS NOT NULL OR d.state_value = 1\n"""\n')
    entry = ConnectorSettings("rosario", "sql", "rosario", {"url": rosario, "mapping": str(mapping)},
                              allow_writable_login=True)  # the test server's superuser
    settings = dataclasses.replace(instance, connectors=(entry,))
    connector = registry.build(entry, settings)
    try:
        result = run_sync(settings, connector, "full")
    finally:
        connector.close()
    assert (result.status, result.counts["attendance"].inserted) == ("succeeded", 2)
    codes = {a.source_id: a.code for a in connect(rosario, str(mapping)).iter_records("attendance", None) if isinstance(a, Record)}
    assert codes == {"day:2": "noted", "day:1": None}

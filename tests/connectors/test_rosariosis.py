"""RosarioSIS 12 on PostgreSQL: the shipped mapping, sanitization, and a source that cannot be written."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from gateway.db import create_ro_engine
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
    return SqlConnector("rosario", "rosario", create_ro_engine(url), load_mapping(mapping))


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

    entry = ConnectorSettings("rosario", "sql", "rosario", {"url": rosario, "mapping": "rosariosis"})
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
    if kind == "function":  # a SELECT: only the read-only transaction can stop it
        assert isinstance(caught.value, SourceError) and "read-only transaction" in str(caught.value)
        assert not caught.value.retriable
    else:
        assert isinstance(caught.value, ReadOnlyViolation)
    assert checksum(rosario) == before

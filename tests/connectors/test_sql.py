"""The sql connector: the demo mapping, sanitization by allowlist, read-only sources, rejects."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from gateway.db import create_source_engine
from gateway.demo.sis import SENSITIVE_MARKERS, DemoSummary
from gateway.errors import ConfigError, ReadOnlyViolation
from gateway.replica.records import Record, Reject
from gateway.settings import ConnectorSettings, Settings

from connectors.mapping import load_mapping
from connectors.sql import SourceError, SqlConnector, from_settings

UTC = dt.timezone.utc


def connect(url: str, mapping: str = "demo", allow_writable_login: bool = False) -> SqlConnector:
    return SqlConnector("sis", "sis", create_source_engine(url), load_mapping(mapping),
                        allow_writable_login=allow_writable_login)


def records(connector: SqlConnector, stream: str, since: dt.datetime | None = None) -> list[Record]:
    return [item for item in connector.iter_records(stream, since) if isinstance(item, Record)]


def by_id(items: list[Record]) -> dict[str, Record]:
    return {item.source_id: item for item in items}


def test_the_demo_cases_come_out_as_the_policy_needs_them(demo_sis: tuple[str, DemoSummary]) -> None:
    url, summary = demo_sis
    connector = connect(url)
    students = by_id(records(connector, "students"))
    assert len(students) == 60
    cases = summary.cases
    assert students[str(cases["turned_18_during_year"]["pupil_id"])].birth_date == dt.date(2008, 9, 14)
    assert students[str(cases["birth_date_unknown"]["pupil_id"])].birth_date is None
    links = records(connector, "student_guardians")
    grandparent = [link for link in links if link.guardian_source_id == str(cases["no_portal_access"]["contact_id"])]
    assert [(link.relationship, link.portal_access) for link in grandparent] == [("grandparent", False)]
    father = [link for link in links if link.guardian_source_id == str(cases["split_household_father"]["contact_id"])]
    assert [(link.custody, link.lives_with) for link in father] == [(True, False)]
    ended = [link for link in links if link.guardian_source_id == str(cases["link_not_in_force"]["contact_id"])]
    assert [link.end_date for link in ended] == [dt.date(2026, 10, 29)]
    enrolments = [e for e in records(connector, "enrollments") if e.student_source_id == str(cases["withdrawn"]["pupil_id"])]
    assert [(e.exit_kind, e.exit_date) for e in enrolments] == [("withdrawal", dt.date(2026, 11, 8))]


def test_no_planted_sensitive_value_reaches_a_record(demo_sis: tuple[str, DemoSummary]) -> None:
    connector = connect(demo_sis[0])
    for spec in connector.streams:
        for item in records(connector, spec.name):
            text = repr(item.values())
            assert not any(marker in text for marker in SENSITIVE_MARKERS), (spec.name, item.source_id)


def test_sensitive_source_columns_are_reported_by_name_only(demo_sis: tuple[str, DemoSummary]) -> None:
    connector = connect(demo_sis[0])
    for stream in ("students", "guardians", "term_grades"):
        list(connector.iter_records(stream, None))
    unmapped = connector.unmapped_fields()
    assert unmapped["students"]["pupils.ssn"] == 60
    assert {"pupils.password_hash", "pupils.medical_notes", "pupils.discipline_notes"} <= set(unmapped["students"])
    assert "contacts.ssn" in unmapped["guardians"] and "report_card.counselor_note" in unmapped["term_grades"]
    assert "pupils.first_name" not in unmapped["students"]


def test_a_closed_lower_bound_reads_rows_modified_at_the_cursor_again(demo_sis: tuple[str, DemoSummary]) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(demo_sis[0])
    with engine.connect() as connection:  # the newest creation stamp, read from the source itself
        stamps = [row[0] for row in connection.execute(text("SELECT created_at FROM pupils ORDER BY created_at DESC"))]
    engine.dispose()
    newest = dt.datetime.fromisoformat(str(stamps[0])).replace(tzinfo=UTC)
    connector = connect(demo_sis[0])
    assert len(records(connector, "students", since=newest)) == stamps.count(stamps[0]) >= 1
    assert records(connector, "students", since=newest + dt.timedelta(microseconds=1)) == []
    assert len(records(connector, "students", since=None)) == 60


def write_mapping(tmp_path: Path, query: str, table: str = "students", tables: str = '["pupils"]') -> str:
    path = tmp_path / "mapping.toml"
    path.write_text(f'[streams.{table}]\ntable = "{table}"\ntables = {tables}\nquery = """{query}"""\n')
    return str(path)


def test_a_mapping_selecting_a_non_canonical_column_is_refused_before_reading(
    demo_sis: tuple[str, DemoSummary], tmp_path: Path
) -> None:
    mapping = write_mapping(tmp_path, "SELECT CAST(pupil_id AS TEXT) AS source_id, first_name AS given_name, "
                                      "last_name AS family_name, ssn FROM pupils")
    with pytest.raises(ConfigError) as caught:
        connect(demo_sis[0], mapping)
    assert "selects ssn" in str(caught.value)


@pytest.mark.parametrize("query", [
    "UPDATE pupils SET first_name = 'x'",
    "WITH d AS (DELETE FROM pupils RETURNING pupil_id) SELECT CAST(pupil_id AS TEXT) AS source_id FROM d",
])
def test_a_mapping_that_writes_is_refused_and_the_source_is_unchanged(
    demo_sis: tuple[str, DemoSummary], tmp_path: Path, query: str
) -> None:
    path = demo_sis[0].removeprefix("sqlite:///")
    before = sqlite3.connect(path).execute("SELECT count(*), sum(length(first_name)) FROM pupils").fetchone()
    with pytest.raises(ReadOnlyViolation):
        connect(demo_sis[0], write_mapping(tmp_path, query))
    assert sqlite3.connect(path).execute("SELECT count(*), sum(length(first_name)) FROM pupils").fetchone() == before


def test_a_row_with_an_unreadable_value_is_a_reject_and_the_rest_still_load(tmp_path: Path) -> None:
    source = tmp_path / "source.sqlite3"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE kids (id INTEGER, first TEXT, last TEXT, born TEXT)")
        db.executemany("INSERT INTO kids VALUES (?, ?, ?, ?)",
                       [(1, "Ana", "Lopez", "2012-03-01"), (2, "Ben", "Kim", "03/31/2012"), (3, "Cy", None, "2012-01-01")])
    mapping = write_mapping(tmp_path, "SELECT CAST(id AS TEXT) AS source_id, first AS given_name, last AS family_name, "
                                      "born AS birth_date FROM kids", tables='["kids"]')
    items = list(connect(f"sqlite:///{source}", mapping).iter_records("students", None))
    assert [type(item).__name__ for item in items] == ["StudentRecord", "Reject", "Reject"]
    first, bad_date, no_name = items
    assert isinstance(bad_date, Reject) and isinstance(no_name, Reject)
    assert bad_date.source_position == "students row 2 (source id 2)" and "'03/31/2012' is not a date" in bad_date.reason
    assert "required" in no_name.reason and bad_date.payload_hash and "Kim" not in repr(bad_date)


def test_a_password_in_the_connector_url_is_refused(instance: Settings) -> None:
    entry = ConnectorSettings("sis", "sql", "sis", {"url": "postgresql+psycopg://reader:hunter2@db/sis", "mapping": "demo"})
    with pytest.raises(ConfigError) as caught:
        from_settings(entry, instance)
    assert "GATEWAY_SECRET_SOURCE_SIS" in str(caught.value) and "hunter2" not in str(caught.value)


def test_a_source_that_disappears_mid_run_raises_a_retriable_source_error(tmp_path: Path, demo_sis: tuple[str, DemoSummary]) -> None:
    copy = tmp_path / "copy.sqlite3"
    copy.write_bytes(Path(demo_sis[0].removeprefix("sqlite:///")).read_bytes())
    connector = connect(f"sqlite:///{copy}")
    with sqlite3.connect(copy) as db:
        db.execute("DROP TABLE pupils")
    with pytest.raises(SourceError) as caught:
        list(connector.iter_records("students", None))
    assert caught.value.retriable and "students" in str(caught.value)


def test_unknown_stream_keys_and_tables_in_a_mapping_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[streams.kids]\ntable = "kids"\nquery = "SELECT 1"\n')
    with pytest.raises(ConfigError, match="not a canonical table"):
        load_mapping(str(path))
    path.write_text('[streams.kids]\ntable = "students"\nquery = "SELECT 1"\ncursr = "x"\n')
    with pytest.raises(ConfigError, match="cursr"):
        load_mapping(str(path))


def test_the_demo_sis_is_generated_on_postgresql_by_the_cli_and_reads_back(pg_admin: object, cli: object) -> None:
    import json
    import uuid

    from gateway.cli import main

    name = f"gw_demo_sis_{uuid.uuid4().hex[:8]}"
    url = pg_admin.create(name)  # type: ignore[attr-defined]
    try:
        result = cli.invoke(main, ["demo-sis", "generate", "--out", url, "--students", "30", "--seed", "2",  # type: ignore[attr-defined]
                                   "--today", "2026-11-28", "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["students"] == 30 and "turned_18_during_year" in report["cases"]
        connector = connect(url, allow_writable_login=True)  # the test server's superuser
        assert len(records(connector, "students")) == 30
        assert len(records(connector, "attendance")) == report["rows"]["attendance_daily"] + report["rows"]["attendance_period"]
        connector.close()
    finally:
        pg_admin.drop(name)  # type: ignore[attr-defined]


SQLITE_HOSTILE = {
    "two statements": "SELECT CAST(pupil_id AS TEXT) AS source_id FROM pupils; DELETE FROM pupils",
    "breakout": "SELECT CAST(pupil_id AS TEXT) AS source_id FROM pupils) src; DELETE FROM pupils; --",
    "quote breakout": "SELECT CAST(pupil_id AS TEXT) AS source_id FROM pupils WHERE first_name <> 'it''s') src; DELETE FROM pupils; --'",
    "data-modifying CTE": "WITH d AS (DELETE FROM pupils RETURNING pupil_id) SELECT CAST(pupil_id AS TEXT) AS source_id FROM d",
    "replace into": "REPLACE INTO pupils (pupil_id) VALUES (1)",
    "attach": "ATTACH DATABASE '/tmp/gw-stolen.db' AS stolen",
    "pragma": "PRAGMA writable_schema = 1",
    "load_extension": "SELECT load_extension('/tmp/evil.so') AS source_id FROM pupils",
    "select into": "SELECT CAST(pupil_id AS TEXT) AS source_id INTO stolen FROM pupils",
}


def test_no_hostile_mapping_changes_a_sqlite_source(demo_sis: tuple[str, DemoSummary], tmp_path: Path) -> None:
    path = demo_sis[0].removeprefix("sqlite:///")
    checksum = "SELECT count(*), group_concat(pupil_id || first_name || last_name, ',') FROM pupils"
    before = sqlite3.connect(path).execute(checksum).fetchone()
    for name, query in SQLITE_HOSTILE.items():
        with pytest.raises(ReadOnlyViolation):
            connect(demo_sis[0], write_mapping(tmp_path, query))
        assert sqlite3.connect(path).execute(checksum).fetchone() == before, name


def test_a_mapping_query_the_parser_cannot_read_is_refused_with_its_stream_and_position(
    demo_sis: tuple[str, DemoSummary], tmp_path: Path
) -> None:
    with pytest.raises(ReadOnlyViolation) as caught:
        connect(demo_sis[0], write_mapping(tmp_path, "SELECT pupil_id AS source_id\n FROM (pupils"))
    assert "streams.students.query: cannot be read at line 2, column" in str(caught.value)


@pytest.mark.parametrize("column", ["comment", "replace", "set", "load", "security"])
def test_a_column_named_like_a_keyword_is_read_from_sqlite(tmp_path: Path, column: str) -> None:
    source = tmp_path / "source.sqlite3"
    name = '"set"' if column == "set" else column  # SET is reserved in SQLite itself
    with sqlite3.connect(source) as db:
        db.execute(f"CREATE TABLE kids (id INTEGER, {name} TEXT, last TEXT)")
        db.execute("INSERT INTO kids VALUES (1, 'Ana', 'Lopez')")
    mapping = write_mapping(tmp_path, f"SELECT CAST(id AS TEXT) AS source_id, {name} AS given_name, "
                                      "last AS family_name FROM kids", tables='["kids"]')
    (student,) = records(connect(f"sqlite:///{source}", mapping), "students")
    assert (student.source_id, student.given_name) == ("1", "Ana")  # type: ignore[attr-defined]


def test_a_colon_inside_a_mapping_string_is_text_not_a_parameter(tmp_path: Path) -> None:
    source = tmp_path / "source.sqlite3"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE kids (id INTEGER, first TEXT, last TEXT, changed TEXT)")
        db.execute("INSERT INTO kids VALUES (1, 'Ana', 'Lopez', '2026-11-01 08:00:00')")
    mapping = write_mapping(tmp_path, "SELECT CAST(id AS TEXT) AS source_id, first || ' :since' AS given_name, "
                                      "last AS family_name, changed AS modified_at FROM kids", tables='["kids"]')
    connector = connect(f"sqlite:///{source}", mapping)
    (student,) = records(connector, "students", since=dt.datetime(2026, 10, 1, tzinfo=UTC))
    assert student.given_name == "Ana :since"  # type: ignore[attr-defined]


def test_sqlite_runs_one_statement_per_call_even_without_the_guard(demo_sis: tuple[str, DemoSummary]) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from gateway.db import create_ro_engine

    engine = create_ro_engine(demo_sis[0], guard=False, source=True)  # the source engine, its parsed guard left off
    with pytest.raises(DBAPIError, match="one statement at a time"):
        with engine.connect() as connection:
            connection.execute(text("SELECT 1; DELETE FROM pupils"))
    engine.dispose()

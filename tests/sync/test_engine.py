"""The sync engine: idempotent, atomic, sanitizing, guarded, incremental."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from collections.abc import Iterator, Mapping
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from gateway.cli import main
from gateway.db import create_rw_engine
from gateway.demo.sis import SENSITIVE_MARKERS, mutate
from gateway.errors import ConfigError, LockHeld, SyncRefused
from gateway.replica.tables import SyncReject, SyncRun
from gateway.settings import Settings

from connectors import registry
from connectors.base import Item, StreamSpec
from connectors.sql import SourceError
from sync.engine import RunResult, run_sync
from sync.locks import Lease, sync_lock_name

from .conftest import CONNECTOR, decrypted_replica, replica_state, with_connector


def run(settings: Settings, full: bool = False, allow_shrink: bool = False) -> RunResult:
    connector = registry.build(settings.connector(CONNECTOR), settings)
    try:
        return run_sync(settings, connector, "full" if full else "incremental", allow_shrink)
    finally:
        connector.close()


def totals(result: RunResult) -> dict[str, int]:
    return {key: sum(getattr(c, key) for c in result.counts.values())
            for key in ("inserted", "updated", "deleted", "unchanged", "rejected")}


def test_the_same_snapshot_twice_changes_nothing_the_second_time(synced: Settings) -> None:
    first = run(synced, full=True)
    assert totals(first)["inserted"] > 5000 and first.status == "succeeded"
    second = totals(run(synced, full=True))
    assert (second["inserted"], second["updated"], second["deleted"]) == (0, 0, 0)
    assert second["unchanged"] == totals(first)["inserted"]


def test_a_field_key_rotation_does_not_show_as_a_change(synced: Settings, cli: CliRunner) -> None:
    run(synced, full=True)
    result = cli.invoke(main, ["--config", str(synced.config_path), "keys", "rotate", "field"])
    assert result.exit_code == 0, result.output
    after = totals(run(synced, full=True))
    assert (after["inserted"], after["updated"], after["deleted"]) == (0, 0, 0)


def test_no_planted_sensitive_value_reaches_the_replica(synced: Settings, source: Path) -> None:
    run(synced, full=True)
    replica = decrypted_replica(synced)
    with sqlite3.connect(source) as db:
        ssns = [row[0] for row in db.execute("SELECT ssn FROM pupils UNION SELECT ssn FROM contacts")]
    assert ssns and not any(ssn in replica for ssn in ssns)
    for marker in SENSITIVE_MARKERS:
        assert marker not in replica, marker
    assert "@example.net" in replica  # decryption worked: guardian emails are there


def test_the_run_records_unmapped_source_fields_by_name(synced: Settings) -> None:
    result = run(synced, full=True)
    engine = create_rw_engine(synced.replica.url)
    with engine.connect() as connection:
        unmapped = connection.execute(select(SyncRun.unmapped_fields).where(SyncRun.id == result.run_id)).scalar_one()
    assert unmapped["students"]["pupils.ssn"] == 120
    assert "pupils.medical_notes" in unmapped["students"]
    assert "900-" not in str(unmapped)


def test_a_dropped_column_holds_nothing(synced: Settings, tmp_path: Path) -> None:
    policy = tmp_path / "sanitize.toml"
    policy.write_text('[columns]\n"students.home_language" = "drop"\n"guardians.phone" = "drop"\n')
    settings = dataclasses.replace(synced, sync=dataclasses.replace(synced.sync, sanitize_policy=str(policy)))
    run(settings, full=True)
    engine = create_rw_engine(settings.replica.url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM students WHERE home_language IS NOT NULL")).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM guardians WHERE phone IS NOT NULL")).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM guardians WHERE email IS NOT NULL")).scalar() > 0


@pytest.mark.parametrize(("line", "problem"), [
    ('"students.birth_date" = "plain"', "may only drop"),
    ('"students.shoe_size" = "drop"', "not a canonical column"),
    ('"students.given_name" = "drop"', "cannot be dropped"),
])
def test_a_policy_that_loosens_or_names_an_unknown_column_stops_the_run_before_reading(
    synced: Settings, tmp_path: Path, line: str, problem: str
) -> None:
    policy = tmp_path / "sanitize.toml"
    policy.write_text(f"[columns]\n{line}\n")
    settings = dataclasses.replace(synced, sync=dataclasses.replace(synced.sync, sanitize_policy=str(policy)))
    with pytest.raises(ConfigError, match=problem):
        run(settings, full=True)
    engine = create_rw_engine(settings.replica.url)
    with engine.connect() as connection:
        assert connection.execute(select(SyncRun.id)).first() is None  # nothing was even started


def test_the_shrink_guard_stops_a_run_deleting_half_the_students(synced: Settings, source: Path) -> None:
    run(synced, full=True)
    before = replica_state(synced)
    with sqlite3.connect(source) as db:
        db.execute("DELETE FROM pupils WHERE pupil_id % 2 = 0")
    with pytest.raises(SyncRefused, match="students would lose 60 of its 120 rows"):
        run(synced, full=True)
    assert replica_state(synced) == before
    result = run(synced, full=True, allow_shrink=True)
    assert result.counts["students"].deleted == 60
    assert len(replica_state(synced)["students"]) == 60


def test_an_incremental_run_after_one_percent_changed_touches_only_those_rows(synced: Settings, source: Path) -> None:
    sis = create_rw_engine(f"sqlite:///{source}")
    run(synced, full=True)
    earlier = mutate(sis, 0.01, seed=4, at=dt.datetime(2026, 11, 28, 6, tzinfo=dt.timezone.utc))  # after every creation
    run(synced)  # the steady state: each cursor now stands at the last change it saw
    changed = mutate(sis, 0.01, seed=5, at=dt.datetime(2026, 11, 28, 18, tzinfo=dt.timezone.utc))
    result = run(synced)
    assert result.counts["students"].updated == len(changed["pupils"])
    assert result.counts["guardians"].updated == len(changed["contacts"])
    assert result.counts["scores"].updated == len(changed["gb_scores"])
    assert result.counts["attendance"].updated == len(changed["attendance_daily"])
    # Incremental streams read only the changed rows, plus the rows stamped at the cursor
    # itself (the closed lower bound re-reads them; they diff as unchanged, nothing is written).
    assert result.counts["scores"].unchanged == len(set(earlier["gb_scores"]) - set(changed["gb_scores"]))
    written = totals(result)
    assert written["updated"] == sum(len(keys) for keys in changed.values())
    assert (written["inserted"], written["deleted"]) == (0, 0)


def test_a_guardian_link_removed_from_the_source_is_gone_after_the_next_incremental_run(synced: Settings, source: Path) -> None:
    run(synced, full=True)
    with sqlite3.connect(source) as db:
        db.execute("DELETE FROM pupil_contacts WHERE link_id = 1")
    result = run(synced)
    assert result.counts["student_guardians"].deleted == 1
    assert "1" not in replica_state(synced)["student_guardians"]


def test_references_keep_both_the_integer_id_and_the_source_id(synced: Settings) -> None:
    run(synced, full=True)
    engine = create_rw_engine(synced.replica.url)
    with engine.connect() as connection:
        unresolved = connection.execute(text(
            "SELECT count(*) FROM student_guardians WHERE student_id IS NULL OR guardian_id IS NULL")).scalar()
        pair = connection.execute(text(
            "SELECT s.source_id, l.student_source_id FROM student_guardians l JOIN students s ON s.id = l.student_id LIMIT 1")).one()
    assert unresolved == 0 and pair[0] == pair[1]


def test_a_second_run_of_the_same_connector_exits_at_once_as_already_running(synced: Settings, cli: CliRunner) -> None:
    portal = create_rw_engine(synced.portal.url)
    with Lease(portal, sync_lock_name(CONNECTOR), 60, holder="other-host:42"):
        with pytest.raises(LockHeld, match="other-host:42"):
            run(synced)


class FailingConnector:
    """A real source (the demo SIS) whose students stream breaks after some rows."""

    def __init__(self, inner: object, fail_after: int) -> None:
        self.inner, self.fail_after = inner, fail_after
        self.name, self.source_system = inner.name, inner.source_system  # type: ignore[attr-defined]
        self.attempts = 0

    @property
    def streams(self) -> tuple[StreamSpec, ...]:
        return self.inner.streams  # type: ignore[attr-defined, no-any-return]

    def iter_records(self, stream: str, since: dt.datetime | None) -> Iterator[Item]:
        for number, item in enumerate(self.inner.iter_records(stream, since)):  # type: ignore[attr-defined]
            if stream == "students" and number == self.fail_after:
                self.attempts += 1
                raise SourceError(self.name, stream, "server closed the connection unexpectedly")
            yield item

    def unmapped_fields(self) -> Mapping[str, Counter[str]]:
        return self.inner.unmapped_fields()  # type: ignore[attr-defined, no-any-return]

    def close(self) -> None:
        self.inner.close()  # type: ignore[attr-defined]


def test_a_source_failing_mid_run_gives_a_failed_run_and_an_unchanged_replica(synced: Settings, source: Path) -> None:
    run(synced, full=True)
    before = replica_state(synced)
    mutate(create_rw_engine(f"sqlite:///{source}"), 0.2, seed=9, at=dt.datetime(2026, 11, 28, 18, tzinfo=dt.timezone.utc))
    settings = dataclasses.replace(synced, sync=dataclasses.replace(synced.sync, retry_attempts=2, retry_backoff_seconds=0.01))
    failing = FailingConnector(registry.build(settings.connector(CONNECTOR), settings), fail_after=50)
    with pytest.raises(SourceError):
        run_sync(settings, failing, "full")
    assert failing.attempts == 3  # the first try and two retries
    assert replica_state(settings) == before
    engine = create_rw_engine(settings.replica.url)
    with engine.connect() as connection:
        last = connection.execute(select(SyncRun.status, SyncRun.error).order_by(SyncRun.id.desc())).first()
    assert last is not None and last.status == "failed" and "server closed the connection" in (last.error or "")


def test_invalid_records_are_quarantined_with_their_reason(synced: Settings, source: Path) -> None:
    with sqlite3.connect(source) as db:
        db.execute("UPDATE enrollment_history SET exit_code = 'ZZ', exit_date = '2026-10-01' WHERE enroll_id = 10")
        db.execute("UPDATE pupils SET dob = 'sometime' WHERE pupil_id = 2")
    result = run(synced, full=True)
    assert result.counts["students"].rejected == 1
    engine = create_rw_engine(synced.replica.url)
    with engine.connect() as connection:
        rejects = connection.execute(select(SyncReject.table_name, SyncReject.source_position, SyncReject.reason)
                                     .where(SyncReject.sync_run_id == result.run_id)).all()
    assert [(r.table_name, r.source_position) for r in rejects][0] == ("students", "students row 2 (source id 2)")
    assert "'sometime' is not a date" in rejects[0].reason
    # A student never stored takes what refers to it along: set aside, never stored half-joined.
    dependants = rejects[1:]
    assert dependants and all(r.reason.startswith("student 2 is not in the replica") for r in dependants)
    assert {r.table_name for r in dependants} >= {"student_guardians", "enrollments", "attendance"}
    assert "2" in replica_state(synced)["students"] or result.counts["students"].inserted == 119
    # 'ZZ' maps to the canonical exit kind "unknown": kept, not rejected (only student 2's enrolments are).
    assert "10" in replica_state(synced)["enrollments"]
    assert result.counts["enrollments"].rejected == result.counts["enrollments"].unresolved


def test_too_many_rejects_fail_the_run_and_keep_the_old_replica(synced: Settings, source: Path) -> None:
    run(synced, full=True)
    before = replica_state(synced)
    with sqlite3.connect(source) as db:
        db.execute("UPDATE pupils SET dob = 'unknown'")
        db.execute("UPDATE attendance_daily SET att_date = 'never'")
    with pytest.raises(SyncRefused, match="were rejected"):
        run(synced, full=True)
    assert replica_state(synced) == before


def test_an_integer_row_version_works_as_a_cursor(instance: Settings, tmp_path: Path) -> None:
    source = tmp_path / "versioned.sqlite3"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE kids (id INTEGER PRIMARY KEY, first TEXT, last TEXT, version INTEGER)")
        db.executemany("INSERT INTO kids VALUES (?, ?, ?, ?)", [(n, f"Kid{n}", "Doe", n) for n in range(1, 51)])
    mapping = tmp_path / "versioned.toml"
    mapping.write_text('[streams.students]\ntable = "students"\ntables = ["kids"]\nincremental = true\nquery = """'
                       "SELECT CAST(id AS TEXT) AS source_id, first AS given_name, last AS family_name, version AS modified_at "
                       'FROM kids"""\n')
    settings = dataclasses.replace(instance, connectors=(registry_entry(source, mapping),))
    first = run(settings, full=True)
    assert first.counts["students"].inserted == 50
    with sqlite3.connect(source) as db:
        db.execute("UPDATE kids SET first = 'Renamed', version = 51 WHERE id IN (3, 4)")
    later = run(settings)
    # Rows at the cursor itself (version 50) are read again and found unchanged; the two new versions update.
    assert (later.counts["students"].updated, later.counts["students"].unchanged) == (2, 1)
    engine = create_rw_engine(settings.replica.url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT value, value_kind FROM sync_cursors")).all() == [("51", "integer")]


def registry_entry(source: Path, mapping: Path) -> object:
    from gateway.settings import ConnectorSettings

    return ConnectorSettings(CONNECTOR, "sql", CONNECTOR, {"url": f"sqlite:///{source}", "mapping": str(mapping)})


@pytest.fixture
def any_synced(any_instance: Settings, source: Path) -> Settings:
    """The demo SIS as connector ``sis`` on SQLite and on PostgreSQL (not yet synced)."""
    return with_connector(any_instance, source)


def replica_rows(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    engine = create_rw_engine(settings.replica.url)
    with engine.connect() as connection:
        rows = [tuple(row) for row in connection.execute(text(sql))]
    engine.dispose()
    return rows


LINK_1 = ("SELECT s.source_id, g.source_id FROM student_guardians l JOIN students s ON s.id = l.student_id "
          "JOIN guardians g ON g.id = l.guardian_id WHERE l.source_id = '1'")


def test_a_link_moved_to_another_guardian_joins_the_new_guardian_after_the_next_run(any_synced: Settings, source: Path) -> None:
    run(any_synced, full=True)
    with sqlite3.connect(source) as db:
        pupil, contact = db.execute("SELECT pupil_id, contact_id FROM pupil_contacts WHERE link_id = 1").fetchone()
        db.execute("UPDATE pupil_contacts SET contact_id = 7, updated_at = '2026-11-28 12:00:00' WHERE link_id = 1")
    assert contact != 7
    assert replica_rows(any_synced, LINK_1) == [(str(pupil), str(contact))]
    result = run(any_synced, full=True)
    assert result.counts["student_guardians"].updated == 1
    assert replica_rows(any_synced, LINK_1) == [(str(pupil), "7")]


def rejects_of(settings: Settings, run_id: int) -> list[tuple[str, str, str]]:
    engine = create_rw_engine(settings.replica.url)
    with engine.connect() as connection:
        rows = connection.execute(select(SyncReject.table_name, SyncReject.source_position, SyncReject.reason)
                                  .where(SyncReject.sync_run_id == run_id).order_by(SyncReject.id)).all()
    engine.dispose()
    return [tuple(row) for row in rows]


def test_a_link_to_a_guardian_the_replica_lacks_is_rejected_naming_both_ends_and_keeps_its_old_row(
        any_synced: Settings, source: Path) -> None:
    run(any_synced, full=True)
    with sqlite3.connect(source) as db:
        pupil, contact = db.execute("SELECT pupil_id, contact_id FROM pupil_contacts WHERE link_id = 1").fetchone()
        db.execute("UPDATE pupil_contacts SET contact_id = 999999, updated_at = '2026-11-28 12:00:00' WHERE link_id = 1")
    result = run(any_synced, full=True)
    links = result.counts["student_guardians"]
    assert (links.rejected, links.unresolved, links.updated, links.deleted) == (1, 1, 0, 0)
    assert rejects_of(any_synced, result.run_id) == [
        ("student_guardians", "student_guardians source id 1",
         f"guardian 999999 is not in the replica (student_guardians 1: student {pupil}, guardian 999999)")]
    # Quarantined, not half-joined: the link keeps its previous, whole row.
    assert replica_rows(any_synced, LINK_1) == [(str(pupil), str(contact))]
    with sqlite3.connect(source) as db:
        db.execute("INSERT INTO contacts (contact_id, first_name, last_name, created_at) "
                   "VALUES (999999, 'Late', 'Arrival', '2026-11-28 13:00:00')")
    run(any_synced, full=True)
    assert replica_rows(any_synced, LINK_1) == [(str(pupil), "999999")]


def test_an_enrolment_of_a_student_the_replica_lacks_is_rejected_and_never_stored(any_synced: Settings, source: Path) -> None:
    with sqlite3.connect(source) as db:
        db.execute("INSERT INTO enrollment_history (enroll_id, pupil_id, school_id, entry_date, grade, created_at) "
                   "SELECT 777777, 888888, school_id, entry_date, grade, created_at FROM enrollment_history LIMIT 1")
    result = run(any_synced, full=True)
    assert (result.counts["enrollments"].rejected, result.counts["enrollments"].unresolved) == (1, 1)
    assert rejects_of(any_synced, result.run_id) == [
        ("enrollments", "enrollments source id 777777",
         "student 888888 is not in the replica (enrollments 777777: student 888888)")]
    assert "777777" not in replica_state(any_synced)["enrollments"]
    assert replica_rows(any_synced, "SELECT count(*) FROM enrollments WHERE student_id IS NULL") == [(0,)]


def test_a_row_whose_cursor_is_null_is_read_by_every_incremental_run(instance: Settings, tmp_path: Path) -> None:
    source = tmp_path / "versioned.sqlite3"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE kids (id INTEGER PRIMARY KEY, first TEXT, last TEXT, version INTEGER)")
        db.executemany("INSERT INTO kids VALUES (?, ?, ?, ?)", [(n, f"Kid{n}", "Doe", n) for n in range(1, 11)])
    mapping = tmp_path / "versioned.toml"
    mapping.write_text('[streams.students]\ntable = "students"\ntables = ["kids"]\nincremental = true\nquery = """'
                       "SELECT CAST(id AS TEXT) AS source_id, first AS given_name, last AS family_name, version AS modified_at "
                       'FROM kids"""\n')
    settings = dataclasses.replace(instance, connectors=(registry_entry(source, mapping),))
    assert run(settings, full=True).counts["students"].inserted == 10
    with sqlite3.connect(source) as db:  # a row the source stamps with no version at all
        db.execute("INSERT INTO kids VALUES (11, 'Nova', 'Null', NULL)")
    later = run(settings).counts["students"]
    assert (later.inserted, later.unchanged, later.null_cursor) == (1, 1, 1)  # the new row, and the row at the cursor
    again = run(settings).counts["students"]
    assert (again.inserted, again.unchanged, again.null_cursor) == (0, 2, 1)
    assert "11" in replica_state(settings)["students"]
    engine = create_rw_engine(settings.replica.url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT value FROM sync_cursors")).scalars().all() == ["10"]  # never moved by NULL


def test_a_snapshot_deletes_exactly_the_rows_the_source_no_longer_has(any_synced: Settings, source: Path) -> None:
    run(any_synced, full=True)
    with sqlite3.connect(source) as db:
        db.execute("DELETE FROM pupil_contacts WHERE link_id IN (2, 3)")
        db.execute("UPDATE pupil_contacts SET relation = 'Aunt', updated_at = '2026-11-28 12:00:00' WHERE link_id = 4")
    before = replica_state(any_synced)["student_guardians"]
    result = run(any_synced, full=True)
    after = replica_state(any_synced)["student_guardians"]
    assert (result.counts["student_guardians"].deleted, result.counts["student_guardians"].updated) == (2, 1)
    assert set(before) - set(after) == {"2", "3"} and set(after) <= set(before)


def test_a_record_turned_invalid_keeps_its_previous_row_through_a_full_run(any_synced: Settings, source: Path) -> None:
    run(any_synced, full=True)
    before = replica_state(any_synced)["students"]["2"]
    with sqlite3.connect(source) as db:
        db.execute("UPDATE pupils SET dob = 'sometime', updated_at = '2026-11-28 12:00:00' WHERE pupil_id = 2")
    result = run(any_synced, full=True)
    assert (result.counts["students"].rejected, result.counts["students"].deleted) == (1, 0)
    assert replica_state(any_synced)["students"]["2"] == before


def test_the_shrink_guard_counts_the_table_as_the_run_found_it(any_synced: Settings, source: Path) -> None:
    run(any_synced, full=True)
    with sqlite3.connect(source) as db:
        db.execute("DELETE FROM pupils WHERE pupil_id > 60")
        db.execute("UPDATE pupils SET grade = '12', updated_at = '2026-11-28 12:00:00' WHERE pupil_id <= 60")
        db.execute("INSERT INTO pupils (pupil_id, student_no, first_name, last_name, dob, created_at) "
                   "VALUES (5000, 'S5000', 'New', 'Pupil', '2015-01-01', '2026-11-28 12:00:00')")
    with pytest.raises(SyncRefused, match="students would lose 60 of its 120 rows"):
        run(any_synced, full=True)


def test_a_first_sync_leaves_planner_statistics_for_small_and_large_tables(any_synced: Settings) -> None:
    run(any_synced, full=True)
    if any_synced.replica.url.startswith("sqlite"):
        sql = "SELECT DISTINCT tbl FROM sqlite_stat1 WHERE tbl IN ('schools', 'sections', 'scores') ORDER BY tbl"
    else:
        sql = "SELECT DISTINCT tablename FROM pg_stats WHERE tablename IN ('schools', 'sections', 'scores') ORDER BY tablename"
    assert replica_rows(any_synced, sql) == [("schools",), ("scores",), ("sections",)]


def test_a_nul_character_in_a_source_value_rejects_that_row_and_the_run_succeeds(any_synced: Settings, source: Path) -> None:
    with sqlite3.connect(source) as db:
        db.execute("UPDATE pupils SET first_name = 'B' || char(0) || 'en' WHERE pupil_id = 3")
    result = run(any_synced, full=True)
    assert result.status == "succeeded" and result.counts["students"].rejected == 1
    engine = create_rw_engine(any_synced.replica.url)
    with engine.connect() as connection:
        reasons = connection.execute(select(SyncReject.reason).where(SyncReject.sync_run_id == result.run_id)).scalars().all()
    engine.dispose()
    assert reasons[0] == "given_name: a value contains a NUL character"  # names the field
    assert reasons[1:] and all(r.startswith("student 3 is not in the replica") for r in reasons[1:])  # its dependants
    assert "3" not in replica_state(any_synced)["students"]


RECOGNISABLE = "Zebediah-Quillfeather"


def fail_on_a_recognisable_value(settings: Settings, source: Path) -> None:
    """Two pupils renamed to one name a unique index forbids: the second write fails on a constraint."""
    engine = create_rw_engine(settings.replica.url)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE UNIQUE INDEX one_zebediah ON students (given_name) "
                                f"WHERE given_name = '{RECOGNISABLE}'"))
    engine.dispose()
    with sqlite3.connect(source) as db:
        db.execute(f"UPDATE pupils SET first_name = '{RECOGNISABLE}', updated_at = '2026-11-28 12:00:00' "
                   "WHERE pupil_id IN (3, 4)")


def test_a_run_failing_on_a_constraint_stores_the_table_source_id_and_cause_never_the_value(
    any_synced: Settings, source: Path
) -> None:
    run(any_synced, full=True)
    fail_on_a_recognisable_value(any_synced, source)
    with pytest.raises(Exception) as caught:
        run(any_synced, full=True)
    assert RECOGNISABLE not in str(caught.value)
    engine = create_rw_engine(any_synced.replica.url)
    with engine.connect() as connection:
        stored = connection.execute(select(SyncRun).order_by(SyncRun.id.desc()).limit(1)).mappings().one()
    engine.dispose()
    assert stored["status"] == "failed"
    assert RECOGNISABLE not in str(dict(stored))
    assert stored["error"].startswith("could not write students source id 4: ")
    assert "one_zebediah" in stored["error"] or "students.given_name" in stored["error"]  # the constraint, named

"""One source id twice in a stream, and orgs that are their own ancestor: for every connector (issue 15)."""

from __future__ import annotations

import dataclasses
import sqlite3
import tracemalloc
from pathlib import Path

from gateway.replica.records import GuardianRecord, KeyChange, StudentRecord
from gateway.settings import ConnectorSettings, Settings

from connectors import registry
from sync.duplicates import StreamIds
from sync.engine import RunResult, run_sync

from .test_sync_integrity import FIXTURES, Listed, link, rows, sync

KIDS_MAPPING = ('[streams.students]\ntable = "students"\ntables = ["kids"]\nquery = """'
                "SELECT source_id, first AS given_name, last AS family_name FROM kids ORDER BY seq\"\"\"\n")
ORGS_MAPPING = ('[streams.schools]\ntable = "schools"\ntables = ["orgs"]\nincremental = true\nquery = """'
                "SELECT source_id, name, kind, parent AS parent_source_id, version AS modified_at FROM orgs\"\"\"\n")


def sql_source(tmp_path: Path, settings: Settings, mapping: str, batch_size: int = 1000) -> Settings:
    (tmp_path / "mapping.toml").write_text(mapping)
    entry = ConnectorSettings("sis", "sql", "sis", {"url": f"sqlite:///{tmp_path / 'sis.sqlite3'}",
                                                    "mapping": str(tmp_path / "mapping.toml")})
    return dataclasses.replace(settings, connectors=(entry,),
                               sync=dataclasses.replace(settings.sync, batch_size=batch_size))


def run(settings: Settings, mode: str = "full") -> RunResult:
    connector = registry.build(settings.connector("sis"), settings)
    try:
        return run_sync(settings, connector, mode)
    finally:
        connector.close()


def kids(tmp_path: Path, listed: list[tuple[str, str, str]]) -> None:
    with sqlite3.connect(tmp_path / "sis.sqlite3") as db:
        db.execute("CREATE TABLE IF NOT EXISTS kids (seq INTEGER PRIMARY KEY, source_id TEXT, first TEXT, last TEXT)")
        db.execute("DELETE FROM kids")
        db.executemany("INSERT INTO kids (source_id, first, last) VALUES (?, ?, ?)", listed)


STORED = [("K1", "Ann", "Ash"), ("K2", "Bob", "Birch"), ("K3", "Cy", "Cedar"), ("K4", "Di", "Dogwood")]


# --- duplicates across batches ----------------------------------------------------------------

def test_a_sql_source_sending_an_id_twice_with_different_values_in_different_batches_keeps_the_stored_row(
        any_instance: Settings, tmp_path: Path) -> None:
    settings = sql_source(tmp_path, any_instance, KIDS_MAPPING, batch_size=2)
    kids(tmp_path, STORED)
    assert run(settings).counts["students"].inserted == 4
    # K1 changed in the first batch (written), and sent again differently in the third; K9
    # is new, in the second batch and again in the third: neither copy may stay.
    kids(tmp_path, [("K1", "Ann", "Changed"), ("K2", "Bob", "Birch"), ("K9", "Nia", "New"), ("K3", "Cy", "Cedar"),
                    ("K4", "Di", "Dogwood"), ("K1", "Ann", "Other"), ("K9", "Nia", "Else")])
    result = run(settings)
    assert result.status == "succeeded"
    assert rows(settings, "SELECT source_id, given_name, family_name FROM students ORDER BY 1") == [
        ("K1", "Ann", "Ash"), ("K2", "Bob", "Birch"), ("K3", "Cy", "Cedar"), ("K4", "Di", "Dogwood")]
    counts = result.counts["students"]
    assert (counts.inserted, counts.updated, counts.deleted, counts.rejected) == (0, 0, 0, 4)
    assert result.findings["duplicates"] == {"students": {"identical": 0, "conflicting": 2}}
    assert result.findings["rejects_by_reason"]["students"] == {
        "source id … came more than once with different values: none is applied, the stored row is kept": 4}
    (reasons,) = rows(settings, "SELECT count(*) FROM sync_rejects WHERE source_position = 'students source id K1'")
    assert reasons == (2,)


def test_a_sql_source_sending_an_id_twice_identically_in_different_batches_counts_it_once(
        instance: Settings, tmp_path: Path) -> None:
    settings = sql_source(tmp_path, instance, KIDS_MAPPING, batch_size=2)
    kids(tmp_path, [*STORED, ("K2", "Bob", "Birch")])
    result = run(settings)
    counts = result.counts["students"]
    assert (counts.inserted, counts.unchanged, counts.rejected) == (4, 0, 0)
    assert result.findings["duplicates"] == {"students": {"identical": 1, "conflicting": 0}}
    assert rows(settings, "SELECT count(*) FROM students WHERE source_id = 'K2'") == [(1,)]


def test_any_connector_sending_a_conflicting_id_in_a_later_batch_keeps_the_stored_row_and_deletes_nothing(
        instance: Settings) -> None:
    settings = dataclasses.replace(instance, sync=dataclasses.replace(instance.sync, batch_size=1))

    def kid(source_id: str, family: str) -> StudentRecord:
        return StudentRecord(source_id=source_id, given_name="Kid", family_name=family)

    assert run_sync(settings, Listed({"students": [kid("S1", "One"), kid("S2", "Two")]}), "full").status == "succeeded"
    again = Listed({"students": [kid("S1", "Uno"), kid("S2", "Two"), kid("S2", "Two"), kid("S1", "Eins"), kid("S1", "One")]})
    result = run_sync(settings, again, "full")
    assert rows(settings, "SELECT source_id, family_name FROM students ORDER BY 1") == [("S1", "One"), ("S2", "Two")]
    assert result.findings["duplicates"] == {"students": {"identical": 1, "conflicting": 1}}
    assert (result.counts["students"].updated, result.counts["students"].deleted, result.counts["students"].rejected) == (0, 0, 3)


def test_remembering_200000_ids_of_one_stream_takes_under_40_mb() -> None:
    tracemalloc.start()
    ids = StreamIds()
    for n in range(200_000):
        ids.note(StudentRecord(source_id=f"U{n:09d}", given_name="Sam", family_name=f"Student{n}"))
    used, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert used < 40_000_000  # measured: about 29 MB for 200,000 ids of 10 characters


# --- org loops through the replica --------------------------------------------------------------

def orgs(tmp_path: Path, listed: list[tuple[str, str, str | None, int]]) -> None:
    with sqlite3.connect(tmp_path / "sis.sqlite3") as db:
        db.execute("CREATE TABLE IF NOT EXISTS orgs (source_id TEXT PRIMARY KEY, name TEXT, kind TEXT, parent TEXT, "
                   "version INTEGER)")
        db.executemany("INSERT OR REPLACE INTO orgs VALUES (?, ?, 'school', ?, ?)",
                       [(i, name, parent, version) for i, name, parent, version in listed])


def test_an_incremental_sql_source_cannot_make_an_org_its_own_ancestor_through_stored_orgs(
        instance: Settings, tmp_path: Path) -> None:
    settings = sql_source(tmp_path, instance, ORGS_MAPPING)
    orgs(tmp_path, [("D", "District", None, 2), ("A", "Area", "D", 1), ("B", "Branch", "A", 1)])
    assert run(settings).counts["schools"].inserted == 3
    # Read again: the rows from version 2 on (the cursor itself included), so A and B only from the replica.
    orgs(tmp_path, [("D", "District", "B", 3), ("N", "New", "N", 3)])  # D → B → A → D through the replica; N → N
    result = run(settings, "incremental")
    assert result.status == "succeeded"
    assert result.counts["schools"].unchanged == 0
    assert rows(settings, "SELECT source_id, parent_source_id FROM schools ORDER BY 1") == [
        ("A", "D"), ("B", "A"), ("D", None)]
    assert result.counts["schools"].rejected == 2
    assert sorted(rows(settings, "SELECT source_position, reason FROM sync_rejects")) == [
        ("schools source id D", "org D is its own ancestor (D → B → A → D)"),
        ("schools source id N", "org N is its own ancestor (N → N)")]


def test_a_oneroster_delta_cannot_make_an_org_its_own_ancestor_through_the_stored_orgs(
        instance: Settings, tmp_path: Path) -> None:
    assert sync(instance, FIXTURES / "district-1p1").status == "succeeded"
    delta = tmp_path / "delta"
    delta.mkdir()
    (delta / "manifest.csv").write_text("propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\n"
                                        "file.orgs,delta\n")
    (delta / "orgs.csv").write_text("sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n"
                                    "D1,active,2026-11-25T08:00:00.000Z,Maple District,district,MD,S1\n")
    result = sync(instance, delta, "incremental")
    assert result.status == "succeeded"
    assert rows(instance, "SELECT source_id, parent_source_id FROM schools ORDER BY 1") == [("D1", None), ("S1", "D1")]
    assert result.findings["rejects_by_reason"]["schools"] == {"org … is its own ancestor (… → S1 → …)": 1}


def test_a_full_sql_source_may_reverse_a_parent_link_without_a_loop(instance: Settings, tmp_path: Path) -> None:
    settings = sql_source(tmp_path, instance, ORGS_MAPPING)
    orgs(tmp_path, [("D", "District", None, 1), ("A", "Area", "D", 1)])
    run(settings)
    orgs(tmp_path, [("D", "District", "A", 2), ("A", "Area", None, 2)])  # swapped in one run: still no loop
    result = run(settings)
    assert result.counts["schools"].rejected == 0
    assert rows(settings, "SELECT source_id, parent_source_id FROM schools ORDER BY 1") == [("A", None), ("D", "A")]



def test_a_conflicting_duplicate_under_a_changed_key_keeps_the_moved_row_and_its_stored_values(instance: Settings) -> None:
    settings = dataclasses.replace(instance, sync=dataclasses.replace(instance.sync, batch_size=1))

    def kid(source_id: str, family: str) -> StudentRecord:
        return StudentRecord(source_id=source_id, given_name="Kid", family_name=family)

    assert run_sync(settings, Listed({"students": [kid("OLD", "Stored")]}), "full").status == "succeeded"
    (row_id,) = rows(settings, "SELECT id FROM students WHERE source_id = 'OLD'")
    moved = Listed({"students": [KeyChange("students", "OLD", "NEW"), kid("NEW", "First"), kid("NEW", "Second")]})  # type: ignore[list-item]
    result = run_sync(settings, moved, "incremental")
    assert rows(settings, "SELECT id, source_id, family_name FROM students") == [(row_id[0], "NEW", "Stored")]
    assert result.counts["students"].rejected == 2 and result.counts["students"].deleted == 0


def test_a_conflicting_link_fails_closed_when_either_copy_takes_access_away(instance: Settings) -> None:
    settings = dataclasses.replace(instance, sync=dataclasses.replace(instance.sync, batch_size=1))
    people = {"students": [StudentRecord(source_id=s, given_name="Kid", family_name=s) for s in ("S1", "S2")],
              "guardians": [GuardianRecord(source_id="G1", given_name="Pat", family_name="G1")]}
    granted = [link("S1:G1", True), link("S2:G1", True)]
    assert run_sync(settings, Listed({**people, "student_guardians": granted}), "full").status == "succeeded"
    # S1:G1: the revoking copy comes first (already written when the other arrives); S2:G1: it comes second.
    conflicting = [link("S1:G1", False), link("S2:G1", True, "guardian"), link("S1:G1", True, "guardian"),
                   link("S2:G1", False)]
    result = run_sync(settings, Listed({**people, "student_guardians": conflicting}), "full")
    assert rows(settings, "SELECT source_id FROM student_guardians") == []
    assert result.findings["access_narrowed"]["count"] == 4

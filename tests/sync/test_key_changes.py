"""Key changes in the engine: a row whose natural key changed moves; it is never deleted and inserted."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator, Mapping

from sqlalchemy import select

from gateway.db import create_rw_engine
from gateway.replica.records import GuardianRecord, KeyChange, StudentGuardianRecord, StudentRecord
from gateway.replica.tables import ReplicaBase
from gateway.settings import Settings

from connectors.base import Item, StreamSpec
from sync.engine import run_sync


class ListedSource:
    """A source whose items per stream the test writes by hand (every stream incremental by version)."""

    name = source_system = "listed"

    def __init__(self, items: dict[str, list[Item]]) -> None:
        self.items = items

    @property
    def streams(self) -> tuple[StreamSpec, ...]:
        return tuple(StreamSpec(name=table, table=table, incremental=True) for table in self.items)

    def iter_records(self, stream: str, since: dt.datetime | int | None) -> Iterator[Item]:
        return iter(self.items[stream])

    def unmapped_fields(self) -> Mapping[str, Counter[str]]:
        return {}

    def close(self) -> None:
        pass


def rows(settings: Settings, table: str) -> dict[str, dict[str, object]]:
    engine = create_rw_engine(settings.replica.url)
    t = ReplicaBase.metadata.tables[table]
    with engine.connect() as connection:
        found = {row["source_id"]: dict(row) for row in connection.execute(select(t)).mappings()}
    engine.dispose()
    return found


ANA = StudentRecord(source_id="S1", modified_at=1, given_name="Ana", family_name="Lopez")
MARIA = GuardianRecord(source_id="G1", modified_at=1, given_name="Maria", family_name="Lopez")
LINK = StudentGuardianRecord(source_id="S1:G1", modified_at=1, student_source_id="S1", guardian_source_id="G1",
                             relationship="parent", portal_access=True)


def test_a_key_change_keeps_the_replica_id_and_the_references_follow_even_unsent(any_instance: Settings) -> None:
    instance = any_instance
    run_sync(instance, ListedSource({"students": [ANA], "guardians": [MARIA], "student_guardians": [LINK]}))
    student_id, link_id = rows(instance, "students")["S1"]["id"], rows(instance, "student_guardians")["S1:G1"]["id"]

    moved = ListedSource({"students": [KeyChange("students", "S1", "S9", 2)], "guardians": [], "student_guardians": []})
    result = run_sync(instance, moved)

    assert set(rows(instance, "students")) == {"S9"} and rows(instance, "students")["S9"]["id"] == student_id
    link = rows(instance, "student_guardians")["S1:G1"]  # the link itself did not change key: only what it names
    assert (link["id"], link["student_id"], link["student_source_id"], link["portal_access"]) == (link_id, student_id, "S9", True)
    assert result.counts["students"].inserted == 0 and result.counts["students"].deleted == 0


def test_a_key_change_onto_a_key_already_present_removes_the_old_row(any_instance: Settings) -> None:
    instance = any_instance
    other = StudentRecord(source_id="S9", modified_at=1, given_name="Ana", family_name="Lopez")
    run_sync(instance, ListedSource({"students": [ANA, other]}))
    run_sync(instance, ListedSource({"students": [KeyChange("students", "S1", "S9", 2)]}))
    assert set(rows(instance, "students")) == {"S9"}

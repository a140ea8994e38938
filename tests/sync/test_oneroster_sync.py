"""A OneRoster bulk export, then a delta, through the engine into the replica."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sqlalchemy import select, text

from gateway.db import create_rw_engine
from gateway.replica.tables import SyncReject
from gateway.settings import ConnectorSettings, Settings

from connectors import registry
from sync.engine import RunResult, run_sync

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "oneroster"


def sync_bundle(settings: Settings, folder: str) -> RunResult:
    entry = ConnectorSettings("roster", "oneroster-csv", "roster", {"path": str(FIXTURES / folder), "guardian_portal_access": True})
    configured = dataclasses.replace(settings, connectors=(entry,))
    connector = registry.build(entry, configured)
    return run_sync(configured, connector, "incremental")


def rows(settings: Settings, sql: str) -> list[tuple[object, ...]]:
    engine = create_rw_engine(settings.replica.url)
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql))]


def test_a_bulk_export_then_a_delta_leave_the_replica_as_the_source_now_is(instance: Settings) -> None:
    bulk = sync_bundle(instance, "district-1p1")
    assert bulk.status == "succeeded"
    assert rows(instance, "SELECT source_id FROM students ORDER BY source_id") == [("U-ANA",), ("U-BEN",), ("U-CAL",)]
    assert len(rows(instance, "SELECT 1 FROM student_guardians WHERE student_id IS NOT NULL AND guardian_id IS NOT NULL")) == 4
    engine = create_rw_engine(instance.replica.url)
    with engine.connect() as connection:
        reasons = sorted(connection.execute(select(SyncReject.reason).where(SyncReject.sync_run_id == bulk.run_id)).scalars())
    assert reasons == ["A-AIDE is a aide, not a parent, guardian or relative: not linked to U-BEN",
                       "user T-KIM is a teacher, enrolled as a student"]

    delta = sync_bundle(instance, "delta-1p2")
    assert delta.counts["students"].deleted == 1 and delta.counts["students"].updated == 1
    assert rows(instance, "SELECT source_id, preferred_name FROM students ORDER BY source_id") == [("U-ANA", "Lu"), ("U-BEN", None)]
    assert rows(instance, "SELECT family_name FROM guardians WHERE source_id = 'P-ROSA'") == [("Reyes-Diaz",)]
    assert rows(instance, "SELECT source_id FROM section_enrollments ORDER BY source_id") == [("E-4",), ("E-9",)]
    assert rows(instance, "SELECT count(*) FROM section_enrollments WHERE section_id IS NULL") == [(0,)]

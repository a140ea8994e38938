"""One way to start a sync: a typed result for every outcome, errors grouped by what the caller does."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from gateway.cli import main
from gateway.db import create_rw_engine
from gateway.errors import (FatalSyncError, GatewayError, LockHeld, RetriableSyncError, SkippableRecordError,
                            SyncError, SyncRefused)
from gateway.replica.tables import SyncRun
from gateway.settings import Settings, load_settings

from connectors import registry
from connectors.base import Item, StreamSpec
from connectors.oneroster_csv import BundleError
from connectors.oneroster_rest import ProviderError
from connectors.sql import SourceError
from sync import engine
from sync.locks import Lease, sync_lock_name
from sync.runner import RunResult, run_sync

from .conftest import CONNECTOR


def runs(settings: Settings) -> list[tuple[int, str, str]]:
    replica = create_rw_engine(settings.replica.url)
    with replica.connect() as connection:
        found = [tuple(row) for row in connection.execute(select(SyncRun.id, SyncRun.mode, SyncRun.status))]
    replica.dispose()
    return found  # type: ignore[return-value]


def test_a_run_comes_back_as_a_frozen_result_with_its_id_and_counts(synced: Settings) -> None:
    result = run_sync(synced, CONNECTOR, full=True)
    assert (result.status, result.run_id, result.mode, result.error) == ("succeeded", 1, "full", None)
    assert result.counts["students"].inserted == 120  # the demo SIS of the fixture has 120 students
    assert result.summary() == "run 1 succeeded"
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.status = "failed"  # type: ignore[misc]
    assert runs(synced) == [(1, "full", "succeeded")]


def test_a_run_that_finds_one_going_comes_back_busy_and_records_nothing(synced: Settings) -> None:
    portal = create_rw_engine(synced.portal.url)
    with Lease(portal, sync_lock_name(CONNECTOR), 60, holder="other-host:42"):
        result = run_sync(synced, CONNECTOR, full=False)
    portal.dispose()
    assert (result.status, result.run_id) == ("busy", None)
    assert isinstance(result.error, LockHeld) and "other-host:42" in str(result.error)
    with pytest.raises(LockHeld):
        result.raise_error()  # the CLI's way to exit 75
    assert runs(synced) == []


def test_a_source_that_cannot_be_opened_is_a_failed_run_in_the_history(synced: Settings, source: Path) -> None:
    source.write_bytes(b"this is not a database")  # the connector cannot even be built
    result = run_sync(synced, CONNECTOR, full=False)
    assert result.status == "failed" and isinstance(result.error, GatewayError)
    assert runs(synced) == [(result.run_id, "incremental", "failed")]


def test_an_unknown_connector_fails_without_a_run(synced: Settings) -> None:
    result = run_sync(synced, "nope", full=False)
    assert result.status == "failed" and "valid names: sis" in str(result.error)
    assert runs(synced) == []


@pytest.mark.parametrize(("error", "disposition"), [
    (SourceError("sis", "students", "server closed the connection"), "retriable"),
    (SourceError("sis", "students", "syntax error", retriable=False), "fatal"),
    (ProviderError("rest", "https://sis.example/users", "answered 503", "try later", retriable=True), "retriable"),
    (ProviderError("rest", "https://sis.example/users", "answered 401", "check the credentials"), "fatal"),
    (BundleError("bundle.zip", "is not a zip file", "export it again"), "fatal"),
    (SyncRefused("sis", "too many deletions", "use --allow-shrink"), "fatal"),
    (RetriableSyncError("listing changed mid-read"), "retriable"),
    (SkippableRecordError("one row has no id"), "skippable"),
])
def test_each_sync_error_says_what_its_caller_does(error: SyncError, disposition: str) -> None:
    assert error.disposition == disposition
    assert error.retriable == (disposition == "retriable")
    assert isinstance(error, SyncError) and isinstance(error, GatewayError)


class BreakingConnector:
    """The demo SIS whose students stream raises ``error`` on its tenth record."""

    def __init__(self, inner: object, error: GatewayError) -> None:
        self.inner, self.error, self.attempts = inner, error, 0
        self.name, self.source_system = inner.name, inner.source_system  # type: ignore[attr-defined]

    @property
    def streams(self) -> tuple[StreamSpec, ...]:
        return self.inner.streams  # type: ignore[attr-defined, no-any-return]

    def iter_records(self, stream: str, since: object) -> Iterator[Item]:
        for number, item in enumerate(self.inner.iter_records(stream, since)):  # type: ignore[attr-defined]
            if stream == "students" and number == 10:
                self.attempts += 1
                raise self.error
            yield item

    def unmapped_fields(self) -> Mapping[str, Counter[str]]:
        return self.inner.unmapped_fields()  # type: ignore[attr-defined, no-any-return]

    def close(self) -> None:
        self.inner.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("error", "attempts"), [
    (RetriableSyncError("the listing changed while it was read"), 3),
    (FatalSyncError("the mapping names a column the source lacks"), 1),
    (GatewayError("not a sync error at all"), 1),
])
def test_the_engine_retries_only_what_is_retriable(synced: Settings, error: GatewayError, attempts: int) -> None:
    settings = dataclasses.replace(synced, sync=dataclasses.replace(synced.sync, retry_attempts=2, retry_backoff_seconds=0.01))
    breaking = BreakingConnector(registry.build(settings.connector(CONNECTOR), settings), error)
    with pytest.raises(type(error)):
        engine.run_sync(settings, breaking, "full")
    breaking.close()
    assert breaking.attempts == attempts


def test_the_result_reads_the_same_in_json_as_before(synced: Settings) -> None:
    result: RunResult = run_sync(synced, CONNECTOR, full=True)
    report = result.as_dict()
    assert sorted(report) == ["connector", "counts", "error", "findings", "mode", "run_id", "status", "warnings"]
    assert report["warnings"] == []
    assert report["counts"]["students"] == {"inserted": 120, "updated": 0, "deleted": 0, "unchanged": 0, "rejected": 0,
                                            "unresolved": 0, "null_cursor": 0}


@pytest.fixture
def configured(instance: Settings, source: Path) -> Settings:
    config = Path(str(instance.config_path))
    config.write_text(config.read_text() + f'\n[[connectors]]\nname = "{CONNECTOR}"\nkind = "sql"\n'
                      f'url = "sqlite:///{source}"\nmapping = "demo"\n')
    return load_settings(config, env={})


def test_gateway_sync_run_reports_the_runners_result_and_exits_75_when_a_run_is_going(configured: Settings,
                                                                                       cli: CliRunner) -> None:
    command = ["--config", str(configured.config_path), "sync", "run", CONNECTOR]
    portal = create_rw_engine(configured.portal.url)
    with Lease(portal, sync_lock_name(CONNECTOR), 60, holder="other-host:42"):
        busy = cli.invoke(main, command)
    portal.dispose()
    assert busy.exit_code == 75
    assert busy.output.strip().splitlines() == [
        "gateway: sync:sis is already running (held by other-host:42); try again when it ends"]
    done = cli.invoke(main, [*command, "--full", "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert (report["run_id"], report["status"], report["mode"], report["counts"]["students"]["inserted"]) == (
        1, "succeeded", "full", 120)

"""Job definitions, run requests, and the alerts a failing connector raises."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.portal import jobs
from gateway.db import create_rw_engine
from gateway.errors import UnknownPlugin
from gateway.mail import outbox_messages
from gateway.portal.models import Alert
from gateway.settings import Settings, load_settings

from .conftest import CONNECTOR


@pytest.fixture
def configured(instance: Settings, source: Path) -> Settings:
    config = Path(str(instance.config_path))
    config.write_text(config.read_text() + '\n[alerts]\nit_recipients = ["it@district.example"]\n\n'
                      f'[[connectors]]\nname = "{CONNECTOR}"\nkind = "sql"\nurl = "sqlite:///{source}"\nmapping = "demo"\n')
    return load_settings(config, env={})


def portal(settings: Settings) -> Session:
    return Session(create_rw_engine(settings.portal.url))


@pytest.mark.parametrize(("cron", "every", "message"), [
    ("61 * * * *", None, "is not a crontab expression"),
    (None, "often", "is not a duration"),
    (None, "0m", "is not a duration"),
    ("* * * * *", "1m", "exactly one of"),
])
def test_a_bad_schedule_is_refused_with_what_to_write(configured: Settings, cron: str | None, every: str | None, message: str) -> None:
    with portal(configured) as session, pytest.raises(jobs.JobError, match=message):
        jobs.add_job(session, configured, CONNECTOR, cron, every, full=False)
    with portal(configured) as session:
        assert jobs.list_jobs(session) == []


def test_a_job_for_an_unknown_connector_names_the_configured_ones(configured: Settings) -> None:
    with portal(configured) as session, pytest.raises(UnknownPlugin, match="sis"):
        jobs.add_job(session, configured, "nope", None, "1h", full=False)


def test_a_connectors_first_job_brings_a_nightly_full_run_and_later_ones_do_not(configured: Settings) -> None:
    with portal(configured) as session:
        first = jobs.add_job(session, configured, CONNECTOR, None, "15m", full=False)
        second = jobs.add_job(session, configured, CONNECTOR, "0 12 * * *", None, full=False)
    assert [(j.trigger, j.expression, j.full) for j in first] == [("interval", "15m", False), ("cron", "30 2 * * *", True)]
    assert len(second) == 1


def test_each_run_request_is_claimed_once(configured: Settings) -> None:
    with portal(configured) as session:
        request = jobs.request_run(session, configured, CONNECTOR, full=True, requested_by="test")
        assert [r.id for r in jobs.claim_requests(session)] == [request]
        assert jobs.claim_requests(session) == []


def test_consecutive_failures_alert_it_once_and_a_success_resolves_it(configured: Settings, source: Path) -> None:
    from sync.scheduler import run_job

    settings = dataclasses.replace(configured, sync=dataclasses.replace(configured.sync, retry_attempts=0))
    healthy = source.read_bytes()
    source.write_bytes(b"this is not a database")
    outcomes = [run_job(str(settings.config_path), CONNECTOR, False) for _ in range(3)]
    assert [outcome.status for outcome in outcomes] == ["failed", "failed", "failed"]
    with portal(settings) as session:
        open_alerts = session.scalars(select(Alert).where(Alert.resolved_at.is_(None))).all()
    assert [(a.audience, a.kind, a.subject) for a in open_alerts] == [("it", "sync_failed", CONNECTOR)]
    (message,) = outbox_messages(settings.mail.outbox_dir)
    assert b"it@district.example" in message.read_bytes() and b"sync failed: sis" in message.read_bytes()
    source.write_bytes(healthy)
    assert run_job(str(settings.config_path), CONNECTOR, False).status == "succeeded"
    with portal(settings) as session:
        assert session.scalars(select(Alert).where(Alert.resolved_at.is_(None))).all() == []


@pytest.mark.parametrize(("cron", "every", "gap"), [
    (None, "4m", 240),
    (None, "299s", 299),
    ("* * * * *", None, 60),
    ("0,3 * * * *", None, 180),  # most gaps are 57 minutes; one is 3
    ("*/1 6 * * 1", None, 60),  # sparse all week but Monday at 6
])
def test_a_schedule_more_often_than_the_minimum_interval_is_refused(configured: Settings, cron: str | None,
                                                                    every: str | None, gap: int) -> None:
    with portal(configured) as session, pytest.raises(jobs.TooOften) as refused:
        jobs.add_job(session, configured, CONNECTOR, cron, every, full=False)
    assert (refused.value.seconds, refused.value.minimum) == (gap, 300)
    assert "min_interval_seconds" in str(refused.value)
    with portal(configured) as session:
        assert jobs.list_jobs(session) == []


def test_the_minimum_interval_itself_is_allowed_and_configurable(configured: Settings) -> None:
    with portal(configured) as session:
        assert [j.expression for j in jobs.add_job(session, configured, CONNECTOR, None, "5m", full=False, nightly=False)] == ["5m"]
        assert len(jobs.add_job(session, configured, CONNECTOR, "*/5 * * * *", None, full=False)) == 1
    relaxed = dataclasses.replace(configured, scheduler=dataclasses.replace(configured.scheduler, min_interval_seconds=30))
    with portal(relaxed) as session:
        assert len(jobs.add_job(session, relaxed, CONNECTOR, None, "30s", full=False)) == 1


@pytest.mark.parametrize(("first", "second"), [
    ((None, "1h"), (None, "60m")),
    (("0 6 * * *", None), ("0  6 * * *", None)),
])
def test_an_identical_job_is_refused(configured: Settings, first: tuple[str | None, str | None],
                                     second: tuple[str | None, str | None]) -> None:
    with portal(configured) as session:
        (kept,) = jobs.add_job(session, configured, CONNECTOR, *first, full=False, nightly=False)
        with pytest.raises(jobs.DuplicateJob, match=f"job {kept.id} already runs sis"):
            jobs.add_job(session, configured, CONNECTOR, *second, full=False)
        assert len(jobs.add_job(session, configured, CONNECTOR, *second, full=True)) == 1  # a full run is another kind
        assert len(jobs.list_jobs(session)) == 2


def test_a_request_for_a_running_connector_stays_waiting_until_it_is_free(configured: Settings) -> None:
    with portal(configured) as session:
        request = jobs.request_run(session, configured, CONNECTOR, full=True, requested_by="test")
        assert jobs.claim_requests(session, busy={CONNECTOR}) == []
        assert [r.id for r in jobs.claim_requests(session, busy=set())] == [request]


def test_a_requested_or_scheduled_full_run_that_finds_a_run_going_is_kept_for_later(configured: Settings) -> None:
    from sync.locks import Lease, sync_lock_name
    from sync.scheduler import run_job

    with portal(configured) as session:
        request = jobs.request_run(session, configured, CONNECTOR, full=False, requested_by="test")
        jobs.claim_requests(session)
    engine = create_rw_engine(configured.portal.url)
    with Lease(engine, sync_lock_name(CONNECTOR), 60, holder="other-host:42"):
        assert run_job(str(configured.config_path), CONNECTOR, False, request).status == "busy"
        assert run_job(str(configured.config_path), CONNECTOR, True).status == "busy"  # the nightly full run
        assert run_job(str(configured.config_path), CONNECTOR, True).status == "busy"  # and again: one request is enough
        assert run_job(str(configured.config_path), CONNECTOR, False).status == "busy"  # an incremental one is just skipped
    engine.dispose()
    with portal(configured) as session:
        waiting = [(r.id, r.full, r.requested_by, r.result) for r in jobs.waiting_requests(session)]
    assert waiting == [(request, False, "test", "waiting: sync:sis is already running (held by other-host:42); "
                                                "try again when it ends"),
                       (request + 1, True, "scheduler", None)]

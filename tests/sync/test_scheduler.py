"""The scheduler process: CLI changes reach it, restarts keep its jobs, runs never overlap."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.db import create_rw_engine
from gateway.demo.sis import generate
from gateway.settings import Settings, load_settings

from .conftest import CONNECTOR, DEMO_TODAY


def gateway(settings: Settings, *args: str) -> dict[str, object]:
    result = subprocess.run([sys.executable, "-m", "gateway", "--config", str(settings.config_path), *args, "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_rw_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql))]
    except Exception:  # the job store's table may not exist yet
        return []
    finally:
        engine.dispose()


@pytest.fixture
def configured(instance: Settings, source: Path) -> Settings:
    """An instance whose config file names the demo SIS as connector ``sis``."""
    config = Path(str(instance.config_path))
    config.write_text(config.read_text() + f'\n[scheduler]\npoll_seconds = 0.5\nmin_interval_seconds = 1\n\n[[connectors]]\nname = "{CONNECTOR}"\n'
                      f'kind = "sql"\nurl = "sqlite:///{source}"\nmapping = "demo"\n')
    return load_settings(config, env={})


class SchedulerProcess:
    def __init__(self, settings: Settings, log: Path) -> None:
        self.log = log.open("a")
        self.process = subprocess.Popen([sys.executable, "-m", "gateway", "--config", str(settings.config_path), "scheduler"],
                                        stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=120)
        self.log.close()
        return code


@pytest.fixture
def start_scheduler(tmp_path: Path) -> Iterator[Callable[[Settings], SchedulerProcess]]:
    started: list[SchedulerProcess] = []

    def start(settings: Settings) -> SchedulerProcess:
        started.append(SchedulerProcess(settings, tmp_path / "scheduler.log"))
        return started[-1]

    yield start
    for scheduler in started:
        if scheduler.process.poll() is None:
            scheduler.process.kill()


def store_rows(settings: Settings) -> dict[str, object]:
    return dict(query(settings.portal.url, "SELECT id, next_run_time FROM apscheduler_jobs"))  # type: ignore[arg-type]


def test_pause_resume_and_run_now_from_the_cli_reach_the_running_scheduler(
    configured: Settings, start_scheduler: Callable[[Settings], SchedulerProcess]
) -> None:
    added = gateway(configured, "jobs", "add", CONNECTOR, "--every", "1h", "--no-nightly")
    job_id = added["added"][0]["id"]  # type: ignore[index]
    scheduler = start_scheduler(configured)
    key = f"sync-job-{job_id}"
    wait_for(lambda: store_rows(configured).get(key) is not None)
    gateway(configured, "jobs", "pause", str(job_id))
    wait_for(lambda: key in store_rows(configured) and store_rows(configured)[key] is None)
    gateway(configured, "jobs", "resume", str(job_id))
    wait_for(lambda: store_rows(configured).get(key) is not None)
    request = gateway(configured, "jobs", "run-now", CONNECTOR)["request_id"]
    wait_for(lambda: bool(query(configured.portal.url,
                                f"SELECT 1 FROM sync_run_requests WHERE id = {request} AND finished_at IS NOT NULL")), 60)
    (result,) = query(configured.portal.url, f"SELECT result FROM sync_run_requests WHERE id = {request}")
    assert str(result[0]).endswith("succeeded")
    assert query(configured.replica.url, "SELECT status FROM sync_runs") == [("succeeded",)]
    assert scheduler.stop() == 0


def test_a_restart_neither_duplicates_nor_loses_jobs(
    configured: Settings, start_scheduler: Callable[[Settings], SchedulerProcess]
) -> None:
    added = gateway(configured, "jobs", "add", CONNECTOR, "--every", "6h")  # also adds the nightly full run
    assert [job["trigger"] for job in added["added"]] == ["interval", "cron"]  # type: ignore[index, union-attr]
    first = start_scheduler(configured)
    wait_for(lambda: len(store_rows(configured)) == 2)
    before = store_rows(configured)
    assert first.stop() == 0
    second = start_scheduler(configured)
    time.sleep(2)  # several polls
    assert store_rows(configured) == before  # same ids, same next run times
    gateway(configured, "jobs", "remove", str(added["added"][0]["id"]))  # type: ignore[index]
    wait_for(lambda: len(store_rows(configured)) == 1)
    assert second.stop() == 0
    assert list(store_rows(configured)) == [f"sync-job-{added['added'][1]['id']}"]  # type: ignore[index]


def test_a_job_every_second_never_overlaps_itself(
    configured: Settings, start_scheduler: Callable[[Settings], SchedulerProcess], tmp_path: Path
) -> None:
    # A source large enough that each full run takes longer than the one-second interval.
    big = Path(configured.connectors[0].options["url"].removeprefix("sqlite:///"))
    big.unlink()
    engine = create_rw_engine(f"sqlite:///{big}")
    generate(engine, students=500, seed=4, today=DEMO_TODAY)
    engine.dispose()
    gateway(configured, "jobs", "add", CONNECTOR, "--every", "1s", "--full", "--no-nightly")
    scheduler = start_scheduler(configured)
    wait_for(lambda: len(query(configured.replica.url, "SELECT 1 FROM sync_runs WHERE status = 'succeeded'")) >= 3, 120)
    assert scheduler.stop() == 0
    runs = query(configured.replica.url, "SELECT started_at, finished_at, status FROM sync_runs ORDER BY id")
    assert all(status == "succeeded" for _, _, status in runs)
    durations = [_seconds(finished) - _seconds(started) for started, finished, _ in runs]
    assert max(durations) > 1.0  # runs outlast the interval, so overlap was really possible
    for (_, finished, _), (started, _, _) in zip(runs, runs[1:], strict=False):
        assert _seconds(finished) <= _seconds(started)  # each run began after the one before it ended
    assert "maximum number of running instances reached" in (tmp_path / "scheduler.log").read_text()


def _seconds(stamp: object) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(str(stamp)).timestamp()


def _utc(stamp: object) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(str(stamp)).replace(tzinfo=dt.timezone.utc).timestamp()


def next_run_at(settings: Settings, job_id: object) -> object:
    rows = query(settings.portal.url, f"SELECT next_run_at FROM sync_jobs WHERE id = {job_id}")
    return rows[0][0] if rows else None


def last_polls(settings: Settings) -> list[tuple[object, ...]]:
    return query(settings.portal.url, "SELECT last_poll_at, stopped_at FROM scheduler_heartbeats")


def messages(log: Path) -> list[str]:
    """The scheduler's log lines without their time stamps ("LEVEL logger: message")."""
    return [line.split(" ", 2)[2] for line in log.read_text().splitlines() if line[:2] == "20"]


def test_each_jobs_next_run_time_is_written_onto_its_row_and_a_heartbeat_at_each_poll(
    configured: Settings, start_scheduler: Callable[[Settings], SchedulerProcess]
) -> None:
    job_id = gateway(configured, "jobs", "add", CONNECTOR, "--every", "1h", "--no-nightly")["added"][0]["id"]  # type: ignore[index]
    started = time.time()
    scheduler = start_scheduler(configured)
    wait_for(lambda: next_run_at(configured, job_id) is not None)
    assert started + 3600 - 5 < _utc(next_run_at(configured, job_id)) < started + 3600 + 60
    assert _utc(next_run_at(configured, job_id)) == pytest.approx(store_rows(configured)[f"sync-job-{job_id}"], abs=0.001)
    ((first, stopped),) = last_polls(configured)
    assert stopped is None
    wait_for(lambda: _utc(last_polls(configured)[0][0]) > _utc(first) + 1)  # it keeps beating
    gateway(configured, "jobs", "pause", str(job_id))
    wait_for(lambda: next_run_at(configured, job_id) is None)  # paused: no next run
    assert scheduler.stop() == 0
    ((_, stopped),) = last_polls(configured)
    assert stopped is not None  # a clean stop says so, and the console shows it stopped


def test_a_run_now_that_finds_a_run_going_is_kept_and_runs_after_it(
    configured: Settings, start_scheduler: Callable[[Settings], SchedulerProcess], tmp_path: Path
) -> None:
    from sync.locks import Lease, sync_lock_name

    scheduler = start_scheduler(configured)
    wait_for(lambda: bool(last_polls(configured)))
    portal = create_rw_engine(configured.portal.url)
    going = Lease(portal, sync_lock_name(CONNECTOR), ttl_seconds=300)  # another process's run of sis
    going.acquire()
    request = gateway(configured, "jobs", "run-now", CONNECTOR, "--full")["request_id"]
    time.sleep(3)  # six polls while the other run goes on
    assert query(configured.portal.url, f"SELECT finished_at FROM sync_run_requests WHERE id = {request}") == [(None,)]
    assert query(configured.replica.url, "SELECT count(*) FROM sync_runs") == [(0,)]
    going.release()
    portal.dispose()
    wait_for(lambda: bool(query(configured.portal.url,
                                f"SELECT 1 FROM sync_run_requests WHERE id = {request} AND finished_at IS NOT NULL")), 60)
    assert scheduler.stop() == 0
    (result,) = query(configured.portal.url, f"SELECT result FROM sync_run_requests WHERE id = {request}")
    assert str(result[0]) == "run 1 succeeded"
    assert query(configured.replica.url, "SELECT mode, status FROM sync_runs") == [("full", "succeeded")]
    assert sum("waits for the run under way" in line for line in messages(tmp_path / "scheduler.log")) == 1


def test_the_log_says_what_happened_and_is_silent_between_events(
    configured: Settings, start_scheduler: Callable[[Settings], SchedulerProcess], tmp_path: Path
) -> None:
    job_id = gateway(configured, "jobs", "add", CONNECTOR, "--every", "1h", "--no-nightly")["added"][0]["id"]  # type: ignore[index]
    scheduler = start_scheduler(configured)
    wait_for(lambda: next_run_at(configured, job_id) is not None)
    time.sleep(3)  # six quiet polls
    gateway(configured, "jobs", "pause", str(job_id))
    wait_for(lambda: next_run_at(configured, job_id) is None)
    time.sleep(1)
    assert scheduler.stop() == 0
    assert messages(tmp_path / "scheduler.log") == [
        "INFO gateway.scheduler: scheduler started (poll every 0.5s)",
        f"INFO gateway.scheduler: job {job_id} scheduled: sis interval 1h",
        f"INFO gateway.scheduler: job {job_id} paused",
        "INFO gateway.scheduler: stopping: waiting for the run under way, if any",
        "INFO gateway.scheduler: scheduler stopped",
    ]


def test_a_locked_portal_database_costs_polls_not_a_traceback(
    configured: Settings, start_scheduler: Callable[[Settings], SchedulerProcess], tmp_path: Path
) -> None:
    import sqlite3

    scheduler = start_scheduler(configured)
    wait_for(lambda: bool(last_polls(configured)))
    locker = sqlite3.connect(configured.portal.url.removeprefix("sqlite:///"), isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # e.g. a long write by another process
    time.sleep(10)  # a poll waits 2 s for the lock, then the next one comes: three or four refused
    locker.execute("ROLLBACK")
    locker.close()
    released = time.time()
    wait_for(lambda: _utc(last_polls(configured)[0][0]) > released)  # the next poll gets through
    assert scheduler.stop() == 0
    log = (tmp_path / "scheduler.log").read_text()
    assert "Traceback" not in log and "database is locked\n" not in log
    lines = messages(tmp_path / "scheduler.log")
    assert [line for line in lines if line.startswith("WARNING")] == [
        "WARNING gateway.scheduler: the portal database refused 3 polls in a row (database is locked); still retrying"]
    assert any(line.startswith("INFO gateway.scheduler: the portal database answers again after") for line in lines)


def test_a_job_row_whose_schedule_cannot_be_read_is_said_once_and_the_others_still_run(
    configured: Settings, start_scheduler: Callable[[Settings], SchedulerProcess], tmp_path: Path
) -> None:
    good = gateway(configured, "jobs", "add", CONNECTOR, "--every", "1h", "--no-nightly")["added"][0]["id"]  # type: ignore[index]
    engine = create_rw_engine(configured.portal.url)
    with engine.begin() as connection:  # as an older version, or a hand-edit, might have left it
        connection.execute(text("INSERT INTO sync_jobs (connector, trigger, expression, full, paused, created_at, updated_at) "
                                "VALUES ('sis', 'cron', '99 * * * *', 0, 0, '2026-12-01 00:00:00', '2026-12-01 00:00:00')"))
    engine.dispose()
    scheduler = start_scheduler(configured)
    wait_for(lambda: next_run_at(configured, good) is not None)
    time.sleep(2)  # four more polls
    assert scheduler.stop() == 0
    warnings = [line for line in messages(tmp_path / "scheduler.log") if line.startswith("WARNING")]
    assert len(warnings) == 1 and warnings[0].startswith(f"WARNING gateway.scheduler: job {good + 1} is not scheduled: "
                                                         "--cron '99 * * * *' is not a crontab expression")

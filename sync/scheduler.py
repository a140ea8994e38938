"""The scheduler process: APScheduler, reconciled from the job definitions in the portal DB.

Exactly one of these runs per deployment, never inside the web app. Every few seconds it
reads the job definitions and run-now requests that the CLI and the IT console wrote,
reconciles its own jobs (fixed ids, replaced only when a definition changed), writes each
job's next run time onto the job's row and a heartbeat row saying it looked. APScheduler's
SQLAlchemy job store keeps next run times across restarts; ``coalesce``, ``max_instances=1``
and a misfire grace time in minutes (the library's default of one second would silently
skip late syncs). Runs of one connector never overlap, whichever job starts them: the
engine's lease refuses the second; a run-now request (or a scheduled full run) that finds
one going waits and runs after it. A locked or unreachable portal database costs a poll,
not a traceback: the next poll tries again, and one line says so if it lasts.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from gateway.db import create_rw_engine, session_factory
from gateway.portal import alerts, heartbeat, jobs
from gateway.replica.dbtypes import utcnow
from gateway.replica.freshness import last_successes
from gateway.replica.tables import SyncRun
from gateway.settings import Settings, load_settings

from sync.locks import new_holder, running_connectors
from sync.runner import RunResult, run_sync

JOB_PREFIX = "sync-job-"  # the scheduler's own ids: nothing outside this module knows them
CONTROL = "control"  # run-now jobs live in memory: their request rows are what persists
POLL_BUSY_TIMEOUT_MS = 2_000
WARN_AFTER_FAILED_POLLS = 3
log = logging.getLogger("gateway.scheduler")


def run_job(config_path: str, connector: str, full: bool, request_id: int | None = None,
            allow_shrink: bool = False) -> RunResult:
    """One scheduled or requested run (module-level: the job store keeps a reference to it)."""
    settings = load_settings(config_path)
    mode = "full" if full else "incremental"
    log.info("sync %s (%s) starting%s", connector, mode, f" (request {request_id})" if request_id else "")
    result = run_sync(settings, connector, full=full, allow_shrink=allow_shrink)
    if result.status == "busy" and (request_id is not None or full):
        _run_later(settings, result, request_id, allow_shrink)
        return result
    if result.status == "busy":  # an incremental run: the next one picks up whatever changed meanwhile
        log.info("sync %s (%s) skipped: %s", connector, mode, result.error)
        return result
    log.info("sync %s (%s): %s", connector, mode, result.summary())
    for warning in result.warnings:
        log.warning("sync %s (%s): %s", connector, mode, warning)
    _after_run(settings, result, request_id)
    return result


def _run_later(settings: Settings, result: RunResult, request_id: int | None, allow_shrink: bool) -> None:
    """A requested run, or a scheduled full run, found a run going: it runs after that one, never dropped."""
    with _portal(settings) as session:
        if request_id is None:
            if any(r.connector == result.connector and r.full for r in jobs.waiting_requests(session)):
                return  # a full run of it is already waiting; one is enough
            request_id = jobs.request_run(session, settings, result.connector, True, "scheduler", allow_shrink)
        else:
            jobs.requeue_request(session, request_id, result.summary())
    log.info("sync %s (%s) waits for the run under way (request %s)", result.connector, result.mode, request_id)


def _after_run(settings: Settings, result: RunResult, request_id: int | None) -> None:
    with _portal(settings) as session:
        if request_id is not None:
            jobs.finish_request(session, request_id, result.summary())
        if result.succeeded:
            alerts.resolve(session, "sync_failed", result.connector)
            alerts.resolve(session, "stale_data", result.connector)
        elif result.status == "failed":
            failures = consecutive_failures(settings, result.connector)
            if failures >= settings.sync.alert_after_failures:
                alerts.raise_alert(session, settings, "it", "sync_failed", result.connector,
                                   f"{failures} runs of {result.connector} failed in a row. The last: {result.error}")


@contextmanager
def _portal(settings: Settings) -> Iterator[Session]:
    engine = create_rw_engine(settings.portal.url)
    try:
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def consecutive_failures(settings: Settings, connector: str) -> int:
    engine = create_rw_engine(settings.replica.url)
    with session_factory(engine)() as session:
        statuses = session.scalars(select(SyncRun.status).where(SyncRun.connector == connector)
                                   .order_by(SyncRun.id.desc()).limit(50)).all()
    engine.dispose()
    count = 0
    for status in statuses:
        if status != "failed":
            break
        count += 1
    return count


def trigger_for(job: jobs.JobView, timezone: str) -> BaseTrigger:
    if job.trigger == "cron":
        return jobs.cron_trigger(job.expression, timezone)
    return IntervalTrigger(seconds=jobs.parse_every(job.expression), timezone=timezone)


def _short_busy_timeout(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={POLL_BUSY_TIMEOUT_MS}")
    cursor.close()


class GatewayScheduler:
    """Owns the APScheduler instance; only it touches the job store."""

    def __init__(self, settings: Settings, config_path: str) -> None:
        self.settings, self.config_path = settings, config_path
        self.holder = new_holder()
        poll_engine = create_rw_engine(settings.portal.url)
        if poll_engine.dialect.name == "sqlite":  # a locked portal delays a poll, never stalls the loop
            event.listen(poll_engine, "connect", _short_busy_timeout)
        self.portal = session_factory(poll_engine)
        self.replica = session_factory(create_rw_engine(settings.replica.url))
        self.last_staleness_check = 0.0
        self.failed_polls = 0
        self.waiting: set[int] = set()  # requests already said to wait, so the log says it once
        self.unusable: set[int] = set()  # jobs whose schedule cannot be read, said once
        self.stopping = threading.Event()
        store = SQLAlchemyJobStore(engine=create_rw_engine(settings.portal.url))
        self.scheduler = BackgroundScheduler(
            jobstores={"default": store, CONTROL: MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": settings.scheduler.misfire_grace_minutes * 60},
            timezone=settings.district.timezone,
        )

    def run(self) -> None:
        """Poll until SIGTERM or SIGINT; the run under way then finishes before exit."""
        # APScheduler says "running job" and "executed" at every run: our own lines say what happened.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        for sign in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sign, self._stop)
        with self.portal() as session:
            heartbeat.started(session, self.holder)
        self.scheduler.start()
        log.info("scheduler started (poll every %ss)", self.settings.scheduler.poll_seconds)
        while not self.stopping.is_set():
            self.poll()
            self.stopping.wait(self.settings.scheduler.poll_seconds)
        log.info("stopping: waiting for the run under way, if any")
        self.scheduler.shutdown(wait=True)
        self._quietly(lambda session: heartbeat.stopped(session, self.holder))
        log.info("scheduler stopped")

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping.set()

    def poll(self) -> None:
        """Read the definitions and requests, write next run times and the heartbeat."""
        self._quietly(self._poll_once)

    def _poll_once(self, session: Session) -> None:
        self.reconcile(session)
        self.start_requests(session)
        jobs.record_next_runs(session, self.next_runs())
        heartbeat.beat(session, self.holder)
        self.check_staleness(session)

    def _quietly(self, step: Callable[[Session], None]) -> None:
        """Run ``step``; a locked or unreachable database is retried at the next poll, said once if it lasts."""
        try:
            with self.portal() as session:
                step(session)
        except OperationalError as error:
            self.failed_polls += 1
            if self.failed_polls == WARN_AFTER_FAILED_POLLS:
                log.warning("the portal database refused %d polls in a row (%s); still retrying",
                            self.failed_polls, str(error.orig).splitlines()[0])
            return
        except Exception:  # a bug: said with its traceback, and the scheduler keeps polling
            log.exception("a poll failed; the next one tries again")
            return
        if self.failed_polls >= WARN_AFTER_FAILED_POLLS:
            log.info("the portal database answers again after %d refused polls", self.failed_polls)
        self.failed_polls = 0

    def reconcile(self, session: Session) -> None:
        wanted = {f"{JOB_PREFIX}{job.id}": job for job in jobs.list_jobs(session)}
        for existing in self.scheduler.get_jobs(jobstore="default"):
            if existing.id not in wanted:
                log.info("job %s removed", existing.id.removeprefix(JOB_PREFIX))
                existing.remove()
        for job_id, job in wanted.items():
            try:
                self._ensure(job_id, job)
            except jobs.JobError as refused:  # a row written by hand or by an older version
                if job.id not in self.unusable:
                    log.warning("job %s is not scheduled: %s", job.id, refused)
                self.unusable.add(job.id)
            else:
                self.unusable.discard(job.id)

    def _ensure(self, job_id: str, job: jobs.JobView) -> None:
        trigger = trigger_for(job, self.settings.district.timezone)
        args = [self.config_path, job.connector, job.full]
        existing = self.scheduler.get_job(job_id, jobstore="default")
        if existing is None or str(existing.trigger) != str(trigger) or list(existing.args) != args:
            log.info("job %s scheduled: %s %s %s%s", job.id, job.connector, job.trigger, job.expression,
                     " (full)" if job.full else "")
            existing = self.scheduler.add_job(run_job, trigger, args=args, id=job_id, jobstore="default",
                                              replace_existing=True, name=f"sync {job.connector} {job.expression}")
        if job.paused and existing.next_run_time is not None:
            log.info("job %s paused", job.id)
            self.scheduler.pause_job(job_id, jobstore="default")
        elif not job.paused and existing.next_run_time is None:
            log.info("job %s resumed", job.id)
            self.scheduler.resume_job(job_id, jobstore="default")

    def next_runs(self) -> dict[int, dt.datetime | None]:
        return {int(job.id.removeprefix(JOB_PREFIX)): job.next_run_time
                for job in self.scheduler.get_jobs(jobstore="default")}

    def start_requests(self, session: Session) -> None:
        busy = running_connectors(session)
        for request in jobs.waiting_requests(session):
            if request.connector in busy and request.id not in self.waiting:
                self.waiting.add(request.id)
                log.info("request %s (%s run of %s) waits for the run under way", request.id,
                         "full" if request.full else "incremental", request.connector)
        for request in jobs.claim_requests(session, busy):
            self.waiting.discard(request.id)
            self.scheduler.add_job(run_job, "date", run_date=utcnow(), id=f"run-now-{request.id}",
                                   args=[self.config_path, request.connector, request.full, request.id,
                                         request.allow_shrink],
                                   jobstore=CONTROL, misfire_grace_time=None)

    def check_staleness(self, session: Session) -> None:
        """Once a minute: alert IT about connectors whose data is older than the policy allows."""
        if time.monotonic() - self.last_staleness_check < 60:
            return
        self.last_staleness_check = time.monotonic()
        limit_hours = self.settings.policy.stale_after_hours
        with self.replica() as replica_session:
            latest = {run.connector: run for run in last_successes(replica_session)}
        now = utcnow()
        for entry in self.settings.connectors:
            run = latest.get(entry.name)
            if run is not None and (now - (run.finished_at or run.started_at)).total_seconds() > limit_hours * 3600:
                alerts.raise_alert(session, self.settings, "it", "stale_data", entry.name,
                                   f"{entry.name} was last synced successfully at {run.finished_at:%Y-%m-%d %H:%M} UTC, "
                                   f"more than {limit_hours} hours ago")

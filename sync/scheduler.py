"""The scheduler process: APScheduler, reconciled from the job definitions in the portal DB.

Exactly one of these runs per deployment, never inside the web app. Every few seconds it
reads the job definitions and run-now requests that the CLI and the IT console wrote, and
reconciles its own jobs (fixed ids, replaced only when a definition changed). APScheduler's
SQLAlchemy job store keeps next run times across restarts; ``coalesce``, ``max_instances=1``
and a misfire grace time in minutes (the library's default of one second would silently
skip late syncs). Runs of one connector never overlap, whichever job starts them: the
engine's lease refuses the second.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.portal import alerts, jobs
from gateway.db import create_rw_engine, session_factory
from gateway.replica.dbtypes import utcnow
from gateway.errors import GatewayError, LockHeld
from gateway.replica.freshness import last_successes
from gateway.replica.tables import SyncRun
from gateway.settings import Settings, load_settings

from connectors import registry
from sync.engine import record_failed_attempt, run_sync

JOB_PREFIX = "sync-job-"
log = logging.getLogger("gateway.scheduler")


def run_job(config_path: str, connector: str, full: bool, request_id: int | None = None, allow_shrink: bool = False) -> str:
    """One scheduled or requested run (module-level: the job store keeps a reference to it)."""
    settings = load_settings(config_path)
    mode = "full" if full else "incremental"
    try:
        entry = settings.connector(connector)
        try:
            built = registry.build(entry, settings)
        except GatewayError as error:  # the source cannot even be opened: still a failed run
            record_failed_attempt(settings, connector, entry.source_system, mode, str(error))
            raise
        try:
            result = run_sync(settings, built, mode, allow_shrink)
        finally:
            built.close()
        outcome = f"run {result.run_id} succeeded"
    except LockHeld as held:
        outcome = f"skipped: {held}"
    except GatewayError as error:
        outcome = f"failed: {error}"
    log.info("sync %s (%s): %s", connector, "full" if full else "incremental", outcome)
    _after_run(settings, connector, outcome, request_id)
    return outcome


def _after_run(settings: Settings, connector: str, outcome: str, request_id: int | None) -> None:
    engine = create_rw_engine(settings.portal.url)
    with session_factory(engine)() as session:
        if request_id is not None:
            jobs.finish_request(session, request_id, outcome)
        if outcome.startswith("run "):
            alerts.resolve(session, "sync_failed", connector)
            alerts.resolve(session, "stale_data", connector)
        elif outcome.startswith("failed"):
            failures = consecutive_failures(settings, connector)
            if failures >= settings.sync.alert_after_failures:
                alerts.raise_alert(session, settings, "it", "sync_failed", connector,
                                   f"{failures} runs of {connector} failed in a row. The last: {outcome}")
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
        return CronTrigger.from_crontab(job.expression, timezone=timezone)
    return IntervalTrigger(seconds=jobs.parse_every(job.expression), timezone=timezone)


class GatewayScheduler:
    """Owns the APScheduler instance; only it touches the job store."""

    def __init__(self, settings: Settings, config_path: str) -> None:
        self.settings, self.config_path = settings, config_path
        self.portal = session_factory(create_rw_engine(settings.portal.url))
        self.replica = session_factory(create_rw_engine(settings.replica.url))
        self.last_staleness_check = 0.0
        store = SQLAlchemyJobStore(engine=create_rw_engine(settings.portal.url))
        self.scheduler = BlockingScheduler(
            jobstores={"default": store, "control": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": settings.scheduler.misfire_grace_minutes * 60},
            timezone=settings.district.timezone,
        )

    def run(self) -> None:
        """Block until SIGTERM or SIGINT; the run under way then finishes before exit."""
        self.scheduler.add_job(self.poll, "interval", seconds=self.settings.scheduler.poll_seconds, id="poll",
                               jobstore="control", next_run_time=utcnow())
        for sign in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sign, self._stop)
        log.info("scheduler started (poll every %ss)", self.settings.scheduler.poll_seconds)
        self.scheduler.start()
        log.info("scheduler stopped")

    def _stop(self, signum: int, frame: Any) -> None:
        log.info("stopping: waiting for the run under way, if any")
        self.scheduler.shutdown(wait=False)

    def poll(self) -> None:
        with self.portal() as session:
            self.reconcile(session)
            self.start_requests(session)
            self.check_staleness(session)

    def reconcile(self, session: Session) -> None:
        wanted = {f"{JOB_PREFIX}{job.id}": job for job in jobs.list_jobs(session)}
        for existing in self.scheduler.get_jobs(jobstore="default"):
            if existing.id not in wanted:
                log.info("removing job %s", existing.id)
                existing.remove()
        for job_id, job in wanted.items():
            self._ensure(job_id, job)

    def _ensure(self, job_id: str, job: jobs.JobView) -> None:
        trigger = trigger_for(job, self.settings.district.timezone)
        args = [self.config_path, job.connector, job.full]
        existing = self.scheduler.get_job(job_id, jobstore="default")
        if existing is None or str(existing.trigger) != str(trigger) or list(existing.args) != args:
            log.info("scheduling %s: %s %s %s", job_id, job.connector, job.expression, "full" if job.full else "")
            existing = self.scheduler.add_job(run_job, trigger, args=args, id=job_id, jobstore="default",
                                              replace_existing=True, name=f"sync {job.connector} {job.expression}")
        if job.paused and existing.next_run_time is not None:
            self.scheduler.pause_job(job_id, jobstore="default")
        elif not job.paused and existing.next_run_time is None:
            self.scheduler.resume_job(job_id, jobstore="default")

    def start_requests(self, session: Session) -> None:
        for request in jobs.claim_requests(session):
            self.scheduler.add_job(run_job, "date", run_date=utcnow(), id=f"run-now-{request.id}", jobstore="control",
                                   args=[self.config_path, request.connector, request.full, request.id, request.allow_shrink],
                                   misfire_grace_time=None)

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

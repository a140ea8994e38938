"""Sync job definitions and run-now requests: what the CLI and the IT console write.

Only the scheduler process turns these rows into scheduled jobs, and it writes each job's
next run time back onto the job's row (so pages never read the scheduler's own store);
nothing here runs a sync.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.db import rowcount
from gateway.replica.dbtypes import utcnow
from gateway.errors import GatewayError
from gateway.portal.models import SyncJob, SyncRunRequest
from gateway.settings import Settings

DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class JobError(GatewayError):
    """A job definition or request was refused; subclasses keep what pages need to say why."""

    exit_code = 2


class BadSchedule(JobError):
    """``schedule`` is not a duration (``kind`` interval) or not a crontab expression (``kind`` cron)."""

    def __init__(self, schedule: str, kind: str, detail: str = "") -> None:
        self.schedule, self.kind, self.detail = schedule, kind, detail
        if kind == "cron":
            super().__init__(f"--cron {schedule!r} is not a crontab expression ({detail}); write e.g. '30 2 * * *'")
        else:
            super().__init__(f"--every {schedule!r} is not a duration; write e.g. 30s, 15m, 2h or 1d")


class TooOften(JobError):
    """The schedule would run the job more often than ``[scheduler] min_interval_seconds``."""

    def __init__(self, schedule: str, seconds: int, minimum: int) -> None:
        self.schedule, self.seconds, self.minimum = schedule, seconds, minimum
        super().__init__(f"{schedule!r} runs every {seconds}s, more often than the {minimum}s minimum; "
                         "choose a longer interval, or lower [scheduler] min_interval_seconds")


class DuplicateJob(JobError):
    """An identical job (same connector, schedule and kind of run) exists already."""

    def __init__(self, existing: int, connector: str, schedule: str) -> None:
        self.existing, self.connector, self.schedule = existing, connector, schedule
        super().__init__(f"job {existing} already runs {connector} on {schedule!r} the same way; "
                         "see gateway jobs list")


class NoSuchJob(JobError):
    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"there is no job {job_id}; see gateway jobs list")


def parse_every(text: str) -> int:
    """``90s``, ``15m``, ``2h`` or ``1d`` in seconds."""
    match = DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise BadSchedule(text, "interval")
    return int(match.group(1)) * UNIT_SECONDS[match.group(2)]


def read_schedule(text: str) -> tuple[str | None, str | None]:
    """One typed schedule as ``(cron, every)``: a duration (``15m``, ``15 m``) or else a crontab expression."""
    text = text.strip()
    if DURATION.match(text) or " " not in text:
        return None, text
    return text, None


def cron_trigger(expression: str, timezone: str) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(expression, timezone=timezone)
    except ValueError as exc:
        raise BadSchedule(expression, "cron", str(exc)) from None


def check_cron(expression: str, timezone: str) -> None:
    cron_trigger(expression, timezone)


def shortest_cron_gap(expression: str, timezone: str, below: int) -> int | None:
    """The shortest gap in seconds between two firings over the coming week, if one is under ``below``.

    A week covers every weekday; a schedule that is sparse most of the day but dense
    for an hour (``*/1 6 * * *``) is caught as well.
    """
    trigger = cron_trigger(expression, timezone)
    previous = trigger.get_next_fire_time(None, utcnow())
    end = utcnow() + dt.timedelta(days=7)
    while previous is not None and previous < end:
        following = trigger.get_next_fire_time(previous, previous)  # strictly after ``previous``
        if following is None:
            return None
        gap = int((following - previous).total_seconds())
        if gap < below:
            return gap
        previous = following
    return None


@dataclass(frozen=True)
class JobView:
    id: int
    connector: str
    trigger: str
    expression: str
    full: bool
    paused: bool
    next_run_at: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def add_job(session: Session, settings: Settings, connector: str, cron: str | None, every: str | None,
            full: bool, nightly: bool = True) -> list[JobView]:
    """Add a job (and, for a connector's first job, a nightly full run unless told not to)."""
    settings.connector(connector)  # an unknown connector is refused, naming the configured ones
    if (cron is None) == (every is None):
        raise JobError("give exactly one of --cron EXPR or --every DURATION")
    first = session.scalars(select(SyncJob.id).where(SyncJob.connector == connector)).first() is None
    added = [_add(session, settings, connector, "cron" if cron else "interval", cron or every or "", full)]
    if first and nightly and not (cron == settings.scheduler.nightly_full_cron and full):
        added.append(_add(session, settings, connector, "cron", settings.scheduler.nightly_full_cron, True))
    session.commit()
    return added


def _add(session: Session, settings: Settings, connector: str, trigger: str, expression: str, full: bool) -> JobView:
    expression = " ".join(expression.split())
    _check_often(settings, trigger, expression)
    for other in session.scalars(select(SyncJob).where(SyncJob.connector == connector, SyncJob.trigger == trigger,
                                                       SyncJob.full == full)):
        if _same_schedule(trigger, other.expression, expression):
            raise DuplicateJob(other.id, connector, expression)
    job = SyncJob(connector=connector, trigger=trigger, expression=expression, full=full)
    session.add(job)
    session.flush()
    return view(job)


def _check_often(settings: Settings, trigger: str, expression: str) -> None:
    """Refuse a bad schedule, or one that would run more often than the configured minimum."""
    minimum = settings.scheduler.min_interval_seconds
    if trigger == "cron":
        gap = shortest_cron_gap(expression, settings.district.timezone, minimum)
    else:
        gap = parse_every(expression)
        gap = gap if gap < minimum else None
    if gap is not None:
        raise TooOften(expression, gap, minimum)


def _same_schedule(trigger: str, one: str, other: str) -> bool:
    if trigger == "interval":
        return parse_every(one) == parse_every(other)  # 60m is 1h
    return " ".join(one.split()) == " ".join(other.split())


def view(job: SyncJob) -> JobView:
    return JobView(job.id, job.connector, job.trigger, job.expression, job.full, job.paused, job.next_run_at)


def list_jobs(session: Session) -> list[JobView]:
    return [view(job) for job in session.scalars(select(SyncJob).order_by(SyncJob.id))]


def _job(session: Session, job_id: int) -> SyncJob:
    job = session.get(SyncJob, job_id)
    if job is None:
        raise NoSuchJob(job_id)
    return job


def get_job(session: Session, job_id: int) -> JobView:
    return view(_job(session, job_id))


def remove_job(session: Session, job_id: int) -> None:
    session.delete(_job(session, job_id))
    session.commit()


def set_paused(session: Session, job_id: int, paused: bool) -> JobView:
    job = _job(session, job_id)
    job.paused, job.updated_at = paused, utcnow()
    session.commit()
    return view(job)


def request_run(session: Session, settings: Settings, connector: str, full: bool, requested_by: str,
                allow_shrink: bool = False) -> int:
    settings.connector(connector)
    request = SyncRunRequest(connector=connector, full=full, allow_shrink=allow_shrink, requested_by=requested_by)
    session.add(request)
    session.commit()
    return request.id


def waiting_requests(session: Session) -> list[SyncRunRequest]:
    return list(session.scalars(select(SyncRunRequest).where(SyncRunRequest.claimed_at.is_(None))
                                .order_by(SyncRunRequest.id)))


def claim_requests(session: Session, busy: Collection[str] = ()) -> list[SyncRunRequest]:
    """Take the waiting run-now requests; each is claimed by exactly one scheduler.

    Requests for a connector in ``busy`` (a run of it is going) stay waiting, to be
    claimed at a later poll once that run has ended: a request is never dropped.
    """
    claimed = []
    for request in waiting_requests(session):
        if request.connector in busy:
            continue
        won = rowcount(session.execute(update(SyncRunRequest).where(SyncRunRequest.id == request.id,
                                                                    SyncRunRequest.claimed_at.is_(None))
                                       .values(claimed_at=utcnow())))
        session.commit()
        if won:
            claimed.append(request)
    return claimed


def requeue_request(session: Session, request_id: int, reason: str) -> None:
    """Put a claimed request back: it found a run of its connector going, and runs after it."""
    session.execute(update(SyncRunRequest).where(SyncRunRequest.id == request_id)
                    .values(claimed_at=None, result=reason[:255]))
    session.commit()


def record_next_runs(session: Session, next_runs: Mapping[int, dt.datetime | None]) -> None:
    """The scheduler's next run time of each job, onto the job's own row (only where it changed)."""
    for job in session.scalars(select(SyncJob).where(SyncJob.id.in_(list(next_runs)))):
        if job.next_run_at != next_runs[job.id]:
            job.next_run_at = next_runs[job.id]
    session.commit()


def finish_request(session: Session, request_id: int, result: str) -> None:
    session.execute(update(SyncRunRequest).where(SyncRunRequest.id == request_id)
                    .values(finished_at=utcnow(), result=result[:255]))
    session.commit()

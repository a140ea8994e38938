"""Sync job definitions and run-now requests: what the CLI and the IT console write.

Only the scheduler process turns these rows into scheduled jobs; nothing here runs a sync.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.replica.dbtypes import utcnow
from gateway.errors import GatewayError
from gateway.portal.models import SyncJob, SyncRunRequest
from gateway.settings import Settings

DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class JobError(GatewayError):
    exit_code = 2


def parse_every(text: str) -> int:
    """``90s``, ``15m``, ``2h`` or ``1d`` in seconds."""
    match = DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise JobError(f"--every {text!r} is not a duration; write e.g. 30s, 15m, 2h or 1d")
    return int(match.group(1)) * UNIT_SECONDS[match.group(2)]


def check_cron(expression: str, timezone: str) -> None:
    try:
        CronTrigger.from_crontab(expression, timezone=timezone)
    except ValueError as exc:
        raise JobError(f"--cron {expression!r} is not a crontab expression ({exc}); write e.g. '30 2 * * *'") from None


@dataclass(frozen=True)
class JobView:
    id: int
    connector: str
    trigger: str
    expression: str
    full: bool
    paused: bool

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
    if trigger == "cron":
        check_cron(expression, settings.district.timezone)
    else:
        parse_every(expression)
    job = SyncJob(connector=connector, trigger=trigger, expression=expression.strip(), full=full)
    session.add(job)
    session.flush()
    return view(job)


def view(job: SyncJob) -> JobView:
    return JobView(job.id, job.connector, job.trigger, job.expression, job.full, job.paused)


def list_jobs(session: Session) -> list[JobView]:
    return [view(job) for job in session.scalars(select(SyncJob).order_by(SyncJob.id))]


def _job(session: Session, job_id: int) -> SyncJob:
    job = session.get(SyncJob, job_id)
    if job is None:
        raise JobError(f"there is no job {job_id}; see gateway jobs list")
    return job


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


def claim_requests(session: Session) -> list[SyncRunRequest]:
    """Take the waiting run-now requests; each is claimed by exactly one scheduler."""
    claimed = []
    for request in session.scalars(select(SyncRunRequest).where(SyncRunRequest.claimed_at.is_(None))).all():
        won = session.execute(update(SyncRunRequest).where(SyncRunRequest.id == request.id,
                                                           SyncRunRequest.claimed_at.is_(None))
                              .values(claimed_at=utcnow())).rowcount
        session.commit()
        if won:
            claimed.append(request)
    return claimed


def finish_request(session: Session, request_id: int, result: str) -> None:
    session.execute(update(SyncRunRequest).where(SyncRunRequest.id == request_id)
                    .values(finished_at=utcnow(), result=result[:255]))
    session.commit()

"""Is a scheduler alive? Each scheduler process writes a heartbeat row at every poll.

The row is the scheduler's own word that it looked at the job definitions and requests:
a page can say when it last did, and whether that is recent enough to call it alive
(a few polls' time, so one slow poll does not cry wolf).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from gateway.portal.models import SchedulerHeartbeat
from gateway.replica.dbtypes import utcnow

FORGET_AFTER = dt.timedelta(days=7)  # rows of schedulers gone this long tell IT nothing more
MIN_SILENCE = dt.timedelta(seconds=30)


@dataclass(frozen=True)
class SchedulerState:
    """The most recently heard scheduler, if any has ever reported."""

    alive: bool
    last_poll_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    stopped_at: dt.datetime | None = None
    running: int = 0  # schedulers heard from recently: more than one is a misconfiguration


def started(session: Session, holder: str) -> None:
    now = utcnow()
    session.execute(delete(SchedulerHeartbeat).where(SchedulerHeartbeat.last_poll_at < now - FORGET_AFTER))
    session.add(SchedulerHeartbeat(holder=holder, started_at=now, last_poll_at=now))
    session.commit()


def beat(session: Session, holder: str) -> None:
    session.execute(update(SchedulerHeartbeat).where(SchedulerHeartbeat.holder == holder).values(last_poll_at=utcnow()))
    session.commit()


def stopped(session: Session, holder: str) -> None:
    now = utcnow()
    session.execute(update(SchedulerHeartbeat).where(SchedulerHeartbeat.holder == holder)
                    .values(last_poll_at=now, stopped_at=now))
    session.commit()


def state(session: Session, poll_seconds: float, now: dt.datetime | None = None) -> SchedulerState:
    """Alive: a scheduler not stopped has polled within three polls (at least 30 seconds)."""
    now = now or utcnow()
    silence = max(MIN_SILENCE, dt.timedelta(seconds=3 * poll_seconds))
    rows = session.scalars(select(SchedulerHeartbeat).order_by(SchedulerHeartbeat.last_poll_at.desc())).all()
    live = [row for row in rows if row.stopped_at is None and now - row.last_poll_at <= silence]
    if not rows:
        return SchedulerState(alive=False)
    latest = live[0] if live else rows[0]
    return SchedulerState(bool(live), latest.last_poll_at, latest.started_at, latest.stopped_at, len(live))

"""How fresh the replica is: per table, when its data was last confirmed current."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.replica.tables import SyncRun


@dataclass(frozen=True)
class Freshness:
    table: str
    confirmed_at: dt.datetime
    stale: bool


def last_successes(session: Session) -> list[SyncRun]:
    """Each connector's latest successful run."""
    latest = (select(SyncRun.connector, func.max(SyncRun.id).label("id"))
              .where(SyncRun.status == "succeeded").group_by(SyncRun.connector).subquery())
    return list(session.scalars(select(SyncRun).join(latest, latest.c.id == SyncRun.id)))


def by_table(session: Session, now: dt.datetime, stale_after_hours: int) -> dict[str, Freshness]:
    """A table is as fresh as the oldest of the latest successful runs that feed it."""
    confirmed: dict[str, dt.datetime] = {}
    for run in last_successes(session):
        finished = run.finished_at or run.started_at
        for table in run.counts or {}:
            confirmed[table] = min(confirmed.get(table, finished), finished)
    limit = dt.timedelta(hours=stale_after_hours)
    return {table: Freshness(table, at, now - at > limit) for table, at in confirmed.items()}

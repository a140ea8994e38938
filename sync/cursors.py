"""Cursor rules, in one place (the Singer SDK's habit).

- A cursor is the largest modification time seen, never the clock.
- The next run reads from it minus a look-back window, with a closed lower bound; the
  duplicates that brings back are removed by key (they diff as unchanged).
- A cursor only moves forward, and only in the transaction that publishes the run.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, select

from gateway.dbtypes import utcnow
from gateway.replica import SyncCursor


def load(connection: Connection, connector: str) -> dict[str, dt.datetime]:
    rows = connection.execute(select(SyncCursor.stream, SyncCursor.value).where(SyncCursor.connector == connector))
    return {stream: dt.datetime.fromisoformat(value) for stream, value in rows}


def since(saved: dt.datetime | None, lookback_seconds: int) -> dt.datetime | None:
    return None if saved is None else saved - dt.timedelta(seconds=lookback_seconds)


def advance(current: dt.datetime | None, seen: dt.datetime | None) -> dt.datetime | None:
    if seen is None:
        return current
    return seen if current is None or seen > current else current


def save(connection: Connection, connector: str, stream: str, value: dt.datetime, run_id: int) -> None:
    table = SyncCursor.__table__
    stamp = value.astimezone(dt.timezone.utc).isoformat()
    updated = connection.execute(
        table.update().where(table.c.connector == connector, table.c.stream == stream)
        .values(value=stamp, value_kind="datetime", sync_run_id=run_id, updated_at=utcnow())
    ).rowcount
    if not updated:
        connection.execute(table.insert().values(connector=connector, stream=stream, value=stamp,
                                                 value_kind="datetime", sync_run_id=run_id, updated_at=utcnow()))

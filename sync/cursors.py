"""Cursor rules, in one place (the Singer SDK's habit).

- A cursor is the largest modification value seen (an aware UTC time, or an integer row
  version), never the clock.
- The next run reads from it, with a closed lower bound (times also go back a look-back
  window, for late commits); the duplicates that brings are removed by key (they diff as
  unchanged).
- A cursor only moves forward, and only in the transaction that publishes the run.
- A row whose cursor is NULL (the source gives no modification time) is read by every
  incremental run, as dlt's ``on_cursor_value_missing="include"``: it cannot be placed
  before or after the cursor, so leaving it out would lose it until a full run. It never
  moves the cursor, diffs as unchanged when it is, and each run counts such rows per table
  (``null_cursor`` in the run's counts), so a mapping producing many of them shows. The
  connector contract (``connectors.base.Connector.iter_records``) carries the rule to the
  sources; a mapping needs no ``COALESCE`` to keep such rows (it may still fall back from
  ``updated_at`` to ``created_at``, which is a better cursor, not a NULL guard).
"""

from __future__ import annotations

import datetime as dt
from typing import cast

from sqlalchemy import Connection, Table, select

from gateway.replica.dbtypes import utcnow
from gateway.replica.tables import SyncCursor


Value = dt.datetime | int


def load(connection: Connection, connector: str) -> dict[str, Value]:
    rows = connection.execute(select(SyncCursor.stream, SyncCursor.value, SyncCursor.value_kind)
                              .where(SyncCursor.connector == connector))
    return {stream: int(value) if kind == "integer" else dt.datetime.fromisoformat(value) for stream, value, kind in rows}


def since(saved: Value | None, lookback_seconds: int) -> Value | None:
    if saved is None or isinstance(saved, int):
        return saved
    return saved - dt.timedelta(seconds=lookback_seconds)


def advance(current: Value | None, seen: Value | None) -> Value | None:
    if seen is None:
        return current
    if current is not None and isinstance(seen, int) != isinstance(current, int):
        raise ValueError(f"a cursor cannot change kind (from {current!r} to {seen!r}); reset it with a full run")
    return seen if current is None or seen > current else current  # type: ignore[operator]


def save(connection: Connection, connector: str, stream: str, value: Value, run_id: int) -> None:
    table = cast(Table, SyncCursor.__table__)  # a mapped class's table is a Table
    kind = "integer" if isinstance(value, int) else "datetime"
    stamp = str(value) if isinstance(value, int) else value.astimezone(dt.timezone.utc).isoformat()
    updated = connection.execute(
        table.update().where(table.c.connector == connector, table.c.stream == stream)
        .values(value=stamp, value_kind=kind, sync_run_id=run_id, updated_at=utcnow())
    ).rowcount
    if not updated:
        connection.execute(table.insert().values(connector=connector, stream=stream, value=stamp,
                                                 value_kind=kind, sync_run_id=run_id, updated_at=utcnow()))

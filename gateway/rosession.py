"""Read-only sessions per server dialect: what a read-only engine sets on each connection.

One entry per SQLAlchemy backend name in ``READ_ONLY_SESSIONS``; ``gateway.db`` applies
it. SQLite is opened ``mode=ro`` by ``gateway.db`` itself.

- PostgreSQL: every transaction read-only (``default_transaction_read_only``, which also
  stops writing functions and data-modifying CTEs); on a SIS source also every statement
  prepared (``prepare_threshold=0``): the extended query protocol, where the server
  refuses a string holding more than one statement.
- SQL Server: ``ApplicationIntent=ReadOnly`` (pyodbc: routed to a readable secondary
  where there is one) and ``SNAPSHOT`` isolation (reads take no locks that block the
  SIS; the database must allow snapshot isolation). SQL Server has no read-only session
  on a primary: there the SELECT-only login and the parser are the walls.
- Oracle: ``SET TRANSACTION READ ONLY`` first in every transaction.
- MySQL/MariaDB: the hook for ``SET SESSION TRANSACTION READ ONLY`` (issue 14, part B).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL


@dataclass(frozen=True)
class ReadOnlySession:
    connect_args: Mapping[str, Any] = field(default_factory=dict)
    source_args: Mapping[str, Any] = field(default_factory=dict)  # SIS sources only: one statement per call
    url_query: Mapping[str, str] = field(default_factory=dict)  # added to the URL (ODBC keywords)
    on_connect: tuple[str, ...] = ()  # run once on each new DBAPI connection
    on_begin: tuple[str, ...] = ()  # run first in every transaction

    def url(self, parsed: URL) -> URL:
        return parsed.update_query_dict(dict(self.url_query)) if self.url_query else parsed

    def install(self, engine: Engine) -> None:
        if self.on_connect:
            event.listen(engine, "connect", self._connect)
        if self.on_begin:
            event.listen(engine, "begin", self._begin)

    def _connect(self, dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for statement in self.on_connect:
            cursor.execute(statement)
        cursor.close()

    def _begin(self, connection: Any) -> None:
        for statement in self.on_begin:
            connection.exec_driver_sql(statement)


READ_ONLY_SESSIONS: dict[str, ReadOnlySession] = {
    "postgresql": ReadOnlySession(connect_args={"options": "-c default_transaction_read_only=on"},
                                  source_args={"prepare_threshold": 0}),
    "mssql": ReadOnlySession(url_query={"ApplicationIntent": "ReadOnly"},
                             on_connect=("SET TRANSACTION ISOLATION LEVEL SNAPSHOT",)),
    "oracle": ReadOnlySession(on_begin=("SET TRANSACTION READ ONLY",)),
}


def read_only_session(parsed: URL) -> ReadOnlySession:
    """The session settings for ``parsed``'s backend (none known: an empty one)."""
    session = READ_ONLY_SESSIONS.get(parsed.get_backend_name(), ReadOnlySession())
    if parsed.get_backend_name() == "mssql" and parsed.get_driver_name() != "pyodbc":
        return ReadOnlySession(on_connect=session.on_connect)  # ApplicationIntent is an ODBC keyword
    return session

"""Engines and sessions for the two databases.

- The replica has two engines: a read-write one that only sync uses, and a read-only
  one for the web, refused writes at three layers (the driver or session, the role,
  and the statement guard).
- SQLite runs in WAL mode so pages keep reading while a sync writes.
- SQL connectors open their source read-only through ``create_ro_engine`` too, which
  also takes MySQL/MariaDB sources (read-only sessions, one statement per round trip).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, CursorResult, Result
from sqlalchemy.orm import Session, sessionmaker

from gateway.errors import ConfigError
from gateway.rosession import read_only_session
from gateway.security import sourcelogin, sqltree
from gateway.settings import SUPPORTED_DRIVERS, check_database_url
from gateway.security.sqlguard import check_read_only

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Values the URL's query string may not override for a MySQL/MariaDB source: utf8mb4 (all
# of Unicode, not MySQL's three-byte "utf8"); no CLIENT.MULTI_STATEMENTS (PyMySQL adds its
# capabilities, which lack it), so the server parses one statement per round trip; no
# LOAD DATA LOCAL; no init_command of the URL's choosing.
MYSQL_CONNECT_ARGS: dict[str, Any] = {"charset": "utf8mb4", "client_flag": 0, "local_infile": False,
                                      "init_command": None}
MYSQL_MULTI_STATEMENTS = 1 << 16  # pymysql.constants.CLIENT.MULTI_STATEMENTS
# Run on every new MySQL/MariaDB source connection, before any read. UTC, so TIMESTAMP
# columns arrive in UTC; PIPES_AS_CONCAT, so `||` concatenates as in standard SQL (and in the
# shipped mappings) instead of meaning OR.
MYSQL_SESSION = ("SET SESSION TRANSACTION READ ONLY",
                 "SET SESSION time_zone = '+00:00'",
                 "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'PIPES_AS_CONCAT')")
# SQLite's own messages name constraints and columns, never values: these are kept whole.
SQLITE_SAFE_MESSAGE = re.compile(r"(UNIQUE|NOT NULL|CHECK|FOREIGN KEY) constraint failed: [\w., ]{1,200}")


def describe_db_error(error: BaseException) -> str:
    """What a database error was, safe to store and show: the driver's error class and the
    constraint, table or column it names; never the message (PostgreSQL's DETAIL quotes the
    row's values) nor the statement's parameters."""
    orig = getattr(error, "orig", None) or error
    parts = [type(orig).__name__]
    diag = getattr(orig, "diag", None)
    if diag is not None:  # psycopg: structured fields, no values
        parts += [f"{label} {value}" for label, value in (("on constraint", diag.constraint_name),
                  ("table", diag.table_name), ("column", diag.column_name)) if value]
    else:
        match = SQLITE_SAFE_MESSAGE.fullmatch(str(orig.args[0]) if orig.args else "")
        if match:
            parts.append(f"({match.group(0)})")
    return " ".join(parts)


def create_rw_engine(url: str, drivers: tuple[str, ...] = SUPPORTED_DRIVERS, **kwargs: Any) -> Engine:
    """A read-write engine (the portal, the replica for sync only, and ``demo-sis generate``)."""
    parsed = check_database_url("url", url, drivers)
    if parsed.get_backend_name() == "mysql":
        return create_engine(parsed, pool_pre_ping=True, connect_args={"charset": "utf8mb4"}, hide_parameters=True,
                             **kwargs)
    if parsed.get_backend_name() == "sqlite":
        _ensure_parent(parsed.database)
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, hide_parameters=True,
                               **kwargs)
        event.listen(engine, "connect", _sqlite_writer_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(_with_driver(parsed), pool_pre_ping=True, hide_parameters=True, **kwargs)


def create_ro_engine(url: str, guard: bool = True, source: bool = False,
                     drivers: tuple[str, ...] = SUPPORTED_DRIVERS, **kwargs: Any) -> Engine:
    """A read-only engine: SQLite ``mode=ro``; PostgreSQL and MySQL read-only transactions; a guard.

    ``source``: a SIS source, which also gets one statement per round trip (PostgreSQL:
    every statement prepared; MySQL: multi-statements never on).
    """
    parsed = check_database_url("url", url, drivers)
    if parsed.get_backend_name() == "sqlite":
        path = quote(str(Path(parsed.database or "").resolve()))
        ro_url = URL.create("sqlite", database=f"file:{path}", query={"mode": "ro", "uri": "true"})
        engine = create_engine(ro_url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, hide_parameters=True,
                               **kwargs)
        event.listen(engine, "connect", _sqlite_reader_pragmas)
    elif parsed.get_backend_name() == "mysql":
        engine = create_engine(parsed, pool_pre_ping=True, connect_args=dict(MYSQL_CONNECT_ARGS), hide_parameters=True,
                               **kwargs)
        event.listen(engine, "connect", _mysql_read_only_session)
        event.listen(engine, "begin", _mysql_begin_read_only)
    else:
        # Per dialect (gateway.rosession): PostgreSQL read-only transactions; for a source,
        # every statement prepared (the server then refuses a string of two statements).
        session = read_only_session(parsed)
        connect_args = {**session.connect_args, **(session.source_args if source else {})}
        engine = create_engine(session.url(_with_driver(parsed)), pool_pre_ping=True,
                               connect_args=connect_args, hide_parameters=True, **kwargs)
        session.install(engine)
    if guard:
        install_statement_guard(engine)
    return engine


def create_source_engine(url: str, **kwargs: Any) -> Engine:
    """A SIS source: read-only as ``create_ro_engine``, its statements checked by the parser.

    The word-list guard would refuse a column named ``comment`` or ``set``; the parsed
    guard (``gateway.security.sqltree``) reads each statement in the source's dialect,
    letting through only one plain read or the login check's own catalogue queries.
    """
    engine = create_ro_engine(url, guard=False, source=True, **kwargs)
    dialect = sqltree.sqlglot_dialect(engine.dialect.name)
    trusted = sourcelogin.trusted_statements(engine.dialect) | set(read_only_session(engine.url).on_begin)
    install_statement_guard(engine, sqltree.statement_guard(dialect, frozenset(trusted)))
    return engine


def install_statement_guard(engine: Engine, check: Callable[[str], None] = check_read_only) -> None:
    """Check every statement before it is sent (``gateway.security.sqlguard`` by default;
    a SQL source's engine uses the parsed guard of ``gateway.security.sqltree``)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _guard(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        check(statement)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def immediate(session: Session) -> Iterator[Session]:
    """A transaction that takes SQLite's write lock at BEGIN (no-op elsewhere).

    Serializes writers that must read-then-write consistently (the audit chain, locks)
    without the "database is locked" upgrade failures of deferred transactions.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.connection(execution_options={"sqlite_begin": "BEGIN IMMEDIATE"})
    yield session


def _with_driver(parsed: URL) -> URL:
    # A bare postgresql:// would pick psycopg2, which the gateway does not install.
    return parsed.set(drivername="postgresql+psycopg") if parsed.drivername == "postgresql" else parsed


def _ensure_parent(database: str | None) -> None:
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_writer_pragmas(dbapi_connection: Any, record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _sqlite_reader_pragmas(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _mysql_read_only_session(dbapi_connection: Any, record: Any) -> None:
    if dbapi_connection.client_flag & MYSQL_MULTI_STATEMENTS:  # connect_args forbid it; a second look
        raise ConfigError("url", "turns on CLIENT.MULTI_STATEMENTS", "remove client_flag from the source URL")
    cursor = dbapi_connection.cursor()
    for statement in MYSQL_SESSION:
        cursor.execute(statement)
    cursor.close()


def _mysql_begin_read_only(conn: Any) -> None:
    # MySQL drivers begin transactions implicitly; begin this one explicitly, read-only, on
    # the driver's own cursor (the statement guard is for what the connector sends).
    cursor = conn.connection.dbapi_connection.cursor()
    cursor.execute("START TRANSACTION READ ONLY")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched: the conditional updates that make acceptance atomic
    read it (``Session.execute`` is typed as returning a plain ``Result``)."""
    return cast(CursorResult[Any], result).rowcount

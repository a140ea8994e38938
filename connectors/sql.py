"""The ``sql`` connector: a SQLAlchemy URL plus a mapping file, read-only at every layer.

Before anything is read: each mapping query is parsed in the source's dialect and
refused unless it is one plain read (``gateway.security.sqltree``); the login is checked
and refused if it can write the tables the mapping reads, unless the connector sets
``allow_writable_login`` (``gateway.security.sourcelogin``). The source is opened
through ``gateway.db.create_source_engine``: SQLite ``mode=ro``; PostgreSQL and
MySQL/MariaDB read-only transactions; one statement per round trip (PostgreSQL: every
statement prepared, the extended protocol; MySQL: multi-statements never on); and the
parsed statement guard. What is sent is the parsed tree generated back into SQL, wrapped
as a subquery with bound cursor bounds. Rows stream from a server-side cursor in batches;
each becomes a canonical record, or a reject naming the stream, the row, the field and why.

Times: a naive value is in ``source_timezone`` (default UTC), except a MySQL ``TIMESTAMP``
column, which the server hands over in UTC (the session's time zone is UTC).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlglot import exp

from gateway.db import create_source_engine
from gateway.errors import ConfigError, MissingSecret, SyncError, WritableLogin
from gateway.security import sourcelogin, sqltree
from gateway.security.keys import env_var, load_secret
from gateway.replica.records import Record, Reject
from gateway.settings import SOURCE_DRIVERS, ConnectorSettings, Settings, check_database_url

from connectors import convert
from connectors.base import Item, StreamSpec, checked_options, payload_hash, stream_named
from connectors.mapping import Mapping as SqlMapping
from connectors.mapping import StreamQuery, load_mapping

OPTION_KEYS = {"url", "mapping", "batch_size", "source_timezone"}
CONTROL_FIELDS = {"source_id", "modified_at"}
MYSQL_TIMESTAMP = 7  # pymysql.constants.FIELD_TYPE.TIMESTAMP: stored in UTC, sent in the session's zone


class SourceError(SyncError):
    """The source database failed while being read; retriable when the connection broke."""

    def __init__(self, connector: str, stream: str, detail: str, retriable: bool = True) -> None:
        self.connector, self.stream, self.detail = connector, stream, detail
        self.disposition = "retriable" if retriable else "fatal"
        super().__init__(f"connector {connector}, stream {stream}: the source failed: {detail}")


class SqlConnector:
    """Reads a SQL source through a mapping; never writes."""

    def __init__(self, name: str, source_system: str, engine: Engine, mapping: SqlMapping,
                 batch_size: int = 1000, source_zone: dt.tzinfo = dt.timezone.utc,
                 allow_writable_login: bool = False) -> None:
        self.name, self.source_system = name, source_system
        self.engine, self.mapping, self.batch_size, self.zone = engine, mapping, batch_size, source_zone
        self._unmapped: dict[str, Counter[str]] = {}
        self._source_columns: dict[str, list[str]] = {}
        self._warnings: list[str] = []
        self._utc_cursors: set[str] = set()  # streams whose modified_at is a MySQL TIMESTAMP
        self._dialect = sqltree.sqlglot_dialect(engine.dialect.name)
        self._trees = {query.spec.name: sqltree.parse_query(
            query.query, self._dialect, f"mapping {mapping.name}: streams.{query.spec.name}.query")
            for query in mapping.streams}
        self._check_login(allow_writable_login)
        self._check_columns()

    @property
    def streams(self) -> tuple[StreamSpec, ...]:
        return tuple(stream.spec for stream in self.mapping.streams)

    def iter_records(self, stream: str, since: dt.datetime | int | None) -> Iterator[Item]:
        query = self._query(stream)
        spec = query.spec
        statement, params = self._statement(query, since if spec.incremental else None)
        build = _builder(spec.record_type, self._cursor_zone(stream))
        rows = 0
        try:
            with self.engine.connect() as connection:
                result = connection.execution_options(stream_results=True, yield_per=self.batch_size).execute(
                    text(statement), params)
                for rows, row in enumerate(result.mappings(), start=1):
                    yield build(dict(row), f"{stream} row {rows}")
        except DBAPIError as exc:
            # A dropped connection may work next time; a refused statement will not.
            transient = isinstance(exc, OperationalError) or exc.connection_invalidated
            raise SourceError(self.name, stream, str(exc.orig).splitlines()[0], retriable=transient) from exc
        self._count_unmapped(query, rows)

    def unmapped_fields(self) -> Mapping[str, Counter[str]]:
        return self._unmapped

    def warnings(self) -> list[str]:
        """What every run of this connector must say (a login that can write)."""
        return list(self._warnings)

    def read_tables(self) -> list[str]:
        """Every source table the mapping reads: declared in ``tables`` or named in a query."""
        return read_tables(self.mapping, self._trees)

    def close(self) -> None:
        self.engine.dispose()

    def _query(self, stream: str) -> StreamQuery:
        spec = stream_named(self.streams, stream)
        return next(q for q in self.mapping.streams if q.spec is spec)

    def _statement(self, query: StreamQuery, since: dt.datetime | int | None) -> tuple[str, dict[str, Any]]:
        tree = self._trees[query.spec.name]
        if since is None:
            return sqltree.as_text_clause(sqltree.to_sql(tree, self._dialect)), {}
        # A closed lower bound: rows modified in the cursor's own second are read again
        # and de-duplicated by key, rather than missed. Rows with no modification time are
        # always read (the NULL-cursor rule of sync.cursors and the connector contract).
        bound = self._bind(since, self._cursor_zone(query.spec.name))
        return (sqltree.wrapped(tree, self._dialect, "src.modified_at >= :since OR src.modified_at IS NULL"),
                {"since": bound})

    def _cursor_zone(self, stream: str) -> dt.tzinfo:
        return dt.timezone.utc if stream in self._utc_cursors else self.zone

    def _bind(self, moment: dt.datetime | int, zone: dt.tzinfo) -> Any:
        if isinstance(moment, int):
            return moment  # an integer row version
        local = moment.astimezone(zone)
        if self.engine.dialect.name == "sqlite":
            return local.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")  # as SQLite stores it
        return local.replace(tzinfo=None) if zone is not dt.timezone.utc else local

    def _check_login(self, allow_writable_login: bool) -> None:
        """Refuse, before reading any row, a login that can write what the mapping reads."""
        tables = self.read_tables()
        with self.engine.connect() as connection:
            reasons = sourcelogin.writable_reasons(connection, tables)
        if not reasons:
            return
        if not allow_writable_login:
            url = self.engine.url
            fix = sourcelogin.grant_statements(self.engine.dialect.name, "gateway_reader", url.database or "sis", tables)
            raise WritableLogin(self.name, str(url.username or ""), reasons, fix)
        self._warnings.append(f"connector {self.name}: the SIS login {self.engine.url.username or ''} can write "
                              f"({'; '.join(reasons)}); allow_writable_login = true, so only the query parser, "
                              "the one-statement protocol and the read-only session stand in the way")

    def _check_columns(self) -> None:
        """Refuse, before reading any row, a query that selects anything not canonical."""
        with self.engine.connect() as connection:
            for query in self.mapping.streams:
                allowed = {f.name for f in dataclasses.fields(query.spec.record_type)} | CONTROL_FIELDS
                probe = sqltree.wrapped(self._trees[query.spec.name], self._dialect, "1 = 0")
                try:
                    result = connection.execute(text(probe))
                    columns = list(result.keys())
                    if _is_mysql_timestamp(connection, result.cursor, "modified_at"):
                        self._utc_cursors.add(query.spec.name)
                    result.close()
                except DBAPIError as exc:
                    raise ConfigError(f"mapping {self.mapping.name}: streams.{query.spec.name}.query",
                                      f"fails on the source ({str(exc.orig).splitlines()[0]})", "fix the SELECT") from None
                for table in query.tables:
                    self._source_columns[table] = _columns_of(connection, table)
                extra = sorted(set(columns) - allowed)
                missing = sorted({"source_id"} - set(columns))
                if extra or missing:
                    problem = f"selects {', '.join(extra)}" if extra else f"does not select {', '.join(missing)}"
                    raise ConfigError(f"mapping {self.mapping.name}: streams.{query.spec.name}.query",
                                      f"{problem}, which is not a field of {query.spec.table}",
                                      "select only canonical fields, named as the record names them")

    def _count_unmapped(self, query: StreamQuery, rows: int) -> None:
        """Names only: the source columns this stream's query never mentions."""
        counter = self._unmapped.setdefault(query.spec.name, Counter())
        words = set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", query.query.lower()))
        for table in query.tables:
            for column in self._source_columns[table]:
                if column.lower() not in words:
                    counter[f"{table}.{column}"] += rows


def read_tables(mapping: SqlMapping, trees: Mapping[str, Any]) -> list[str]:
    """The declared tables and every table a parsed query names (CTE names aside), in order."""
    names = [table for query in mapping.streams for table in query.tables]
    for tree in trees.values():
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            if table.name and table.name.lower() not in ctes:
                names.append(".".join(part for part in (table.db, table.name) if part))
    return list(dict.fromkeys(names))


def _columns_of(connection: Connection, table: str) -> list[str]:
    """A source table's column names, by a query that reads no row (no reflection needed)."""
    quoted = connection.dialect.identifier_preparer.quote(table)
    try:
        return list(connection.execute(text(f"SELECT * FROM {quoted} WHERE 1 = 0")).keys())
    except DBAPIError as exc:
        raise ConfigError(f"mapping table {table}", f"cannot be read ({str(exc.orig).splitlines()[0]})",
                          "fix the stream's tables list") from None


def _is_mysql_timestamp(connection: Connection, cursor: Any, column: str) -> bool:
    if connection.dialect.name != "mysql" or cursor is None or not cursor.description:
        return False
    return any(entry[0] == column and entry[1] == MYSQL_TIMESTAMP for entry in cursor.description)


def _convert(name: str, convert_value: Callable[[Any], Any], value: Any) -> Any:
    try:
        return convert_value(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}: {exc}") from None  # the reject names the field


def _builder(record_type: type[Record], zone: dt.tzinfo) -> Callable[[dict[str, Any], str], Item]:
    converters = convert.converters_for(record_type)

    def build(row: dict[str, Any], position: str) -> Item:
        try:
            values = {name: _convert(name, converters[name], value)
                      for name, value in row.items() if name != "modified_at"}
            modified = _convert("modified_at", lambda value: convert.to_cursor(value, zone), row.get("modified_at"))
            return record_type(**values, modified_at=modified)
        except (ValueError, TypeError) as exc:
            source_id = row.get("source_id")
            return Reject(record_type.TABLE, f"{position} (source id {source_id})", str(exc),
                          payload_hash(sorted(row.items(), key=lambda item: item[0])),
                          str(source_id) if source_id is not None else None)

    return build


def from_settings(entry: ConnectorSettings, settings: Settings) -> SqlConnector:
    options = checked_options(entry, OPTION_KEYS, ("url", "mapping"))
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(options["source_timezone"]) if options.get("source_timezone") else dt.timezone.utc
    engine = create_source_engine(_with_password(options["url"], entry, settings), drivers=SOURCE_DRIVERS)
    return SqlConnector(entry.name, entry.source_system, engine, load_mapping(options["mapping"]),
                        int(options.get("batch_size", settings.sync.batch_size)), zone,
                        allow_writable_login=entry.allow_writable_login)


def _with_password(url: str, entry: ConnectorSettings, settings: Settings) -> str:
    """The source password: GATEWAY_SECRET_SOURCE_<NAME> or keys/source-<name>, never the config."""
    parsed = check_database_url(f"connectors.{entry.name}.url", url, SOURCE_DRIVERS)
    if parsed.password:
        raise ConfigError(f"connectors.{entry.name}.url", "contains a password",
                          f"remove it and set {env_var('source-' + entry.name)} or keys/source-{entry.name}")
    if parsed.get_backend_name() == "sqlite":
        return url
    try:
        password = load_secret(settings, f"source-{entry.name}").reveal()
    except MissingSecret:
        return url  # trust or peer authentication, or a .pgpass file
    return parsed.set(password=password).render_as_string(hide_password=False)

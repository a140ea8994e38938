"""A sync run: extract → validate → sanitize → diff → publish, in one replica transaction.

Everything a run changes (rows, deletions, references, cursors, its own record) becomes
visible at its commit or not at all: a crash leaves the previous replica and cursors as
they were. Runs of one connector never overlap, across processes and hosts (a lease in
the portal database). Source failures are retried with backoff before the run fails.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, insert, update
from sqlalchemy.exc import DBAPIError

from gateway.security.crypto import FieldCipher
from gateway.db import create_rw_engine, describe_db_error
from gateway.replica.dbtypes import utcnow
from gateway.errors import GatewayError, SyncError, SyncRefused, SyncWriteError
from gateway.security.keys import load_keys
from gateway.replica.records import KeyChange, Record, Reject, Tombstone
from gateway.replica.tables import CANONICAL_TABLES, RUN_WARNINGS_KEY, SyncReject, SyncRun
from gateway.replica.sanitize import SanitizePolicy, load_policy
from gateway.settings import Settings

from connectors.base import Connector, StreamSpec
from sync import cursors, resource_ids
from sync import findings as run_findings
from sync.duplicates import Seen, StreamIds, org_loops
from sync.quarantine import narrows as narrows_values
from sync.quarantine import narrows_access, stored_row
from sync.apply import Sanitizer, TableCounts, TableWriter, table_named
from sync.locks import Lease, sync_lock_name

TABLE_ORDER = [model.__tablename__ for model in CANONICAL_TABLES]
MAX_STORED_REJECTS = 10_000
Progress = Callable[[str, int, float], None]


@dataclass
class RunResult:
    run_id: int
    connector: str
    mode: str
    status: str
    counts: dict[str, TableCounts] = field(default_factory=dict)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    findings: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "connector": self.connector, "mode": self.mode, "status": self.status,
                "error": self.error, "counts": {t: c.as_dict() for t, c in self.counts.items()},
                "warnings": self.warnings, "findings": self.findings}


@dataclass
class RunContext:
    settings: Settings
    connector: Connector
    mode: str
    allow_shrink: bool
    policy: SanitizePolicy
    run_id: int
    lease: Lease
    progress: Progress | None = None
    rejects: list[Reject] = field(default_factory=list)
    rejected: int = 0
    narrowed: list[str] = field(default_factory=list)
    duplicates: dict[str, Counter[str]] = field(default_factory=dict)
    findings: dict[str, Any] = field(default_factory=dict)
    last_renewal: float = field(default_factory=time.monotonic)


def run_sync(settings: Settings, connector: Connector, mode: str = "incremental", allow_shrink: bool = False,
             progress: Progress | None = None) -> RunResult:
    """Run one sync of ``connector``; raises ``LockHeld`` at once if one is already running."""
    if mode not in ("full", "incremental"):
        raise ValueError(f"mode must be full or incremental, not {mode!r}")
    policy = load_policy(settings.sync.sanitize_policy or None)  # a bad policy stops us before any read
    replica, portal = create_rw_engine(settings.replica.url), create_rw_engine(settings.portal.url)
    try:
        with Lease(portal, sync_lock_name(connector.name), settings.sync.lock_ttl_seconds) as lease:
            _close_interrupted_runs(replica, connector.name)
            run_id = _start_run(replica, connector, mode)
            context = RunContext(settings, connector, mode, allow_shrink, policy, run_id, lease, progress)
            return _run_with_retries(replica, context)
    finally:
        replica.dispose()
        portal.dispose()


def _run_with_retries(replica: Engine, context: RunContext) -> RunResult:
    attempts = context.settings.sync.retry_attempts
    for attempt in range(attempts + 1):
        context.rejects, context.rejected, context.narrowed, context.findings = [], 0, [], {}
        context.duplicates = {}
        try:
            counts = _publish(replica, context)
            return RunResult(context.run_id, context.connector.name, context.mode, "succeeded", counts,
                             warnings=connector_warnings(context.connector),
                             findings=context.findings)
        except GatewayError as error:
            if isinstance(error, SyncError) and error.retriable and attempt < attempts:
                time.sleep(_backoff(context.settings.sync.retry_backoff_seconds, attempt))
                continue
            _record_failure(replica, context, error)
            raise
        except BaseException as error:  # interrupted, or a bug: still leave a record of the run
            _record_failure(replica, context, error)
            raise
    raise AssertionError("unreachable")


def _backoff(base: float, attempt: int) -> float:
    return base * (2 ** attempt) * random.uniform(0.5, 1.5)  # jitter: retrying workers do not stampede


def _publish(replica: Engine, context: RunContext) -> dict[str, TableCounts]:
    keys = load_keys(context.settings)
    cipher = FieldCipher(keys.field)
    synced_at = utcnow()
    with replica.connect() as connection:
        connection.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        saved = cursors.load(connection, context.connector.name)
        known_ids = resource_ids.restore(connection, context.connector)
        writers: dict[str, TableWriter] = {}
        for spec in sorted(context.connector.streams, key=lambda s: TABLE_ORDER.index(s.table)):
            table = table_named(spec.table)
            sanitizer = Sanitizer(table, context.policy, cipher, keys.blind_index, keys.row_hash)
            since, snapshot = _plan(spec, context, saved.get(spec.name))
            writer = TableWriter(connection, table, sanitizer, context.connector.source_system,
                                 context.run_id, synced_at, snapshot)
            ids = StreamIds()
            newest = _stream(context, spec, writer, since, ids)
            if spec.table == "schools":
                _reject_org_loops(context, writer, ids)
            if snapshot:
                writer.delete_vanished(context.settings.sync.shrink_max_share, context.allow_shrink, context.connector.name,
                                       context.settings.sync.shrink_min_rows)
            moved = cursors.advance(saved.get(spec.name), newest)
            if spec.incremental and moved is not None:
                cursors.save(connection, context.connector.name, spec.name, moved, context.run_id)
            writers[spec.table] = writer
        counts = {name: writer.counts for name, writer in writers.items()}
        _refresh_statistics(connection, counts)
        for writer in writers.values():
            writer.resolve_references()
        _check_reject_share(context, counts)
        context.findings = _findings(connection, context)
        resource_ids.keep(connection, context.connector, known_ids)
        _finish_run(connection, context, "succeeded", counts, None)
        connection.commit()
    return counts


def _refresh_statistics(connection: Connection, counts: dict[str, TableCounts]) -> None:
    """Let the query planner see what this run changed a lot, before it plans the references.

    Without it PostgreSQL still believed freshly filled tables empty: resolving references
    ran as a scan per row (a first full sync of 2,000 students took 121 s), and after the
    sync a child's assignments page planned as nested loops from a "one-row" sections
    table of 480 rows (34 ms instead of 0.5 ms). Small tables count too: analyzing them
    costs a millisecond. Statistics are transactional: they take effect with the commit.
    """
    if connection.dialect.name == "sqlite":
        # Sample each index as PostgreSQL does rather than read it whole: a full ANALYZE
        # of a 100,000-student replica would read every row of every index.
        connection.exec_driver_sql("PRAGMA analysis_limit = 1000")
    for name, c in counts.items():
        changed = c.inserted + c.updated + c.deleted
        if changed and changed * 10 >= c.inserted + c.updated + c.unchanged:
            connection.exec_driver_sql(f'ANALYZE "{name}"')  # names come from the canonical schema, never input


def _plan(spec: StreamSpec, context: RunContext, saved: cursors.Value | None) -> tuple[cursors.Value | None, bool]:
    """(since, snapshot): what to ask the stream for, and whether its answer is the whole truth."""
    lookback = context.settings.sync.cursor_lookback_seconds
    if spec.delta_only:
        return cursors.since(saved, lookback), False
    if context.mode == "full" or spec.complete_each_run or not spec.incremental or saved is None:
        return None, True
    return cursors.since(saved, lookback), False


def _stream(context: RunContext, spec: StreamSpec, writer: TableWriter, since: cursors.Value | None,
            ids: StreamIds | None = None) -> cursors.Value | None:
    """Feed one stream to its writer in batches; return the newest modification time seen."""
    ids = StreamIds() if ids is None else ids
    batch: list[Record] = []
    gone: list[str] = []
    newest: cursors.Value | None = None
    seen, started = 0, time.monotonic()
    size = context.settings.sync.batch_size
    for item in context.connector.iter_records(spec.name, since):
        if isinstance(item, Reject):
            _reject(context, writer, item)
            continue
        newest = cursors.advance(newest, item.modified_at)
        if item.modified_at is None and spec.incremental:
            writer.counts.null_cursor += 1  # read by every incremental run (sync.cursors): counted, so it shows
        if isinstance(item, Tombstone):
            gone.append(item.source_id)
            continue
        if isinstance(item, KeyChange):  # the row moves before any record of the stream names it by its new key
            _write(context, writer, batch)
            batch = []
            writer.move(item.old_source_id, item.new_source_id)
            continue
        repeat = ids.note(item)
        if repeat is not Seen.FIRST:
            batch = _repeated(context, writer, item, repeat, batch)
            continue
        problems = item.problems() or writer.sanitizer.too_long(item)
        if problems:
            narrows = narrows_access(writer.connection, writer.table, writer.source_system, item)
            _reject(context, writer, Reject(spec.table, f"{spec.name} source id {item.source_id}", "; ".join(problems),
                                            source_id=item.source_id, narrows=narrows))
            continue
        batch.append(item)
        seen += 1
        if len(batch) >= size:
            _write(context, writer, batch)
            batch = []
            _keep_lease(context)
            if context.progress:
                context.progress(spec.name, seen, time.monotonic() - started)
    _write(context, writer, batch)
    writer.tombstones(gone)
    if context.progress:
        context.progress(spec.name, seen, time.monotonic() - started)
    return newest


def _write(context: RunContext, writer: TableWriter, batch: list[Record]) -> None:
    """Write a batch in a savepoint; if the database refuses it, name the record it refuses.

    The run fails either way (its transaction is never committed), so the search may
    keep what it writes: records are written one by one until the refused one.
    """
    try:
        with writer.connection.begin_nested():
            rejects = writer.write(batch)
    except DBAPIError as error:
        raise SyncWriteError(writer.table.name, _refused_record(writer, batch), describe_db_error(error)) from None
    for reject in rejects:  # a reference the replica lacks: old row kept
        _reject(context, writer, reject)


def _refused_record(writer: TableWriter, batch: list[Record]) -> str | None:
    for record in batch:
        try:
            with writer.connection.begin_nested():
                writer.write([record])
        except DBAPIError:
            return record.source_id
    return None  # refused only as a batch


def _repeated(context: RunContext, writer: TableWriter, record: Record, repeat: Seen, batch: list[Record]) -> list[Record]:
    """A source id already sent in this stream: identical records count once (as duplicates);
    records that disagree are all rejected and the stored row kept, never "the last wins".

    Records are written batch by batch as they come, so the first copy may already be in
    the replica when a conflicting one arrives (across batches), or waiting in the batch.
    Holding every record back until the stream ends would cost the records' memory (a
    200,000-row stream); reading each stream twice would cost every connector a second
    listing. Conflicts are rare, so the first copy is undone instead: taken out of the
    batch, or put back as the replica had it before the run (``TableWriter.restore``).
    Returns the batch without the conflicting id.
    """
    counts = context.duplicates.setdefault(writer.table.name, Counter())
    if repeat is Seen.IDENTICAL:
        counts["identical"] += 1
        return batch
    copies, first = 1, None
    if repeat is Seen.CONFLICT:
        counts["conflicting"] += 1
        copies = 2  # the first copy is rejected with this one
        first = _first_copy(writer, record.source_id, batch)
        batch = [queued for queued in batch if queued.source_id != record.source_id]
        writer.restore(record.source_id)
    narrows = narrows_access(writer.connection, writer.table, writer.source_system, record)
    if first is not None and not narrows:  # either copy granting less fails closed, whichever came first
        stored = stored_row(writer.connection, writer.table, writer.source_system, record.source_id)
        narrows = stored is not None and narrows_values(writer.table.name, first, stored)
    outcome = "the stored row is removed (these values grant less)" if narrows else "the stored row is kept"
    for _ in range(copies):
        _reject(context, writer, Reject(writer.table.name, f"{writer.table.name} source id {record.source_id}",
                                        f"source id {record.source_id} came more than once with different values: "
                                        f"none is applied, {outcome}", source_id=record.source_id,
                                        narrows=narrows))
    return batch


def _first_copy(writer: TableWriter, source_id: str, batch: list[Record]) -> Mapping[str, Any] | None:
    """The first copy's values, from the batch or as this run wrote them; None if it was not kept."""
    queued = [record for record in batch if record.source_id == source_id]
    if queued:
        return queued[0].values()
    written = stored_row(writer.connection, writer.table, writer.source_system, source_id)
    return written if written is not None and written["sync_run_id"] == writer.run_id else None


def _reject_org_loops(context: RunContext, writer: TableWriter, ids: StreamIds) -> None:
    """An org of this run that is its own ancestor (through the stored orgs or this run's) is a
    reject: its row goes back to what the replica had. Putting one back can close another
    loop with a row of this run, so look again until no loop holds an org of this run."""
    rejected: set[str] = set()
    while True:
        loops = {org: chain for org, chain in org_loops(writer.connection, writer.table, writer.source_system).items()
                 if org in ids and org not in rejected and org not in ids.conflicting}
        if not loops:
            return
        for org, chain in sorted(loops.items()):
            writer.restore(org)
            rejected.add(org)
            _reject(context, writer, Reject(writer.table.name, f"schools source id {org}",
                                            f"org {org} is its own ancestor ({' → '.join(chain)})", source_id=org))


def _reject(context: RunContext, writer: TableWriter, reject: Reject) -> None:
    """Quarantine: the stored row stays, with the rows this run derives from it; unless the
    rejected values narrow access, which then fails closed (the stored row goes)."""
    writer.counts.rejected += 1
    fallback = reject.unknown_birth_date
    if (fallback is not None and context.settings.policy.unknown_birth_date == "deny"
            and not fallback.problems() and not writer.sanitizer.too_long(fallback)):
        _write(context, writer, [fallback])  # unknown is refused: narrower than any stored date
        context.narrowed.append(f"{reject.source_position} (birth date of {reject.source_id} now unknown)")
    elif reject.source_id and reject.narrows:
        writer.tombstones([reject.source_id])
        context.narrowed.append(f"{reject.source_position} ({reject.table} {reject.source_id})")
    elif reject.source_id:
        writer.keep([reject.source_id])
    writer.keep_where(reject.keep_rows)
    context.rejected += 1
    if len(context.rejects) < MAX_STORED_REJECTS:
        context.rejects.append(reject)


def _findings(connection: Connection, context: RunContext) -> dict[str, Any]:
    told = getattr(context.connector, "findings", None)  # optional: not every connector has any
    found = dict(told()) if callable(told) else {}
    batched = {table: {"identical": c["identical"], "conflicting": c["conflicting"]} for table, c in context.duplicates.items()}
    if batched:
        found["duplicates"] = {**found.get("duplicates", {}), **batched}
    return run_findings.summary(found, context.rejects, context.narrowed, connection,
                                context.connector.source_system,
                                context.settings.policy.unknown_birth_date == "deny")


def _keep_lease(context: RunContext) -> None:
    if time.monotonic() - context.last_renewal > context.settings.sync.lock_ttl_seconds / 3:
        context.lease.renew()
        context.last_renewal = time.monotonic()


def _check_reject_share(context: RunContext, counts: dict[str, TableCounts]) -> None:
    accepted = sum(c.inserted + c.updated + c.unchanged for c in counts.values())
    total = accepted + context.rejected
    limit = context.settings.sync.reject_max_share
    if context.rejected >= context.settings.sync.reject_min_count and context.rejected / total > limit:
        raise SyncRefused(context.connector.name, f"{context.rejected} of {total} records were rejected "
                          f"({context.rejected / total:.1%}, more than the {limit:.0%} limit)",
                          f"see gateway sync rejects {context.run_id} and fix the source")


def _start_run(replica: Engine, connector: Connector, mode: str) -> int:
    with replica.begin() as connection:
        return _inserted_id(connection.execute(insert(SyncRun).values(
            connector=connector.name, source_system=connector.source_system, mode=mode, status="running",
            started_at=utcnow(), counts={}, unmapped_fields={})))


def connector_warnings(connector: Connector) -> list[str]:
    """What every run of this connector must say (the SQL connector's writable login); most have none."""
    warnings = getattr(connector, "warnings", None)  # optional: not part of every connector
    return list(warnings()) if callable(warnings) else []


def _finish_run(connection: Connection, context: RunContext, status: str, counts: dict[str, TableCounts],
                error: str | None) -> None:
    unmapped = {stream: dict(counter) for stream, counter in context.connector.unmapped_fields().items() if counter}
    warnings = connector_warnings(context.connector)
    if warnings:  # kept with the run (no column of its own yet): see SyncRun.warnings
        unmapped[RUN_WARNINGS_KEY] = {warning: 1 for warning in warnings}
    connection.execute(update(SyncRun).where(SyncRun.id == context.run_id).values(
        status=status, finished_at=utcnow(), error=error, unmapped_fields=unmapped, findings=context.findings or None,
        counts={name: c.as_dict() for name, c in counts.items()}))
    if context.rejects:
        connection.execute(insert(SyncReject), [
            {"sync_run_id": context.run_id, "table_name": r.table, "source_position": r.source_position[:255],
             "reason": r.reason, "payload_hash": r.payload_hash, "created_at": utcnow()} for r in context.rejects])


def _record_failure(replica: Engine, context: RunContext, error: BaseException) -> None:
    _finish_failed(replica, context, safe_error_text(error))


def safe_error_text(error: BaseException) -> str:
    """A failed run's stored error: the gateway's own messages, or a database error's class and
    constraint; never a driver's message or a bug's text, which may quote the row's values."""
    if isinstance(error, GatewayError):
        return str(error)
    if isinstance(error, DBAPIError):
        return f"database error: {describe_db_error(error)}; see the sync log"
    return f"{type(error).__name__} (an internal error; the traceback is in the sync log)"


def _finish_failed(replica: Engine, context: RunContext, message: str) -> None:
    with replica.connect() as connection:
        _finish_run(connection, context, "failed", {}, message)
        connection.commit()


def record_failed_attempt(settings: Settings, connector: str, source_system: str, mode: str, error: str) -> int:
    """A run that failed before reading anything (the source could not even be opened)."""
    replica = create_rw_engine(settings.replica.url)
    try:
        with replica.begin() as connection:
            now = utcnow()
            return _inserted_id(connection.execute(insert(SyncRun).values(
                connector=connector, source_system=source_system, mode=mode, status="failed", started_at=now,
                finished_at=now, counts={}, unmapped_fields={}, error=error)))
    finally:
        replica.dispose()


def _close_interrupted_runs(replica: Engine, connector: str) -> None:
    """Runs still marked running were killed (we hold the lease, so none is live)."""
    with replica.begin() as connection:
        connection.execute(update(SyncRun).where(SyncRun.connector == connector, SyncRun.status == "running")
                           .values(status="failed", finished_at=utcnow(), error="interrupted (the process ended mid-run)"))


def _inserted_id(result: CursorResult[Any]) -> int:
    """The id the database gave the row just inserted."""
    key = result.inserted_primary_key
    assert key is not None, "an INSERT of one row has a primary key"
    return int(key[0])

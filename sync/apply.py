"""Sanitize, diff and apply one canonical table's records inside the run's transaction.

Rows are matched by ``(source_system, source_id)`` and compared by their keyed row hash
of the sanitized plaintext, so re-encryption never shows as a change. A snapshot stream
remembers the row ids it found unchanged as bits (rows it wrote carry the run's id) and
deletes what vanished, behind the shrink guard. On PostgreSQL new rows go in by ``COPY``.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, String, Table, any_, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql

from gateway.security.crypto import FieldCipher, email_index, row_hash
from gateway.replica.dbtypes import ENCRYPTED
from gateway.errors import SyncRefused
from gateway.security.keys import KeyRing
from gateway.replica.records import Record, Reject
from gateway.replica.sanitize import SanitizePolicy
from gateway.replica.schema import (Reference, blind_index_sources, canonical_tables, encryption_context, hashed_columns,
                                    references, storage)


@dataclass
class TableCounts:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    rejected: int = 0
    unresolved: int = 0  # of the rejected: a required reference's other end is not in the replica
    null_cursor: int = 0  # records read with no modification time (sync.cursors: read by every run)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Sanitizer:
    """Turns a record into a stored row: dropped columns empty, sensitive ones encrypted."""

    def __init__(self, table: Table, policy: SanitizePolicy, cipher: FieldCipher, index: KeyRing, hashing: KeyRing) -> None:
        self.table, self.cipher, self.index, self.hashing = table, cipher, index, hashing
        self.columns = hashed_columns(table)
        self.dropped = {c for c in self.columns if not policy.keeps(table.name, c)}
        self.encrypted = {c for c in self.columns if storage(table.columns[c]) == ENCRYPTED}
        self.indexes = blind_index_sources(table)
        self.lengths = {c: length for c in self.columns
                        if isinstance(kind := table.columns[c].type, String) and (length := kind.length)}

    def too_long(self, record: Record) -> list[str]:
        """Values longer than their replica column holds, named with both lengths.

        Checked before writing, so such a record is a reject, not a failed PostgreSQL run
        (SQLite would store it whole, so the check is the same on both).
        """
        found = [] if len(record.source_id) <= 255 else [f"source_id is {len(record.source_id)} characters, "
                                                         "longer than the 255 the replica holds"]
        for name, value in record.values().items():
            limit = self.lengths.get(name)
            if limit is not None and isinstance(value, str) and len(value) > limit:
                found.append(f"{name} is {len(value)} characters, longer than the {limit} the replica holds")
        return found

    def plaintext(self, record: Record) -> tuple[dict[str, Any], str]:
        """The sanitized plaintext (dropped columns empty) and its keyed row hash."""
        plain = record.values()
        values = {name: (None if name in self.dropped else plain[name]) for name in self.columns}
        return values, row_hash(self.hashing, values)

    def stored(self, values: dict[str, Any], hashed: str) -> dict[str, Any]:
        """The row as written: sensitive columns encrypted, blind indexes computed.

        Only rows about to be inserted or updated get here, so an unchanged re-sync pays
        for no encryption at all.
        """
        row = dict(values)
        for name in self.encrypted:
            if values[name] is not None:
                text = values[name].isoformat() if isinstance(values[name], dt.date) else str(values[name])
                row[name] = self.cipher.encrypt(text, encryption_context(self.table.name, name))
        for name, of in self.indexes.items():
            row[name] = email_index(self.index, values[of])
        row["row_hash"] = hashed
        return row


class TableWriter:
    """Applies one table's batches, tombstones and (for snapshots) deletions."""

    def __init__(self, connection: Connection, table: Table, sanitizer: Sanitizer, source_system: str,
                 run_id: int, synced_at: dt.datetime, snapshot: bool) -> None:
        self.connection, self.table, self.sanitizer = connection, table, sanitizer
        self.source_system, self.run_id, self.synced_at = source_system, run_id, synced_at
        self.counts = TableCounts()
        self.moved_from: dict[str, str] = {}  # key changes applied by this run: new source id → old
        self.seen = RowIdSet() if snapshot else None
        self._postgres = connection.dialect.name == "postgresql"
        self.references: list[Reference] = references(table)
        self._update = self._update_statement()
        self._analyzed = False

    def write(self, records: Sequence[Record]) -> list[Reject]:
        """Insert new rows, update changed ones, count unchanged ones.

        Returns the records set aside because a required reference's other end is not in
        the replica: never stored half-joined, and their old rows stay (the caller keeps them).
        """
        if not records:
            return []
        latest = {record.source_id: record for record in records}  # the engine lets each id through once per stream
        rows = {source_id: self.sanitizer.plaintext(record) for source_id, record in latest.items()}
        existing = self._existing(list(rows))
        changed: list[tuple[dict[str, Any], int | None]] = []
        for source_id, (values, hashed) in rows.items():
            found = existing.get(source_id)
            if found is not None and found[1] == hashed:
                self.counts.unchanged += 1
                if self.seen is not None:
                    self.seen.add(found[0])
                continue
            changed.append(({**self.sanitizer.stored(values, hashed), **self._lineage(source_id)},
                            found[0] if found is not None else None))
        unresolved = self._attach_references([row for row, _ in changed])
        changed = [(row, row_id) for row, row_id in changed if row["source_id"] not in unresolved]
        inserts = [row for row, row_id in changed if row_id is None]
        updates = [(row, row_id) for row, row_id in changed if row_id is not None]
        self._insert(inserts)
        if updates:
            self.connection.execute(self._update, [{f"b_{k}": v for k, v in row.items()} | {"b_id": row_id}
                                                   for row, row_id in updates])
        self.counts.inserted += len(inserts)
        self.counts.updated += len(updates)
        self.counts.unresolved += len(unresolved)
        self._analyze_once_filling()
        return [Reject(self.table.name, f"{self.table.name} source id {source_id}", reason, source_id=source_id)
                for source_id, reason in unresolved.items()]

    def _attach_references(self, rows: list[dict[str, Any]]) -> dict[str, str]:
        """Fill each reference id from its source id, one lookup per column for the batch.

        Targets are written before the tables that refer to them (TABLE_ORDER), so nearly
        every id is found here and rows are written once. An optional target still missing
        (later in the same table, or not yet sent) is left empty for ``resolve_references``;
        a required one makes the row unresolved: returned as source id → reason, naming both ends.
        """
        unresolved: dict[str, str] = {}
        for ref in self.references:
            target = ref.target
            wanted = {row[ref.source_column] for row in rows if row[ref.source_column] is not None}
            query = select(target.c.source_id, target.c.id).where(target.c.source_system == self.source_system,
                                                                  self._among(target.c.source_id, wanted))
            found = {source_id: row_id for source_id, row_id in self.connection.execute(query)} if wanted else {}
            for row in rows:
                row[ref.column] = found.get(row[ref.source_column])
                if ref.required and row[ref.column] is None and row["source_id"] not in unresolved:
                    unresolved[row["source_id"]] = self._unresolved_reason(ref, row)
        return unresolved

    def _unresolved_reason(self, missing: Reference, row: dict[str, Any]) -> str:
        ends = ", ".join(f"{ref.noun} {row[ref.source_column]}" for ref in self.references if ref.required)
        return (f"{missing.noun} {row[missing.source_column]} is not in the replica "
                f"({self.table.name} {row['source_id']}: {ends})")

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        """New rows; on PostgreSQL by ``COPY``, several times faster than multi-row INSERTs.

        COPY runs on the same driver connection, so inside the run's transaction. Values go
        as the driver adapts them: every column the writer fills is text, a number, a date
        or an aware UTC time (``synced_at``), which need no SQLAlchemy type processing.
        """
        if not rows:
            return
        if not self._postgres:
            self.connection.execute(self.table.insert(), rows)
            return
        names = list(rows[0])
        columns = ", ".join(f'"{name}"' for name in names)  # canonical names, never input
        cursor = self.connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f'COPY "{self.table.name}" ({columns}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([row[name] for name in names])

    def _analyze_once_filling(self) -> None:
        """On PostgreSQL, give the planner statistics once a table starts filling in this run.

        A table loaded from empty looks empty to the planner until analyzed, so each batch's
        lookup of existing rows became a full scan: quadratic, 20 of 46 s of a first sync of
        1,000 students. Once analyzed, estimates grow with the table's size on disk.
        """
        if not self._analyzed and self.counts.inserted >= 1000 and self.connection.dialect.name == "postgresql":
            self.connection.exec_driver_sql(f'ANALYZE "{self.table.name}"')  # a canonical table's name, never input
            self._analyzed = True

    def keep(self, source_ids: Iterable[str]) -> None:
        """Count these records as present in the snapshot (a quarantined record keeps its old row)."""
        wanted = list(source_ids)
        if self.seen is not None and wanted:
            for row_id, _hashed in self._existing(wanted).values():
                self.seen.add(row_id)

    def keep_where(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Count as present the rows whose reference ``column`` names ``source_id``: rows this
        run would derive from a quarantined record keep their old state with it."""
        if self.seen is None:
            return
        t = self.table
        for column, source_id in pairs:
            query = select(t.c.id).where(t.c.source_system == self.source_system, t.c[column] == source_id)
            for row_id in self.connection.execute(query).scalars():
                self.seen.add(row_id)

    def restore(self, source_id: str) -> None:
        """Put a row this run already wrote back as the replica had it before the run.

        The run is one transaction and the only writer of this connector's rows (its
        lease), so the committed state, read on a second connection, is the row as the run
        found it: PostgreSQL shows other connections the committed rows, and SQLite in WAL
        mode (gateway.db) lets a reader see the last commit while the run writes. A row
        the run inserted goes again; one it did not write is left as it is.
        """
        t = self.table
        mine = (t.c.source_system == self.source_system, t.c.source_id == source_id)
        written = self.connection.execute(select(t.c.id).where(*mine, t.c.sync_run_id == self.run_id)).scalar()
        if written is None:
            return
        was = self.moved_from.get(source_id, source_id)  # a key change stays applied: only the values go back
        with self.connection.engine.connect() as committed:
            before = committed.execute(select(t).where(t.c.source_system == self.source_system,
                                                       t.c.source_id == was)).mappings().first()
        if before is None:
            # Rows joined to it meanwhile (a school's parent) are emptied by the foreign key
            # (ON DELETE SET NULL) and joined again if it comes back.
            self.connection.execute(delete(t).where(t.c.id == written))
            self.counts.inserted -= 1
            return
        self.connection.execute(update(t).where(t.c.id == written).values(
            {name: value for name, value in before.items() if name not in ("id", "source_id")}))
        self.counts.updated -= 1

    def tombstones(self, source_ids: Iterable[str]) -> None:
        ids = list(source_ids)
        if ids:
            self.counts.deleted += self.connection.execute(
                delete(self.table).where(self.table.c.source_system == self.source_system, self.table.c.source_id.in_(ids))
            ).rowcount

    def move(self, old_source_id: str, new_source_id: str) -> None:
        """A natural key changed: the row takes the new source id and every reference to it follows.

        Its replica id stays, so rows joined to it and portal access built on it are kept.
        When a row already has the new key (the move was applied before), the old one goes.
        """
        t = self.table
        if self._existing([new_source_id]):
            self.tombstones([old_source_id])
            return
        moved = self.connection.execute(update(t).where(t.c.source_system == self.source_system,
                                                        t.c.source_id == old_source_id)
                                        .values(source_id=new_source_id)).rowcount
        if moved:
            self.moved_from[new_source_id] = old_source_id  # restore() finds the committed row by its old key
        self.counts.updated += moved
        for other in canonical_tables().values():
            for ref in references(other):
                if ref.target is t:
                    column = other.c[ref.source_column]
                    self.connection.execute(update(other).where(other.c.source_system == self.source_system,
                                                                column == old_source_id)
                                            .values({ref.source_column: new_source_id}))

    def delete_vanished(self, max_share: float, allow_shrink: bool, connector: str, min_rows: int = 0) -> None:
        """Delete the rows this snapshot did not contain, unless that is too large a share.

        A table smaller than ``min_rows`` is not held to the share: one revoked link of
        three is a third of the table and a legitimate revocation.

        A row is present if this run wrote it (its ``sync_run_id``) or found it unchanged
        or quarantined (its id in ``seen``). The vanished ids are gathered as bits too, so
        memory stays flat however much vanished, and deleted in batches.
        """
        assert self.seen is not None
        t = self.table
        vanished, gone, before = RowIdSet(), 0, 0
        query = select(t.c.id, t.c.sync_run_id).where(t.c.source_system == self.source_system)
        for row_id, run_id in self.connection.execute(query.execution_options(yield_per=10_000)):
            if run_id == self.run_id:
                continue  # written by this run: inserted, or updated (counted below)
            before += 1
            if row_id not in self.seen:
                vanished.add(row_id)
                gone += 1
        before += self.counts.updated  # updated rows were in the table as the run found it
        if gone and not allow_shrink and before >= min_rows and gone / before > max_share:
            raise SyncRefused(connector, f"{t.name} would lose {gone} of its {before} rows "
                              f"({gone / before:.0%}, more than the {max_share:.0%} shrink limit)",
                              "check the source; if the loss is real, run again with --allow-shrink")
        for chunk in _chunks(iter(vanished), 5000):
            self.counts.deleted += self.connection.execute(delete(t).where(t.c.id.in_(chunk))).rowcount

    def resolve_references(self) -> None:
        """Fill the reference ids still empty, one joined UPDATE per column.

        Most were filled as rows were written; what is left are rows whose target came
        later (a school's parent listed after it) or has not been sent yet: tried again by
        every run until it arrives.
        """
        for ref in self.references:
            target = ref.target.alias()
            self.connection.execute(
                self.table.update()
                .where(self.table.c.source_system == self.source_system, self.table.c[ref.column].is_(None),
                       target.c.source_system == self.table.c.source_system,
                       target.c.source_id == self.table.c[ref.source_column])
                .values({ref.column: target.c.id})
            )

    def _existing(self, source_ids: list[str]) -> dict[str, tuple[int, str]]:
        t = self.table
        rows = self.connection.execute(
            select(t.c.source_id, t.c.id, t.c.row_hash).where(t.c.source_system == self.source_system,
                                                              self._among(t.c.source_id, source_ids))
        )
        return {source_id: (row_id, hashed) for source_id, row_id, hashed in rows}

    def _among(self, column: Any, values: Iterable[str]) -> Any:
        """``column IN values``; on PostgreSQL as ``= ANY(array)``, one parameter instead of
        a thousand (psycopg spent more time parsing the thousand than the server searching)."""
        if self._postgres:
            return column == any_(bindparam("among", list(values), type_=postgresql.ARRAY(String)))
        return column.in_(list(values))

    def _lineage(self, source_id: str) -> dict[str, Any]:
        return {"source_system": self.source_system, "source_id": source_id,
                "synced_at": self.synced_at, "sync_run_id": self.run_id}

    def _update_statement(self) -> Any:
        names = [*self.sanitizer.columns, *self.sanitizer.indexes, *(ref.column for ref in self.references),
                 "row_hash", "synced_at", "sync_run_id"]
        return self.table.update().where(self.table.c.id == bindparam("b_id")).values(
            {name: bindparam(f"b_{name}") for name in names})


class RowIdSet:
    """Row ids as bits in a byte array: a million rows' ids cost 125 kB, not 60 MB of a set.

    Replica ids are dense integers from one sequence per table, so a bitmap is both the
    smallest and the quickest set for them.
    """

    def __init__(self) -> None:
        self.bits = bytearray()

    def add(self, row_id: int) -> None:
        byte = row_id >> 3
        if byte >= len(self.bits):
            self.bits.extend(bytes(max(byte + 1, 2 * len(self.bits)) - len(self.bits)))
        self.bits[byte] |= 1 << (row_id & 7)

    def __contains__(self, row_id: int) -> bool:
        byte = row_id >> 3
        return byte < len(self.bits) and bool(self.bits[byte] >> (row_id & 7) & 1)

    def __iter__(self) -> Iterator[int]:
        for byte, bits in enumerate(self.bits):
            if bits:
                yield from (byte * 8 + bit for bit in range(8) if bits >> bit & 1)


def _chunks(items: Iterator[int], size: int) -> Iterator[list[int]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def table_named(name: str) -> Table:
    return canonical_tables()[name]

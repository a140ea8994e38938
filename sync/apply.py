"""Sanitize, diff and apply one canonical table's records inside the run's transaction.

Rows are matched by ``(source_system, source_id)`` and compared by their keyed row hash
of the sanitized plaintext, so re-encryption never shows as a change. A snapshot stream
remembers the ids it saw in a temporary table (memory stays flat however large the table)
and deletes what vanished, behind the shrink guard.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Column, Connection, MetaData, String, Table, bindparam, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from gateway.crypto import FieldCipher, email_index, row_hash
from gateway.dbtypes import ENCRYPTED, REFERENCE
from gateway.errors import SyncRefused
from gateway.keys import KeyRing
from gateway.records import Record
from gateway.sanitize import SanitizePolicy
from gateway.schema import blind_index_sources, canonical_tables, encryption_context, hashed_columns, storage


@dataclass
class TableCounts:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    rejected: int = 0

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
        self.seen = _seen_table(connection, table.name) if snapshot else None
        self._update = self._update_statement()
        self._analyzed = False

    def write(self, records: Sequence[Record]) -> None:
        """Insert new rows, update changed ones, count unchanged ones."""
        if not records:
            return
        latest = {record.source_id: record for record in records}  # a key seen twice: the last wins
        rows = {source_id: self.sanitizer.plaintext(record) for source_id, record in latest.items()}
        existing = self._existing(list(rows))
        inserts, updates = [], []
        for source_id, (values, hashed) in rows.items():
            if source_id not in existing:
                inserts.append({**self.sanitizer.stored(values, hashed), **self._lineage(source_id)})
            elif existing[source_id][1] != hashed:
                row = {**self.sanitizer.stored(values, hashed), **self._lineage(source_id)}
                updates.append({f"b_{k}": v for k, v in row.items()} | {"b_id": existing[source_id][0]})
            else:
                self.counts.unchanged += 1
        if inserts:
            self.connection.execute(self.table.insert(), inserts)
        if updates:
            self.connection.execute(self._update, updates)
        self.counts.inserted += len(inserts)
        self.counts.updated += len(updates)
        self.keep(rows)
        self._analyze_once_filling()

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
        """Count these ids as present in the snapshot (a quarantined record keeps its old row)."""
        ids = [{"source_id": source_id} for source_id in source_ids]
        if self.seen is not None and ids:
            self.connection.execute(_insert_ignoring_duplicates(self.connection, self.seen), ids)

    def tombstones(self, source_ids: Iterable[str]) -> None:
        ids = list(source_ids)
        if ids:
            self.counts.deleted += self.connection.execute(
                delete(self.table).where(self.table.c.source_system == self.source_system, self.table.c.source_id.in_(ids))
            ).rowcount

    def delete_vanished(self, max_share: float, allow_shrink: bool, connector: str) -> None:
        """Delete the rows this snapshot did not contain, unless that is too large a share."""
        assert self.seen is not None
        vanished = (self.table.c.source_system == self.source_system) & ~select(self.seen.c.source_id).where(
            self.seen.c.source_id == self.table.c.source_id).exists()
        gone = self.connection.execute(select(func.count()).select_from(self.table).where(vanished)).scalar_one()
        mine = self.table.c.source_system == self.source_system
        now = self.connection.execute(select(func.count()).select_from(self.table).where(mine)).scalar_one()
        before = now - self.counts.inserted  # the table as the run found it
        if gone and not allow_shrink and gone / before > max_share:
            raise SyncRefused(connector, f"{self.table.name} would lose {gone} of its {before} rows "
                              f"({gone / before:.0%}, more than the {max_share:.0%} shrink limit)",
                              "check the source; if the loss is real, run again with --allow-shrink")
        if gone:
            self.counts.deleted += self.connection.execute(delete(self.table).where(vanished)).rowcount
        self.seen.drop(self.connection)

    def resolve_references(self) -> None:
        """Fill integer ids from source ids for rows written now or still unresolved."""
        for column in self.table.columns:
            if storage(column) != REFERENCE:
                continue
            target = next(iter(column.foreign_keys)).column.table.alias()
            source_column = self.table.c[column.name.removesuffix("_id") + "_source_id"]
            lookup = select(target.c.id).where(target.c.source_system == self.table.c.source_system,
                                               target.c.source_id == source_column).scalar_subquery()
            self.connection.execute(
                self.table.update()
                .where(self.table.c.source_system == self.source_system,
                       or_(self.table.c.sync_run_id == self.run_id, column.is_(None)))
                .values({column.name: lookup})
            )

    def _existing(self, source_ids: list[str]) -> dict[str, tuple[int, str]]:
        t = self.table
        rows = self.connection.execute(
            select(t.c.source_id, t.c.id, t.c.row_hash).where(t.c.source_system == self.source_system, t.c.source_id.in_(source_ids))
        )
        return {source_id: (row_id, hashed) for source_id, row_id, hashed in rows}

    def _lineage(self, source_id: str) -> dict[str, Any]:
        return {"source_system": self.source_system, "source_id": source_id,
                "synced_at": self.synced_at, "sync_run_id": self.run_id}

    def _update_statement(self) -> Any:
        names = [*self.sanitizer.columns, *self.sanitizer.indexes, "row_hash", "synced_at", "sync_run_id"]
        return self.table.update().where(self.table.c.id == bindparam("b_id")).values(
            {name: bindparam(f"b_{name}") for name in names})


def _seen_table(connection: Connection, table: str) -> Table:
    seen = Table(f"seen_{table}", MetaData(), Column("source_id", String(255), primary_key=True), prefixes=["TEMPORARY"])
    seen.drop(connection, checkfirst=True)
    seen.create(connection)
    return seen


def _insert_ignoring_duplicates(connection: Connection, table: Table) -> Any:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def table_named(name: str) -> Table:
    return canonical_tables()[name]

"""What each replica column is: the one place sync, key rotation and auditors read it from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Table

from gateway.security.crypto import FieldCipher
from gateway.replica.dbtypes import BLIND_INDEX, ENCRYPTED, LINEAGE, PLAIN, REFERENCE
from gateway.replica.tables import CANONICAL_TABLES, ReplicaBase

STORAGE_CLASSES = (PLAIN, ENCRYPTED, BLIND_INDEX, LINEAGE, REFERENCE)


def canonical_tables() -> dict[str, Table]:
    """Every canonical replica table by name, in dependency order."""
    return {model.__tablename__: ReplicaBase.metadata.tables[model.__tablename__] for model in CANONICAL_TABLES}


def storage(column: Column[Any]) -> str:
    return str(column.info["storage"])


def columns_of(table: Table, *kinds: str) -> list[Column[Any]]:
    return [column for column in table.columns if storage(column) in kinds]


def hashed_columns(table: Table) -> list[str]:
    """The columns whose plaintext the row hash covers (what the source said)."""
    return [column.name for column in columns_of(table, PLAIN, ENCRYPTED)]


def encryption_context(table: str, column: str) -> str:
    """Associated data binding a ciphertext to its column."""
    return f"{table}.{column}"


def plaintext_of(table: Table, row: Mapping[str, Any], cipher: FieldCipher) -> dict[str, Any]:
    """A stored row's canonical plaintext: encrypted columns decrypted, lineage left out."""
    values = {}
    for name in hashed_columns(table):
        value = row[name]
        if storage(table.columns[name]) == ENCRYPTED:
            value = cipher.decrypt_optional(value, encryption_context(table.name, name))
        values[name] = value
    return values


def blind_index_sources(table: Table) -> dict[str, str]:
    """Blind-index columns mapped to the column whose value they index."""
    return {column.name: str(column.info["of"]) for column in columns_of(table, BLIND_INDEX)}


@dataclass(frozen=True)
class Reference:
    """One reference of a canonical table, kept twice: ``student_id`` for joins and
    ``student_source_id`` for what the source said (DESIGN.md's naming rule)."""

    column: str
    source_column: str
    target: Table
    required: bool

    @property
    def noun(self) -> str:
        """What the other end is, for messages: ``student``, ``guardian``, ``parent``."""
        return self.column.removesuffix("_id")


def references(table: Table) -> list[Reference]:
    """The table's references, each with its source-id column and whether it is required."""
    found = []
    for column in columns_of(table, REFERENCE):
        source_column = column.name.removesuffix("_id") + "_source_id"
        target = next(iter(column.foreign_keys)).column.table
        found.append(Reference(column.name, source_column, target, bool(column.info.get("required"))))  # type: ignore[arg-type]
    return found


def all_tables() -> dict[str, Table]:
    return dict(ReplicaBase.metadata.tables)

"""Column types and helpers shared by the replica and portal models."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import DateTime, Dialect, ForeignKey, String, Text
from sqlalchemy.orm import MappedColumn, mapped_column
from sqlalchemy.types import TypeDecorator

# Storage classes of replica columns. The schema fixes them; a district's sanitization
# policy may only tighten a column to "dropped" (stored empty).
PLAIN = "plain"
ENCRYPTED = "encrypted"
BLIND_INDEX = "blind_index"
LINEAGE = "lineage"
REFERENCE = "reference"


class UtcDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC datetime on every backend (SQLite stores no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused: pass an aware datetime")
        return value.astimezone(dt.timezone.utc)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def plain(*args: Any, **kwargs: Any) -> MappedColumn[Any]:
    """A column stored as the source gives it."""
    return mapped_column(*args, info={"storage": PLAIN}, **kwargs)


def encrypted() -> MappedColumn[Any]:
    """A column stored only as an AES-GCM token (see ``gateway.security.crypto``)."""
    return mapped_column(Text, nullable=True, info={"storage": ENCRYPTED})


def blind_index(of: str) -> MappedColumn[Any]:
    """An HMAC blind index of another (encrypted) column, for equality lookups."""
    return mapped_column(String(64), nullable=True, index=True, info={"storage": BLIND_INDEX, "of": of})


def reference_id(table: str, required: bool = False) -> MappedColumn[Any]:
    """The integer id of a referenced replica row, for joins.

    ``required``: the row means nothing without its other end (a link's student and
    guardian, an enrolment's student), so sync rejects a record whose other end is not in
    the replica rather than store it half-joined. An optional reference (a school's parent
    organisation) stays empty until its target arrives.
    """
    return mapped_column(
        ForeignKey(f"{table}.id", ondelete="SET NULL"), nullable=True, index=True,
        info={"storage": REFERENCE, "required": required}
    )


def reference_source_id(nullable: bool = False) -> MappedColumn[Any]:
    """The referenced row's source id: survives rebuilds and is covered by the row hash."""
    return mapped_column(String(255), nullable=nullable, index=True, info={"storage": PLAIN})

"""Whether a rejected record's values would narrow access: then the reject fails closed.

A quarantined record normally keeps its stored row. On the access-critical tables that
would keep access the source has just taken away (a link that no longer grants portal
access, an enrolment that now ends), so there a reject that narrows removes the stored
row instead; one that would widen access keeps the old, narrower row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Table, select

from gateway.replica.records import EnrollmentRecord, Record, StudentGuardianRecord


def narrows_access(connection: Connection, table: Table, source_system: str, record: Record) -> bool:
    if not isinstance(record, StudentGuardianRecord | EnrollmentRecord):
        return False
    stored = stored_row(connection, table, source_system, record.source_id)
    return stored is not None and narrows(table.name, record.values(), stored)


def stored_row(connection: Connection, table: Table, source_system: str, source_id: str) -> Mapping[str, Any] | None:
    row = connection.execute(select(table).where(table.c.source_system == source_system,
                                                 table.c.source_id == source_id)).mappings().first()
    return dict(row) if row is not None else None


def narrows(table: str, new: Mapping[str, Any], stored: Mapping[str, Any]) -> bool:
    """Whether ``new`` values grant less than the ``stored`` row (both plain columns here)."""
    if table == "student_guardians":
        return bool((stored["portal_access"] and not new["portal_access"])
                    or _ends_sooner(new["end_date"], stored["end_date"])
                    or _starts_later(new["start_date"], stored["start_date"]))
    if table == "enrollments":
        return (_ends_sooner(new["exit_date"], stored["exit_date"])
                or _starts_later(new["entry_date"], stored["entry_date"]))
    return False


def _ends_sooner(new: dt.date | None, old: Any) -> bool:
    return new is not None and (old is None or new < old)


def _starts_later(new: dt.date | None, old: Any) -> bool:
    return new is not None and (old is None or new > old)

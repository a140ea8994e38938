"""Whether a rejected record's values would narrow access: then the reject fails closed.

A quarantined record normally keeps its stored row. On the access-critical tables that
would keep access the source has just taken away (a link that no longer grants portal
access, an enrolment that now ends), so there a reject that narrows removes the stored
row instead; one that would widen access keeps the old, narrower row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, Table, select

from gateway.replica.records import EnrollmentRecord, Record, StudentGuardianRecord


def narrows_access(connection: Connection, table: Table, source_system: str, record: Record) -> bool:
    if not isinstance(record, StudentGuardianRecord | EnrollmentRecord):
        return False
    stored = connection.execute(select(table).where(table.c.source_system == source_system,
                                                    table.c.source_id == record.source_id)).mappings().first()
    if stored is None:
        return False
    if isinstance(record, StudentGuardianRecord):
        return ((stored["portal_access"] and not record.portal_access)
                or _ends_sooner(record.end_date, stored["end_date"])
                or _starts_later(record.start_date, stored["start_date"]))
    return (_ends_sooner(record.exit_date, stored["exit_date"])
            or _starts_later(record.entry_date, stored["entry_date"]))


def _ends_sooner(new: dt.date | None, old: Any) -> bool:
    return new is not None and (old is None or new < old)


def _starts_later(new: dt.date | None, old: Any) -> bool:
    return new is not None and (old is None or new > old)

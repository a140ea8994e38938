"""A run's findings: warnings about what it read with less than full confidence, for every summary.

The connector says what it saw in the source (unknown columns, dropped values, odd or
unreadable dates, duplicates); the run adds what only the replica can tell (references
to rows that are not there, students without a birth date where the policy refuses
unknown ones and the parents that leaves without access) and its rejects by reason.
Counts and positions only: never a value.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, and_, func, select

from gateway.replica.dbtypes import REFERENCE
from gateway.replica.records import Reject
from gateway.replica.schema import canonical_tables, storage

REASONS_PER_TABLE = 20
QUOTED = re.compile(r"'[^']*'")


def rejects_by_reason(rejects: Iterable[Reject]) -> dict[str, dict[str, int]]:
    """Per table, how many rejects gave each reason; quoted values and the record's own id
    are left out, so one reason of many rows counts as one (and no value is repeated)."""
    by_table: dict[str, Counter[str]] = {}
    for reject in rejects:
        by_table.setdefault(reject.table, Counter())[_general(reject)] += 1
    return {table: dict(counts.most_common(REASONS_PER_TABLE)) for table, counts in sorted(by_table.items())}


def _general(reject: Reject) -> str:
    reason = QUOTED.sub("'…'", reject.reason)
    return reason.replace(reject.source_id, "…") if reject.source_id else reason


def unresolved_references(connection: Connection, source_system: str) -> dict[str, int]:
    """Per ``table.column``, rows naming a source id whose row the replica does not have."""
    found = {}
    for name, table in canonical_tables().items():
        for column in table.columns:
            if storage(column) != REFERENCE:
                continue
            source_column = table.c[column.name.removesuffix("_id") + "_source_id"]
            count = connection.execute(select(func.count()).select_from(table).where(
                table.c.source_system == source_system, column.is_(None), source_column.is_not(None))).scalar_one()
            if count:
                found[f"{name}.{column.name}"] = count
    return found


def missing_birth_dates(connection: Connection, source_system: str) -> dict[str, int]:
    """Students with no birth date, and the parents with access only through such students."""
    tables = canonical_tables()
    students, links = tables["students"], tables["student_guardians"]
    unknown = select(students.c.source_id).where(students.c.source_system == source_system,
                                                 students.c.birth_date.is_(None))
    count = connection.execute(select(func.count()).select_from(unknown.subquery())).scalar_one()
    if not count:
        return {}
    known = (select(links.c.guardian_source_id).join(students, and_(
        students.c.source_system == links.c.source_system, students.c.source_id == links.c.student_source_id))
        .where(links.c.source_system == source_system, links.c.portal_access.is_(True),
               students.c.birth_date.is_not(None)))
    parents = connection.execute(select(func.count(func.distinct(links.c.guardian_source_id))).where(
        links.c.source_system == source_system, links.c.portal_access.is_(True),
        links.c.student_source_id.in_(unknown), links.c.guardian_source_id.not_in(known))).scalar_one()
    return {"students": count, "parents_without_access": parents}


def summary(connector_warnings: dict[str, Any], rejects: list[Reject], narrowed: list[str],
            connection: Connection, source_system: str, refuses_unknown_birth_dates: bool) -> dict[str, Any]:
    found = dict(connector_warnings)
    if narrowed:
        found["access_narrowed"] = {"count": len(narrowed), "first": narrowed[:5]}
    found["references_to_absent_rows"] = unresolved_references(connection, source_system)
    if refuses_unknown_birth_dates:
        found["students_without_birth_date"] = missing_birth_dates(connection, source_system)
    found["rejects_by_reason"] = rejects_by_reason(rejects)
    return {key: value for key, value in found.items() if value}

"""The PostgreSQL grants of the web's role (printed by ``gateway db grants``).

The web role may only SELECT the replica's tables. It may read the audit trail and append
to it only through ``audit_append(json)`` (migration 0007: a SECURITY DEFINER function that
refuses an entry not following the chain's head), never INSERT, UPDATE or DELETE it. Grants are per table, so they hold even when both databases
share one PostgreSQL database. Run the output as the role that owns the tables.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from gateway.portal.models import AuditEntry, PortalBase
from gateway.replica.tables import ReplicaBase


APPEND_FUNCTION = "audit_append(json)"


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def create_role_sql(role: str) -> list[str]:
    """Create the role unless it exists, so the script runs again after every upgrade."""
    return [
        f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {literal(role)}) "
        f"THEN CREATE ROLE {quote(role)} LOGIN; END IF; END$$;  -- then set its password: \\password {role}",
    ]


def replica_grants(role: str, database: str) -> list[str]:
    statements = [
        f"GRANT CONNECT ON DATABASE {quote(database)} TO {quote(role)};",
        f"GRANT USAGE ON SCHEMA public TO {quote(role)};",
    ]
    statements += [f"GRANT SELECT ON TABLE {quote(name)} TO {quote(role)};" for name in _tables(ReplicaBase.metadata)]
    return statements


def portal_grants(role: str, database: str) -> list[str]:
    audit = AuditEntry.__tablename__
    statements = [
        f"GRANT CONNECT ON DATABASE {quote(database)} TO {quote(role)};",
        f"GRANT USAGE ON SCHEMA public TO {quote(role)};",
        f"GRANT SELECT ON TABLE {quote(audit)} TO {quote(role)};",
        f"GRANT EXECUTE ON FUNCTION {APPEND_FUNCTION} TO {quote(role)};",
    ]
    statements += [
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {quote(name)} TO {quote(role)};"
        for name in _tables(PortalBase.metadata) if name != audit
    ]
    statements.append(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quote(role)};")
    return statements


def _tables(metadata: MetaData) -> list[str]:
    return [table.name for table in metadata.sorted_tables]

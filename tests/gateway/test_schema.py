"""Both databases: every table DESIGN.md names, one migration head each, models in step."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from gateway import migrate
from gateway.db import create_rw_engine
from gateway.portal.models import PortalBase
from gateway.replica.tables import ReplicaBase
from gateway.settings import Settings

# Written by hand from DESIGN.md's table: the contract auditors and exports rely on.
CANONICAL_TABLES = {
    "schools", "terms", "students", "guardians", "student_guardians", "enrollments",
    "courses", "sections", "section_terms", "section_enrollments", "assignments", "scores",
    "term_grades", "attendance", "sync_runs", "sync_rejects", "sync_cursors",
}
LINEAGE = {"id", "source_system", "source_id", "row_hash", "synced_at", "sync_run_id"}
PORTAL_TABLES = {
    "users", "user_sessions", "user_students", "applications", "activation_codes",
    "guideline_versions", "guideline_acceptances", "training_sessions", "security_reports",
    "termination_requests", "termination_request_guardians", "denials", "audit_log",
    "sync_jobs", "sync_run_requests", "locks", "throttles",
}
# What the replica must never hold, whatever the source sends (DESIGN.md).
FORBIDDEN_WORDS = ("password", "ssn", "social", "medical", "health", "discipline", "counsel", "note")


def test_upgrade_creates_every_canonical_table_with_lineage(any_instance: Settings) -> None:
    engine = create_rw_engine(any_instance.replica.url)
    inspector = inspect(engine)
    tables = set(inspector.get_table_names())
    assert CANONICAL_TABLES <= tables
    for table in CANONICAL_TABLES - {"sync_runs", "sync_rejects", "sync_cursors"}:
        columns = {column["name"] for column in inspector.get_columns(table)}
        assert LINEAGE <= columns, table
        uniques = [set(u["column_names"]) for u in inspector.get_unique_constraints(table)]
        assert {"source_system", "source_id"} in uniques, table
    engine.dispose()


def test_upgrade_creates_every_portal_table(any_instance: Settings) -> None:
    engine = create_rw_engine(any_instance.portal.url)
    assert PORTAL_TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_references_are_kept_as_id_and_source_id(instance: Settings) -> None:
    engine = create_rw_engine(instance.replica.url)
    columns = {c["name"] for c in inspect(engine).get_columns("student_guardians")}
    assert {"student_id", "student_source_id", "guardian_id", "guardian_source_id", "portal_access"} <= columns


def test_no_replica_column_could_hold_forbidden_data() -> None:
    for table in ReplicaBase.metadata.sorted_tables:
        for column in table.columns:
            assert not any(word in column.name for word in FORBIDDEN_WORDS), f"{table.name}.{column.name}"


def test_each_database_has_exactly_one_migration_head(instance: Settings) -> None:
    for name, url in (("replica", instance.replica.url), ("portal", instance.portal.url)):
        assert len(migrate.heads(name, create_rw_engine(url))) == 1


def test_migrations_match_the_models(any_instance: Settings) -> None:
    """A model change without its migration fails here (APScheduler's table aside)."""
    for url, metadata in ((any_instance.replica.url, ReplicaBase.metadata), (any_instance.portal.url, PortalBase.metadata)):
        engine = create_rw_engine(url)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={
                "include_object": migrate._include_object, "compare_type": True})
            assert compare_metadata(context, metadata) == []
        engine.dispose()


def test_sqlite_databases_run_in_wal_mode(instance: Settings) -> None:
    engine = create_rw_engine(instance.replica.url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


# Written by hand: the references a row means nothing without (issue 14). A record whose
# required other end is not in the replica is a reject, never stored half-joined.
REQUIRED_REFERENCES = {
    ("student_guardians", "student_id"), ("student_guardians", "guardian_id"), ("enrollments", "student_id"),
    ("section_terms", "section_id"), ("section_terms", "term_id"), ("section_enrollments", "section_id"),
    ("section_enrollments", "student_id"), ("assignments", "section_id"), ("scores", "assignment_id"),
    ("scores", "student_id"), ("term_grades", "student_id"), ("term_grades", "section_id"), ("attendance", "student_id"),
}


def test_required_references_are_declared_with_the_schema_and_their_source_ids_are_not_nullable() -> None:
    from gateway.replica.schema import canonical_tables, references

    declared = {(name, ref.column) for name, table in canonical_tables().items() for ref in references(table) if ref.required}
    assert declared == REQUIRED_REFERENCES
    for name, table in canonical_tables().items():
        for ref in references(table):
            assert table.columns[ref.source_column].nullable is not ref.required, (name, ref.column)

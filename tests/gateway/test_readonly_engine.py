"""The web's replica engine refuses writes at each layer on its own."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from gateway.cli import main
from gateway.security import audit
from gateway.security.keys import load_keyring
from gateway.db import create_ro_engine, create_rw_engine, install_statement_guard
from gateway.errors import ReadOnlyViolation
from gateway.settings import Settings

INSERT_SCHOOL = text(
    "INSERT INTO schools (name, kind, source_system, source_id, row_hash, synced_at, sync_run_id) "
    "VALUES ('Evil High', 'school', 'x', 'evil', 'h', CURRENT_TIMESTAMP, 1)"
)


def school_count(settings: Settings) -> int:
    engine = create_rw_engine(settings.replica.url)
    with engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM schools")).scalar_one()
    engine.dispose()
    return count


def test_sqlite_mode_ro_refuses_a_write_with_the_guard_off(instance: Settings) -> None:
    engine = create_ro_engine(instance.replica.url, guard=False)
    with engine.connect() as connection, pytest.raises(OperationalError) as caught:
        connection.execute(INSERT_SCHOOL)
    assert isinstance(caught.value.orig, sqlite3.OperationalError)
    assert "readonly" in str(caught.value.orig)
    assert school_count(instance) == 0


def test_postgres_read_only_session_refuses_a_write_with_the_guard_off(pg_instance: Settings) -> None:
    engine = create_ro_engine(pg_instance.replica.url, guard=False)
    with engine.connect() as connection, pytest.raises(DBAPIError) as caught:
        connection.execute(INSERT_SCHOOL)
    assert isinstance(caught.value.orig, psycopg.errors.ReadOnlySqlTransaction)
    assert school_count(pg_instance) == 0


def test_the_guard_stops_a_write_before_it_reaches_the_database(any_instance: Settings) -> None:
    # A read-write engine with only the guard installed: the database would accept the
    # write, so nothing but the guard stands in its way.
    engine = create_rw_engine(any_instance.replica.url)
    install_statement_guard(engine)
    with engine.connect() as connection, pytest.raises(ReadOnlyViolation):
        connection.execute(INSERT_SCHOOL)
        connection.commit()
    assert school_count(any_instance) == 0


def test_the_read_only_engine_raises_the_guards_error_not_the_databases(any_instance: Settings) -> None:
    engine = create_ro_engine(any_instance.replica.url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM students")).scalar_one() == 0
        with pytest.raises(ReadOnlyViolation):
            connection.execute(text("WITH d AS (DELETE FROM students RETURNING id) SELECT * FROM d"))


@pytest.fixture
def web_role(pg_instance: Settings, cli: CliRunner) -> Iterator[tuple[str, str]]:
    """A login role with exactly the grants `gateway db grants` prints."""
    role = f"gw_web_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(pg_instance.replica.url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
    scripts = {}
    for database in ("replica", "portal"):
        result = cli.invoke(main, ["--config", str(pg_instance.config_path), "db", "grants",
                                   "--role", role, "--database", database])
        assert result.exit_code == 0, result.output
        scripts[database] = result.output
        owner = create_engine(getattr(pg_instance, database).url, isolation_level="AUTOCOMMIT")
        with owner.connect() as connection:
            for statement in filter(None, (line.strip() for line in result.output.splitlines())):
                connection.exec_driver_sql(statement)
        owner.dispose()
    yield role, scripts["replica"]
    for database in ("replica", "portal"):
        owner = create_engine(getattr(pg_instance, database).url, isolation_level="AUTOCOMMIT")
        with owner.connect() as connection:
            connection.execute(text(f'DROP OWNED BY "{role}"'))
        owner.dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP ROLE "{role}"'))
    admin.dispose()


def as_role(url: str, role: str) -> str:
    return make_url(url).set(username=role, password=None).render_as_string(hide_password=False)


def test_the_web_role_cannot_write_the_replica_even_with_read_only_switched_off(
    pg_instance: Settings, web_role: tuple[str, str]
) -> None:
    role, _ = web_role
    engine = create_rw_engine(as_role(pg_instance.replica.url, role))
    with engine.connect() as connection:
        connection.execute(text("SET default_transaction_read_only = off"))
        assert connection.execute(text("SELECT count(*) FROM students")).scalar_one() == 0
        with pytest.raises(DBAPIError) as caught:
            connection.execute(INSERT_SCHOOL)
    assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege)
    assert school_count(pg_instance) == 0


def test_the_web_role_appends_through_the_chain_only_and_never_changes_it(
    pg_instance: Settings, web_role: tuple[str, str]
) -> None:
    role, _ = web_role
    engine = create_rw_engine(as_role(pg_instance.portal.url, role))
    ring, checkpoint = load_keyring(pg_instance, "audit"), pg_instance.audit.checkpoint_file
    for number in range(3):  # the app's own appends still work
        audit.append(engine, ring, checkpoint, audit.Event("login", actor_user_id=number))
    forged = ("INSERT INTO audit_log (id, at, action, detail, key_id, prev_hash, entry_hash) "
              "VALUES ({id}, now(), 'record.view', '{{}}', 'k', 'p', 'h{id}')")
    for statement in (forged.format(id=4), forged.format(id=0), forged.format(id=-1),
                      "UPDATE audit_log SET action = 'nothing'", "DELETE FROM audit_log"):
        with engine.connect() as connection, pytest.raises(DBAPIError) as caught:
            connection.execute(text(statement))
        assert isinstance(caught.value.orig, psycopg.errors.InsufficientPrivilege), statement
    with engine.connect() as connection:
        assert connection.execute(text("SELECT action FROM audit_log ORDER BY id")).scalars().all() == ["login"] * 3
    assert audit.verify(engine, ring, checkpoint) == audit.Verification(True, 3)


def test_the_append_function_refuses_an_entry_that_does_not_follow_the_head(
    pg_instance: Settings, web_role: tuple[str, str]
) -> None:
    role, _ = web_role
    engine = create_rw_engine(as_role(pg_instance.portal.url, role))
    ring, checkpoint = load_keyring(pg_instance, "audit"), pg_instance.audit.checkpoint_file
    audit.append(engine, ring, checkpoint, audit.Event("login", actor_user_id=1))
    entry = {"at": "2026-11-28T12:00:00+00:00", "action": "record.view", "detail": {}, "key_id": "k", "entry_hash": "h"}
    for link in ({"id": 0, "prev_hash": "0" * 64}, {"id": 5, "prev_hash": "x"}, {"id": 2, "prev_hash": "not-the-head"}):
        with engine.connect() as connection, pytest.raises(DBAPIError) as caught:
            connection.execute(text("SELECT audit_append(CAST(:entry AS json))"), {"entry": json.dumps({**entry, **link})})
        assert isinstance(caught.value.orig, psycopg.errors.IntegrityConstraintViolation), link
    assert audit.verify(engine, ring, checkpoint) == audit.Verification(True, 1)


def test_grants_give_select_only_on_every_replica_table(web_role: tuple[str, str]) -> None:
    _, script = web_role
    grants = [line for line in script.splitlines() if line.startswith("GRANT") and " ON TABLE " in line]
    assert len(grants) == 18  # 14 canonical tables, sync runs, rejects, cursors, source resource ids
    assert all(line.startswith("GRANT SELECT ON TABLE") for line in grants)


def drop_role(settings: Settings, role: str) -> None:
    for database in ("replica", "portal"):
        owner = create_engine(getattr(settings, database).url, isolation_level="AUTOCOMMIT")
        with owner.connect() as connection:
            connection.execute(text(f'DROP OWNED BY "{role}"'))
        owner.dispose()
    admin = create_engine(make_url(settings.replica.url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP ROLE "{role}"'))
    admin.dispose()


def test_the_grants_script_runs_again_through_psql_as_after_an_upgrade(pg_instance: Settings, cli: CliRunner) -> None:
    psql = shutil.which("psql") or pytest.skip("psql is not installed (Debian: postgresql-client)")
    role = f"gw_web_{uuid.uuid4().hex[:8]}"
    result = cli.invoke(main, ["--config", str(pg_instance.config_path), "db", "grants", "--role", role])
    assert result.exit_code == 0, result.output
    url = make_url(pg_instance.portal.url)
    # As the README says: psql -h HOST -d DATABASE -U OWNER -v ON_ERROR_STOP=1 -f grants.sql
    command = [psql, "-h", str(url.host), "-p", str(url.port or 5432), "-d", str(url.database),
               "-U", str(url.username), "-v", "ON_ERROR_STOP=1", "-q", "-f", "-"]
    try:
        for _ in range(2):
            done = subprocess.run(command, input=result.output, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
        replica = create_engine(pg_instance.replica.url)
        with replica.connect() as connection:
            assert connection.execute(text(f"SELECT has_table_privilege('{role}', 'students', 'SELECT')")).scalar_one()
            assert not connection.execute(text(f"SELECT has_table_privilege('{role}', 'students', 'UPDATE')")).scalar_one()
        replica.dispose()
    finally:
        drop_role(pg_instance, role)

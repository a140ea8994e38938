"""A PostgreSQL SIS whose login owns its tables: refused unless allowed; when allowed, still unwritable.

The source here is what many districts hand over: the application's own login, owner
of every table. With ``allow_writable_login = true`` only the parser, the one-statement
protocol and the read-only session stand between a hostile mapping and the data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from gateway.db import create_ro_engine, create_source_engine
from gateway.errors import ReadOnlyViolation, WritableLogin
from gateway.replica.records import Record
from gateway.security.sourcelogin import grant_statements
from gateway.settings import Settings

from connectors.mapping import load_mapping
from connectors.sql import SqlConnector

SCHEMA = """
CREATE TABLE pupils (pupil_id integer PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL,
                     comment text, "set" text, load text, security text, replace text);
INSERT INTO pupils VALUES (1, 'Ana', 'Lopez', 'c1', 's1', 'l1', 'x1', 'r1'), (2, 'Ben', 'Kim', 'c2', 's2', 'l2', 'x2', 'r2');
CREATE TABLE contacts (contact_id integer PRIMARY KEY, name text);
INSERT INTO contacts VALUES (10, 'Carla');
CREATE SEQUENCE pupils_seq;
CREATE FUNCTION bump() RETURNS integer LANGUAGE sql AS $$ UPDATE pupils SET first_name = 'pwned' RETURNING 1 $$;
"""
CHECKSUM = """
SELECT (SELECT md5(string_agg(p::text, ',' ORDER BY p.pupil_id)) FROM pupils p),
       (SELECT md5(string_agg(c::text, ',' ORDER BY c.contact_id)) FROM contacts c),
       (SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'),
       (SELECT last_value FROM pupils_seq),
       (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))
"""
READ = "SELECT CAST(pupil_id AS TEXT) AS source_id, first_name AS given_name, last_name AS family_name"
BREAKOUT = ") src; COMMIT; BEGIN READ WRITE; DELETE FROM pupils; COMMIT; --"
HOSTILE = {
    "data-modifying CTE": f"WITH d AS (DELETE FROM pupils RETURNING pupil_id, first_name, last_name) {READ} FROM d",
    "updating CTE": f"WITH u AS (UPDATE pupils SET first_name = 'x' RETURNING *) {READ} FROM u",
    "breakout": f"{READ} FROM pupils {BREAKOUT}",
    "E-string breakout": f"{READ} FROM pupils WHERE first_name <> E'\\'' {BREAKOUT}'",
    "standard string breakout": f"{READ} FROM pupils WHERE first_name <> 'a\\' {BREAKOUT}'",
    "dollar-identifier breakout": f"{READ}, first_name AS a$x$ FROM pupils {BREAKOUT} $x$",
    "tagged dollar breakout": f"{READ} FROM pupils WHERE first_name <> $x$ $y$ $x$ {BREAKOUT} $y$",
    "doubled-quote breakout": f'{READ}, first_name AS "a""" FROM pupils {BREAKOUT} "',
    "nested comment breakout": f"{READ} FROM pupils /* /* */ */ {BREAKOUT}",
    "two statements": f"{READ} FROM pupils; DELETE FROM pupils",
    "set_config": f"{READ}, set_config('default_transaction_read_only', 'off', false) AS middle_name FROM pupils",
    "advisory lock": f"{READ}, CAST(pg_advisory_lock(1) AS TEXT) AS middle_name FROM pupils",
    "nextval": f"{READ}, CAST(nextval('pupils_seq') AS TEXT) AS middle_name FROM pupils",
    "writing function": f"{READ}, CAST(bump() AS TEXT) AS middle_name FROM pupils",
    "qualified writing function": f"{READ}, CAST(public.bump() AS TEXT) AS middle_name FROM pupils",
    "for update": f"{READ} FROM pupils FOR UPDATE",
    "select into": f"{READ} INTO stolen FROM pupils",
    "delete": "DELETE FROM pupils",
}


@pytest.fixture
def owned_sis(pg_admin: object) -> Iterator[tuple[str, str]]:
    """(the owner's URL, the admin's URL) of a fresh SIS whose tables the login owns."""
    suffix = uuid.uuid4().hex[:8]
    owner, database = f"gw_owner_{suffix}", f"gw_owned_sis_{suffix}"
    admin_url = pg_admin.create(database)  # type: ignore[attr-defined]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{owner}" LOGIN'))
        connection.execute(text(f'ALTER SCHEMA public OWNER TO "{owner}"'))
    owner_url = make_url(admin_url).set(username=owner).render_as_string(hide_password=False)
    with psycopg.connect(_dsn(owner_url), autocommit=True) as connection:
        connection.execute(SCHEMA)  # type: ignore[arg-type]
    try:
        yield owner_url, admin_url
    finally:
        admin.dispose()
        pg_admin.drop(database)  # type: ignore[attr-defined]
        with pg_admin.engine.connect() as connection:  # type: ignore[attr-defined]
            connection.execute(text(f'DROP ROLE IF EXISTS "{owner}"'))


def drop_role(admin_url: str, role: str) -> None:
    """Drop a login made by a test: its grants in the SIS database first, then the role."""
    for database, statement in ((None, f'DROP OWNED BY "{role}"'), ("postgres", f'DROP ROLE IF EXISTS "{role}"')):
        url = make_url(admin_url) if database is None else make_url(admin_url).set(database=database)
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(statement))
        engine.dispose()


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def checksum(url: str) -> tuple[object, ...]:
    with psycopg.connect(_dsn(url)) as connection:
        return tuple(connection.execute(CHECKSUM).fetchone() or ())  # type: ignore[arg-type]


def mapping_file(tmp_path: Path, query: str) -> str:
    path = tmp_path / f"m{uuid.uuid4().hex[:6]}.toml"
    assert "'''" not in query
    # A TOML literal string: the query arrives exactly as written, backslashes and all.
    path.write_text(f'[streams.students]\ntable = "students"\ntables = ["pupils"]\nquery = \'\'\'{query}\'\'\'\n')
    return str(path)


def connect(url: str, mapping: str, allow_writable_login: bool) -> SqlConnector:
    return SqlConnector("sis", "sis", create_source_engine(url), load_mapping(mapping),
                        allow_writable_login=allow_writable_login)


def test_a_login_that_owns_its_tables_is_refused_before_any_read_with_the_fix(
    owned_sis: tuple[str, str], tmp_path: Path
) -> None:
    owner_url, _ = owned_sis
    # The query names a column that does not exist: the login is refused before it is ever tried.
    mapping = mapping_file(tmp_path, f"{READ}, no_such_column AS middle_name FROM pupils")
    with pytest.raises(WritableLogin) as caught:
        connect(owner_url, mapping, allow_writable_login=False)
    message = str(caught.value)
    assert "owns table public.pupils" in message and "owns schema public" in message
    assert 'GRANT SELECT ON TABLE "pupils" TO "gateway_reader";' in message
    assert "allow_writable_login = true" in message


def test_the_printed_grants_make_a_login_the_connector_accepts(owned_sis: tuple[str, str], tmp_path: Path) -> None:
    owner_url, admin_url = owned_sis
    reader = f"gw_reader_{uuid.uuid4().hex[:8]}"
    database = make_url(admin_url).database or ""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            for statement in grant_statements("postgresql", reader, database, ["pupils"]):
                connection.exec_driver_sql(statement)
        reader_url = make_url(admin_url).set(username=reader).render_as_string(hide_password=False)
        connector = connect(reader_url, mapping_file(tmp_path, f"{READ} FROM pupils"), allow_writable_login=False)
        assert connector.warnings() == []
        assert sorted(r.source_id for r in connector.iter_records("students", None) if isinstance(r, Record)) == ["1", "2"]
        connector.close()
    finally:
        admin.dispose()
        drop_role(admin_url, reader)


def test_no_hostile_mapping_writes_through_a_login_that_owns_the_tables(
    owned_sis: tuple[str, str], tmp_path: Path
) -> None:
    owner_url, _ = owned_sis
    before = checksum(owner_url)
    for name, query in HOSTILE.items():
        with pytest.raises(ReadOnlyViolation) as caught:
            connect(owner_url, mapping_file(tmp_path, query), allow_writable_login=True)
        assert caught.value.reason.startswith("mapping "), name  # refused by the parser, naming the stream
        assert checksum(owner_url) == before, name
    assert before[0] is not None and before[2] == "contacts,pupils"


def test_every_run_through_an_allowed_writable_login_warns_and_keeps_the_warning(
    owned_sis: tuple[str, str], tmp_path: Path, instance: Settings, cli: CliRunner
) -> None:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from gateway.cli import main
    from gateway.replica.tables import SyncRun

    config = Path(str(instance.config_path))
    config.write_text(config.read_text() + f'\n[[connectors]]\nname = "sis"\nkind = "sql"\nurl = "{owned_sis[0]}"\n'
                      f'mapping = "{mapping_file(tmp_path, f"{READ} FROM pupils")}"\nallow_writable_login = true\n')
    for mode in (["--full"], []):
        result = cli.invoke(main, ["--config", str(config), "sync", "run", "sis", *mode])
        assert result.exit_code == 0, result.output
        (warning,) = [line for line in result.output.splitlines() if line.startswith("WARNING: ")]
        assert warning.startswith("WARNING: connector sis: the SIS login gw_owner_")
        assert "owns table public.pupils" in warning and "allow_writable_login = true" in warning
    engine = create_engine(instance.replica.url)
    with Session(engine) as session:
        runs = session.scalars(select(SyncRun).order_by(SyncRun.id)).all()
        assert [(run.status, run.warnings) for run in runs] == [("succeeded", [warning.removeprefix("WARNING: ")])] * 2
    engine.dispose()


@pytest.mark.parametrize("statement", [
    "SELECT 1; DELETE FROM pupils",
    "COMMIT; BEGIN READ WRITE; DELETE FROM pupils; COMMIT",
])
@pytest.mark.parametrize("stream_results", [False, True])
def test_the_server_refuses_two_statements_on_the_source_engine_even_without_the_guard(
    owned_sis: tuple[str, str], statement: str, stream_results: bool
) -> None:
    owner_url, _ = owned_sis
    before = checksum(owner_url)
    engine = create_ro_engine(owner_url, guard=False, source=True)  # the connector's engine, its parsed guard left off
    with pytest.raises(DBAPIError) as caught:
        with engine.connect() as connection:
            list(connection.execution_options(stream_results=stream_results).execute(text(statement)))
    engine.dispose()
    # Prepared (or declared as a cursor): one statement, or the server refuses the string.
    assert "cannot insert multiple commands" in str(caught.value) or "CURSOR FOR COMMIT" in str(caught.value)
    assert checksum(owner_url) == before


KEYWORD_COLUMNS = {"comment": ["c1", "c2"], "replace": ["r1", "r2"], "set": ["s1", "s2"], "load": ["l1", "l2"],
                   "security": ["x1", "x2"]}


@pytest.mark.parametrize("column", sorted(KEYWORD_COLUMNS))
def test_a_column_named_like_a_keyword_is_read_from_postgresql(
    owned_sis: tuple[str, str], tmp_path: Path, column: str
) -> None:
    query = f"SELECT CAST(pupil_id AS TEXT) AS source_id, {column} AS given_name, last_name AS family_name FROM pupils"
    connector = connect(owned_sis[0], mapping_file(tmp_path, query), allow_writable_login=True)
    names = sorted(r.given_name for r in connector.iter_records("students", None) if isinstance(r, Record))  # type: ignore[attr-defined]
    assert names == KEYWORD_COLUMNS[column]


LITERALS = [  # every quoting form PostgreSQL has, with the characters that end or escape a quote
    "E'a\\\\b'", "E'\\x41'", "'a\\'", "$$ \\' ) x; DELETE $$", "$x$ it's \\ $x$", "E'\\''", "E'\\\\'''",
    "U&'d\\0061t\\+000061'", "U&'!0027) x' UESCAPE '!'", "'it''s'", "E'\\u0041'", "'a''b\\'", "B'101'",
    "X'1F'", "N'abc'", "$a$$b$$a$", "e'\\047'", "'a' || E'\\'' || $$b$$",
    '(SELECT a$b + "x""y" FROM (SELECT 1 AS a$b, 2 AS "x""y") AS t /* /* */ ) x; */)',
]


def test_what_the_parser_sends_means_what_postgresql_reads_in_the_mapping(pg_server: str) -> None:
    """The tree generated back gives the value PostgreSQL gives the original: no quoting is misread."""
    from gateway.security.sqltree import parse_query, to_sql

    with psycopg.connect(_dsn(pg_server)) as connection:
        for literal in LITERALS:
            original = connection.execute(f"SELECT {literal} AS v", prepare=True).fetchone()  # type: ignore[arg-type]
            sent = to_sql(parse_query(f"SELECT {literal} AS v", "postgres"), "postgres")
            assert connection.execute(sent, prepare=True).fetchone() == original, (literal, sent)  # type: ignore[arg-type]


def test_a_login_granted_delete_or_create_is_refused_naming_what_it_may_do(
    owned_sis: tuple[str, str], tmp_path: Path
) -> None:
    _, admin_url = owned_sis
    login = f"gw_clerk_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE ROLE "{login}" LOGIN'))
            connection.execute(text(f'GRANT USAGE, CREATE ON SCHEMA public TO "{login}"'))
            connection.execute(text(f'GRANT SELECT, DELETE, TRUNCATE ON pupils TO "{login}"'))
        url = make_url(admin_url).set(username=login).render_as_string(hide_password=False)
        with pytest.raises(WritableLogin) as caught:
            connect(url, mapping_file(tmp_path, f"{READ} FROM pupils"), allow_writable_login=False)
        assert caught.value.reasons == ["the login may CREATE in schema public",
                                        "the login has DELETE on public.pupils", "the login has TRUNCATE on public.pupils"]
    finally:
        admin.dispose()
        drop_role(admin_url, login)


def test_gateway_sync_run_refuses_a_writable_login_printing_the_fix(
    owned_sis: tuple[str, str], tmp_path: Path, instance: Settings, cli: CliRunner
) -> None:
    from gateway.cli import main

    config = Path(str(instance.config_path))
    config.write_text(config.read_text() + f'\n[[connectors]]\nname = "sis"\nkind = "sql"\nurl = "{owned_sis[0]}"\n'
                      f'mapping = "{mapping_file(tmp_path, f"{READ} FROM pupils")}"\n')
    result = cli.invoke(main, ["--config", str(config), "sync", "run", "sis"])
    assert result.exit_code == 2
    assert "the SIS login gw_owner_" in result.output and "nothing was read" in result.output
    assert 'GRANT SELECT ON TABLE "pupils" TO "gateway_reader";' in result.output

"""The SIS login check per dialect, and the statements that make a SELECT-only login.

PostgreSQL is checked live in tests/connectors/test_sql_hostile.py; SQL Server, MySQL
and Oracle here by their compiled statements and sample answers (no server of theirs
runs on this machine).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.dialects.mssql import pyodbc

from gateway.errors import UnknownPlugin
from gateway.security.sourcelogin import (
    MSSQL_ROLES, MSSQL_TABLE, PRIVILEGE_CHECKS, grant_statements, trusted_statements, writing_grants,
)
from gateway.settings import Settings


def test_each_dialect_has_one_privilege_check_and_an_unknown_one_is_named() -> None:
    assert set(PRIVILEGE_CHECKS) == {"postgresql", "sqlite", "mssql", "oracle", "mysql", "mariadb"}
    with pytest.raises(UnknownPlugin, match="valid names: mariadb, mssql, mysql, oracle, postgresql"):
        grant_statements("db2", "reader", "sis", ["students"])


def test_a_sqlite_login_has_nothing_to_check(tmp_path: Path) -> None:
    import sqlite3

    from gateway.db import create_source_engine
    from gateway.security.sourcelogin import writable_reasons

    sqlite3.connect(tmp_path / "s.db").execute("CREATE TABLE students (id integer)").connection.commit()
    engine = create_source_engine(f"sqlite:///{tmp_path / 's.db'}")
    with engine.connect() as connection:
        assert writable_reasons(connection, ["students"]) == []
    engine.dispose()


def test_sql_server_checks_roles_and_fn_my_permissions_as_compiled_for_pyodbc() -> None:
    dialect = pyodbc.dialect(paramstyle="qmark")  # as pyodbc, once loaded, makes it
    assert str(MSSQL_ROLES.compile(dialect=dialect)) == (
        "SELECT IS_SRVROLEMEMBER('sysadmin'), IS_ROLEMEMBER('db_owner'), IS_ROLEMEMBER('db_datawriter'), "
        "IS_ROLEMEMBER('db_ddladmin')")
    assert str(MSSQL_TABLE.compile(dialect=dialect)) == (
        "SELECT permission_name FROM fn_my_permissions(?, 'OBJECT') WHERE subentity_name = '' AND permission_name "
        "IN ('INSERT', 'UPDATE', 'DELETE', 'ALTER', 'CONTROL', 'TAKE OWNERSHIP')")
    assert "SELECT permission_name FROM fn_my_permissions(?, 'OBJECT')" in " ".join(trusted_statements(dialect))


def test_oracle_checks_system_privileges_ownership_and_table_grants_as_compiled_for_oracledb() -> None:
    from sqlalchemy.dialects.oracle import oracledb

    from gateway.security.sourcelogin import ORACLE_SYSTEM, ORACLE_TABLE

    dialect = oracledb.dialect()
    assert str(ORACLE_SYSTEM.compile(dialect=dialect)).startswith(
        "SELECT privilege FROM session_privs WHERE privilege IN ('INSERT ANY TABLE', 'UPDATE ANY TABLE', ")
    assert str(ORACLE_TABLE.compile(dialect=dialect)) == (
        "SELECT 'OWNER' FROM all_tables WHERE owner = USER AND table_name = :name "
        "UNION SELECT privilege FROM all_tab_privs WHERE table_name = :name "
        "AND privilege IN ('INSERT', 'UPDATE', 'DELETE', 'ALTER', 'INDEX', 'REFERENCES') "
        "AND (grantee = USER OR grantee = 'PUBLIC' OR grantee IN (SELECT role FROM session_roles))")


def test_the_postgresql_table_check_is_sent_with_a_bound_name() -> None:
    compiled = trusted_statements(postgresql.dialect())  # type: ignore[no-untyped-call]
    assert any(s.endswith("WHERE c.oid = to_regclass(%(name)s)") for s in compiled)


SELECT_ONLY = [
    "GRANT USAGE ON *.* TO `reader`@`%`",
    "GRANT SELECT ON `sis`.* TO `reader`@`%`",
    "GRANT SELECT, INSERT ON `other_db`.* TO `reader`@`%`",
    "GRANT SELECT (`first_name`), UPDATE (`nickname`) ON `sis`.`audit` TO `reader`@`%`",
]


def test_show_grants_of_a_select_only_login_has_no_writing_grant() -> None:
    assert writing_grants(SELECT_ONLY, "sis", ["students", "people"]) == []


@pytest.mark.parametrize(("grant", "expected"), [
    ("GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION", "ALL PRIVILEGES on *.*"),
    ("GRANT SELECT, INSERT, UPDATE ON `sis`.* TO 'app'@'%'", "INSERT, UPDATE on `sis`.*"),
    ("GRANT DELETE ON `sis`.`students` TO 'app'@'%'", "DELETE on `sis`.`students`"),
    ("GRANT UPDATE (`first_name`) ON `sis`.`students` TO 'app'@'%'", "UPDATE on `sis`.`students`"),
    ("GRANT SELECT ON `sis`.* TO 'app'@'%' WITH GRANT OPTION", "GRANT OPTION on `sis`.*"),
    ("GRANT FILE ON *.* TO 'app'@'%'", "FILE on *.*"),
    ("GRANT SELECT, DROP ON `s\\_is`.* TO 'app'@'%'", "DROP on `s\\_is`.*"),
])
def test_show_grants_that_can_write_are_named(grant: str, expected: str) -> None:
    assert writing_grants([*SELECT_ONLY, grant], "s_is" if "\\_" in grant else "sis", ["students"]) == [expected]


def test_a_role_granted_to_the_login_is_reported_since_its_privileges_are_not_shown() -> None:
    (problem,) = writing_grants(["GRANT `app_writer`@`%` TO `reader`@`%`"], "sis", ["students"])
    assert "granted a role (GRANT `app_writer`@`%` TO `reader`@`%`)" in problem


def test_select_only_logins_per_dialect_quote_every_name() -> None:
    assert grant_statements("postgresql", "gw reader", "sis", ["students", "grades.marks"]) == [
        "CREATE ROLE \"gw reader\" LOGIN PASSWORD 'choose-a-password' NOSUPERUSER NOCREATEROLE NOCREATEDB;",
        'ALTER ROLE "gw reader" SET default_transaction_read_only = on;',
        'GRANT CONNECT ON DATABASE "sis" TO "gw reader";',
        'GRANT USAGE ON SCHEMA "grades" TO "gw reader";',
        'GRANT USAGE ON SCHEMA "public" TO "gw reader";',
        'REVOKE CREATE ON SCHEMA "grades" FROM PUBLIC;',
        'REVOKE CREATE ON SCHEMA "public" FROM PUBLIC;',
        'GRANT SELECT ON TABLE "students", "grades"."marks" TO "gw reader";',
    ]
    assert grant_statements("mysql", "o'reader", "sis", ["stu`dents"]) == [
        "CREATE USER 'o''reader'@'%' IDENTIFIED BY 'choose-a-password';",
        "GRANT SELECT ON `sis`.`stu``dents` TO 'o''reader'@'%';",
    ]
    assert grant_statements("mssql", "reader", "sis", ["students", "grades.marks"]) == [
        "CREATE LOGIN [reader] WITH PASSWORD = 'choose-a-password';",
        "USE [sis];",
        "CREATE USER [reader] FOR LOGIN [reader];",
        "GRANT SELECT ON [dbo].[students] TO [reader];",
        "GRANT SELECT ON [grades].[marks] TO [reader];",
    ]
    assert grant_statements("oracle", "reader", "PS", ["students"]) == [
        'CREATE USER "reader" IDENTIFIED BY "choose-a-password";',
        'GRANT CREATE SESSION TO "reader";',
        'GRANT SELECT ON "PS"."students" TO "reader";',
    ]


def test_gateway_db_source_grants_prints_the_login_for_the_mappings_tables(
    instance: Settings, tmp_path: Path, cli: CliRunner
) -> None:
    from gateway.cli import main

    mapping = tmp_path / "m.toml"
    mapping.write_text('[streams.students]\ntable = "students"\ntables = ["pupils"]\nquery = """\n'
                       "WITH p AS (SELECT * FROM pupils) SELECT CAST(p.id AS TEXT) AS source_id, p.first AS given_name,\n"
                       '  n.last AS family_name FROM p JOIN names n ON n.id = p.id\n"""\n')
    config = Path(str(instance.config_path))
    config.write_text(config.read_text() + '\n[[connectors]]\nname = "sis"\nkind = "sql"\n'
                      f'url = "postgresql+psycopg://reader@db/sis"\nmapping = "{mapping}"\n')
    result = cli.invoke(main, ["--config", str(config), "db", "source-grants", "sis", "--dialect", "mysql"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "CREATE USER 'gateway_reader'@'%' IDENTIFIED BY 'choose-a-password';",
        "GRANT SELECT ON `sis`.`pupils` TO 'gateway_reader'@'%';",
        "GRANT SELECT ON `sis`.`names` TO 'gateway_reader'@'%';",
    ]
    postgres = cli.invoke(main, ["--config", str(config), "db", "source-grants", "sis"])
    assert 'GRANT SELECT ON TABLE "pupils", "names" TO "gateway_reader";' in postgres.output


def test_the_mysql_check_is_trusted_by_the_guard_as_its_driver_sends_it() -> None:
    compiled = trusted_statements(mysql.dialect())  # type: ignore[no-untyped-call]
    assert {"SHOW GRANTS", "SELECT DATABASE()"} <= compiled


def test_sql_server_and_oracle_sessions_are_read_only_by_dialect() -> None:
    from sqlalchemy.engine import make_url

    from gateway.rosession import read_only_session

    mssql_url = make_url("mssql+pyodbc://reader@sis-db/sis?driver=ODBC+Driver+18+for+SQL+Server")
    session = read_only_session(mssql_url)
    assert session.url(mssql_url).query == {"driver": "ODBC Driver 18 for SQL Server", "ApplicationIntent": "ReadOnly"}
    assert session.on_connect == ("SET TRANSACTION ISOLATION LEVEL SNAPSHOT",)
    assert read_only_session(make_url("mssql+pymssql://reader@sis-db/sis")).url_query == {}  # no ODBC keywords there
    assert read_only_session(make_url("oracle+oracledb://reader@sis-db/?service_name=PS")).on_begin == (
        "SET TRANSACTION READ ONLY",)


def test_the_parsed_guard_lets_a_sessions_own_statement_through_and_nothing_like_it() -> None:
    from gateway.errors import ReadOnlyViolation
    from gateway.security.sqltree import statement_guard

    guard = statement_guard("oracle", frozenset({"SET TRANSACTION READ ONLY"}))
    guard("SET TRANSACTION READ ONLY")
    with pytest.raises(ReadOnlyViolation):
        guard("SET TRANSACTION READ WRITE")


def test_mapping_queries_are_quoted_as_sql_server_and_oracle_read_them() -> None:
    from gateway.security.sqltree import parse_query, wrapped

    tsql = parse_query("SELECT [order] AS source_id, [set] AS given_name FROM [dbo].[Students]", "tsql")
    assert wrapped(tsql, "tsql", "src.modified_at >= :since") == (
        "SELECT * FROM (SELECT [order] AS source_id, [set] AS given_name FROM [dbo].[Students]) src "
        "WHERE src.modified_at >= :since")
    ora = parse_query('SELECT "comment" AS given_name, id AS source_id FROM ps.students', "oracle")
    assert wrapped(ora, "oracle", "1 = 0") == (
        'SELECT * FROM (SELECT "comment" AS given_name, id AS source_id FROM ps.students) src WHERE 1 = 0')

"""The SIS login checked before any read: can it write what the mapping reads?

One small function per dialect, registered in ``PRIVILEGE_CHECKS`` by SQLAlchemy dialect
name; each returns what makes the login writable (empty: SELECT-only). Each dialect
also has the statements that create a SELECT-only login (``grant_statements``), printed
when a writable login is refused and by ``gateway db source-grants``.

- PostgreSQL: superuser, CREATEROLE, owning (or being a member of the owner of) a table
  the mapping reads or its schema, INSERT/UPDATE/DELETE/TRUNCATE/TRIGGER on such a
  table, CREATE on its schema.
- SQLite: nothing to check; the file is opened ``mode=ro``.
- SQL Server: sysadmin, db_owner, db_datawriter, db_ddladmin; ``fn_my_permissions`` on
  each table for INSERT/UPDATE/DELETE/ALTER/CONTROL.
- Oracle: system privileges that write any table (``session_privs``), owning a table
  read, INSERT/UPDATE/DELETE/ALTER/INDEX/REFERENCES on it (to the login, its roles or PUBLIC).
- MySQL/MariaDB: ``SHOW GRANTS``, read by ``writing_grants``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import Connection, TextClause, text
from sqlalchemy.engine import Dialect
from sqlglot import exp

from gateway.errors import UnknownPlugin

Check = Callable[[Connection, Sequence[str]], list[str]]

PG_ROLE = text("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user")
PG_TABLE = text(
    "SELECT n.nspname, c.relname, pg_has_role(c.relowner, 'MEMBER'), pg_has_role(n.nspowner, 'MEMBER'), "
    "has_schema_privilege(n.oid, 'CREATE'), "
    "has_table_privilege(c.oid, 'INSERT'), has_table_privilege(c.oid, 'UPDATE'), "
    "has_table_privilege(c.oid, 'DELETE'), has_table_privilege(c.oid, 'TRUNCATE'), "
    "has_table_privilege(c.oid, 'TRIGGER') "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(:name)")
PG_TABLE_WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "TRIGGER")

MSSQL_ROLES = text(
    "SELECT IS_SRVROLEMEMBER('sysadmin'), IS_ROLEMEMBER('db_owner'), IS_ROLEMEMBER('db_datawriter'), "
    "IS_ROLEMEMBER('db_ddladmin')")
MSSQL_ROLE_NAMES = ("sysadmin", "db_owner", "db_datawriter", "db_ddladmin")
MSSQL_TABLE = text(
    "SELECT permission_name FROM fn_my_permissions(:name, 'OBJECT') "
    "WHERE subentity_name = '' AND permission_name IN ('INSERT', 'UPDATE', 'DELETE', 'ALTER', 'CONTROL', "
    "'TAKE OWNERSHIP')")

ORACLE_SYSTEM = text(
    "SELECT privilege FROM session_privs WHERE privilege IN ('INSERT ANY TABLE', 'UPDATE ANY TABLE', "
    "'DELETE ANY TABLE', 'ALTER ANY TABLE', 'DROP ANY TABLE', 'CREATE ANY TABLE', 'EXECUTE ANY PROCEDURE', "
    "'GRANT ANY PRIVILEGE', 'GRANT ANY ROLE', 'GRANT ANY OBJECT PRIVILEGE') ORDER BY privilege")
ORACLE_TABLE = text(
    "SELECT 'OWNER' FROM all_tables WHERE owner = USER AND table_name = :name "
    "UNION SELECT privilege FROM all_tab_privs WHERE table_name = :name "
    "AND privilege IN ('INSERT', 'UPDATE', 'DELETE', 'ALTER', 'INDEX', 'REFERENCES') "
    "AND (grantee = USER OR grantee = 'PUBLIC' OR grantee IN (SELECT role FROM session_roles))")

MYSQL_GRANTS = text("SHOW GRANTS")
MYSQL_DATABASE = text("SELECT DATABASE()")
# Privileges that write data or change what can be written (MySQL 8 and MariaDB names).
MYSQL_WRITING = frozenset({
    "ALL", "ALL PRIVILEGES", "INSERT", "UPDATE", "DELETE", "DROP", "ALTER", "CREATE", "INDEX", "TRIGGER",
    "CREATE ROUTINE", "ALTER ROUTINE", "CREATE VIEW", "CREATE TEMPORARY TABLES", "EVENT", "FILE", "SUPER",
    "GRANT OPTION", "DELETE HISTORY", "LOCK TABLES", "REFERENCES", "CREATE USER", "RELOAD", "SHUTDOWN",
})
_MYSQL_GRANT = re.compile(r"^GRANT (?P<privileges>.+?) ON (?:(?:TABLE|FUNCTION|PROCEDURE) )?(?P<scope>\S+) TO ",
                          re.IGNORECASE)

# Statements the checks send: the statement guard lets exactly these through.
STATEMENTS: tuple[TextClause, ...] = (PG_ROLE, PG_TABLE, MSSQL_ROLES, MSSQL_TABLE, ORACLE_SYSTEM, ORACLE_TABLE,
                                      MYSQL_GRANTS, MYSQL_DATABASE)


def trusted_statements(dialect: Dialect) -> frozenset[str]:
    """The checks' statements as ``dialect`` will send them."""
    return frozenset(str(statement.compile(dialect=dialect)) for statement in STATEMENTS)


def _postgresql(connection: Connection, tables: Sequence[str]) -> list[str]:
    superuser, createrole = connection.execute(PG_ROLE).one()
    problems = [problem for problem, held in (("the login is a superuser", superuser),
                                              ("the login has CREATEROLE", createrole)) if held]
    found: dict[str, list[str]] = {}  # what the login may do -> the tables or schemas it may do it to
    for table in tables:
        row = connection.execute(PG_TABLE, {"name": table}).one_or_none()
        if row is None:
            continue  # not a table here; reading it fails later with its own message
        schema, name, owns, owns_schema, create, *writes = row
        held = [("owns table", owns), ("owns schema", owns_schema), ("may CREATE in schema", create)]
        held += [(f"has {privilege} on", granted and not owns) for privilege, granted in zip(PG_TABLE_WRITES, writes)]
        for what, granted in held:
            if granted:
                target = schema if "schema" in what else f"{schema}.{name}"
                found.setdefault(what, [])
                if target not in found[what]:
                    found[what].append(target)
    return problems + [f"the login {what} {', '.join(targets)}" for what, targets in found.items()]


def _sqlite(connection: Connection, tables: Sequence[str]) -> list[str]:
    return []  # opened with mode=ro: the file cannot be written through this connection


def _mssql(connection: Connection, tables: Sequence[str]) -> list[str]:
    memberships = connection.execute(MSSQL_ROLES).one()
    problems = [f"the login is a member of {role}" for role, member in zip(MSSQL_ROLE_NAMES, memberships) if member]
    for table in tables:
        granted = sorted(connection.execute(MSSQL_TABLE, {"name": table}).scalars())
        if granted:
            problems.append(f"the login has {', '.join(granted)} on {table}")
    return problems


def _oracle(connection: Connection, tables: Sequence[str]) -> list[str]:
    problems = [f"the login has {privilege}" for privilege in connection.execute(ORACLE_SYSTEM).scalars()]
    for table in tables:
        name = table.rsplit(".", 1)[-1]
        name = name if name.startswith('"') else name.upper()  # Oracle folds unquoted names up
        granted = sorted(connection.execute(ORACLE_TABLE, {"name": name.strip('"')}).scalars())
        if "OWNER" in granted:
            problems.append(f"the login owns table {table}")
        elif granted:
            problems.append(f"the login has {', '.join(granted)} on {table}")
    return problems


def _mysql(connection: Connection, tables: Sequence[str]) -> list[str]:
    database = connection.execute(MYSQL_DATABASE).scalar()
    grants = [str(row[0]) for row in connection.execute(MYSQL_GRANTS)]
    return writing_grants(grants, str(database or ""), tables)


def writing_grants(grants: Iterable[str], database: str, tables: Sequence[str]) -> list[str]:
    """The lines of ``SHOW GRANTS`` that let the login write the database or a table read.

    A role granted to the login (``GRANT 'role' TO …``) counts: its privileges are not
    shown here, so the check cannot clear it.
    """
    problems = []
    for grant in grants:
        match = _MYSQL_GRANT.match(grant.strip())
        if match is None:
            if grant.upper().startswith("GRANT "):
                problems.append(f"the login is granted a role ({grant.strip()}); grant SELECT to it directly")
            continue
        if not _mysql_scope_covers(match["scope"], database, tables):
            continue
        privileges = {p.strip().split("(")[0].strip().upper() for p in match["privileges"].split(",")}
        writing = sorted(privileges & MYSQL_WRITING)
        if writing or " WITH GRANT OPTION" in grant.upper():
            problems.append(f"{', '.join(writing) or 'GRANT OPTION'} on {match['scope']}")
    return problems


def _mysql_scope_covers(scope: str, database: str, tables: Sequence[str]) -> bool:
    schema, _, table = scope.replace("`", "").replace("'", "").partition(".")
    if schema == "*":
        return True
    if schema.replace("\\_", "_").lower() != database.lower() and "%" not in schema:
        return False
    return table == "*" or table.lower() in {t.rsplit(".", 1)[-1].lower() for t in tables}


PRIVILEGE_CHECKS: dict[str, Check] = {
    "postgresql": _postgresql,
    "sqlite": _sqlite,
    "mssql": _mssql,
    "oracle": _oracle,
    "mysql": _mysql,
    "mariadb": _mysql,
}


def writable_reasons(connection: Connection, tables: Sequence[str]) -> list[str]:
    """What lets this connection's login write ``tables`` (empty: it can only read them)."""
    name = connection.dialect.name
    if name not in PRIVILEGE_CHECKS:
        raise UnknownPlugin("login privilege check", name, PRIVILEGE_CHECKS)
    return PRIVILEGE_CHECKS[name](connection, tables)


# --- the statements that make a SELECT-only login -------------------------------------------

GRANT_DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql", "mssql": "tsql", "oracle": "oracle"}


def _quoted(name: str, dialect: str) -> str:
    return ".".join(exp.to_identifier(part, quoted=True).sql(dialect=dialect) for part in name.split("."))


def grant_statements(dialect: str, login: str, database: str, tables: Sequence[str]) -> list[str]:
    """SQL that creates ``login`` able to SELECT ``tables`` and nothing else (``dialect``: SQLAlchemy name)."""
    if dialect not in GRANT_DIALECTS:
        raise UnknownPlugin("dialect for source grants", dialect, GRANT_DIALECTS)
    glot = GRANT_DIALECTS[dialect]
    user, db = _quoted(login, glot), _quoted(database, glot)
    names = ", ".join(_quoted(t, glot) for t in tables)
    if glot == "postgres":
        schemas = sorted({t.rsplit(".", 1)[0] if "." in t else "public" for t in tables})
        return [f"CREATE ROLE {user} LOGIN PASSWORD 'choose-a-password' NOSUPERUSER NOCREATEROLE NOCREATEDB;",
                f"ALTER ROLE {user} SET default_transaction_read_only = on;",
                f"GRANT CONNECT ON DATABASE {db} TO {user};",
                *[f"GRANT USAGE ON SCHEMA {_quoted(s, glot)} TO {user};" for s in schemas],
                *[f"REVOKE CREATE ON SCHEMA {_quoted(s, glot)} FROM PUBLIC;" for s in schemas],
                f"GRANT SELECT ON TABLE {names} TO {user};"]
    if glot == "mysql":
        account = f"{_mysql_string(login)}@'%'"
        return [f"CREATE USER {account} IDENTIFIED BY 'choose-a-password';",
                *[f"GRANT SELECT ON {db}.{_quoted(t.rsplit('.', 1)[-1], glot)} TO {account};" for t in tables]]
    if glot == "tsql":
        return [f"CREATE LOGIN {user} WITH PASSWORD = 'choose-a-password';",
                f"USE {db};",
                f"CREATE USER {user} FOR LOGIN {user};",
                *[f"GRANT SELECT ON {_quoted(t if '.' in t else 'dbo.' + t, glot)} TO {user};" for t in tables]]
    return [f"CREATE USER {user} IDENTIFIED BY \"choose-a-password\";",
            f"GRANT CREATE SESSION TO {user};",
            *[f"GRANT SELECT ON {_quoted(t if '.' in t else database + '.' + t, glot)} TO {user};" for t in tables]]


def _mysql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"

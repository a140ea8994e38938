"""Hostile mappings against a MariaDB SIS whose login can write: each fails, no table changes.

Three configurations: the product's engine with the database owner's login (ALL on the
database); the product's engine with root (every privilege, FILE included); and the owner's
login with the statement guard switched off, so that only the server's walls stand: the
read-only session and transaction, CLIENT.MULTI_STATEMENTS off, and a login without FILE.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from gateway.db import create_ro_engine, create_source_engine
from gateway.errors import GatewayError
from gateway.settings import SOURCE_DRIVERS

from connectors.mapping import load_mapping
from connectors.sql import SqlConnector

from ..conftest import MysqlAdmin

SYNTAX_ERROR, READ_ONLY_TRANSACTION, NO_FILE_PRIVILEGE, ACCESS_DENIED = 1064, 1792, 1227, 1045
BASE = "SELECT CAST(id AS CHAR) AS source_id, first AS given_name, last AS family_name FROM kids"
# Where a file-writing form would put the SIS's rows (on the server's machine: this one).
OUT = "/tmp/gw-hostile-{token}.txt"
HOSTILE = {
    "closes the subquery and deletes": f"{BASE}) AS x; DELETE FROM kids; SELECT * FROM (SELECT 1 AS source_id",
    "adds a second statement": f"{BASE}; DELETE FROM kids",
    "commits and reopens read-write": f"{BASE}; COMMIT; SET SESSION TRANSACTION READ WRITE; DELETE FROM kids",
    "hides the rest behind a hash comment": f"{BASE}) AS x; DELETE FROM kids #",
    "deletes in an executable comment": f"{BASE} /*!50000 ; DELETE FROM kids */",
    "deletes in a MariaDB executable comment": f"{BASE} /*M!100000 ; DELETE FROM kids */",
    "is a WITH that deletes": "WITH k AS (SELECT id FROM kids) DELETE FROM kids WHERE id IN (SELECT id FROM k)",
    "replaces rows": "REPLACE INTO kids VALUES (1, 'Mallory', 'X')",
    "updates": "UPDATE kids SET first = 'Mallory'",
    "locks the rows it reads (FOR UPDATE)": f"{BASE} FOR UPDATE",
    "calls a function that deletes": f"{BASE} WHERE wipe_kids() = 1",
    "calls a procedure that deletes": "CALL wipe_kids_proc()",
    "writes the rows into a file (INTO OUTFILE)": f"{BASE} INTO OUTFILE '{OUT}'",
    "closes the subquery and writes a file": f"{BASE}) AS x INTO OUTFILE '{OUT}' #",
    "writes a file in an executable comment": f"{BASE}) AS x /*!50000 INTO DUMPFILE '{OUT}' */ #",
    # The regex guard reads these differently from MySQL: a quote after `#` (a comment to
    # MySQL) opens a string for the guard; `--1` is a comment to the guard, minus minus one
    # to MySQL. Both hide an INTO OUTFILE from the guard.
    "hides INTO OUTFILE in a quote behind a hash comment": f"{BASE}) AS x # '\n INTO OUTFILE '{OUT}' -- '",
    "hides INTO OUTFILE behind a double minus": f"{BASE}) AS x WHERE 1 --1 INTO OUTFILE '{OUT}'\n#",
    "drops a table": "DROP TABLE kin",
    "truncates": "TRUNCATE TABLE kids",
    "loads a file into a table": "LOAD DATA INFILE '/etc/hostname' INTO TABLE kin",
}
SETUP = (
    "CREATE TABLE kids (id INT PRIMARY KEY, first VARCHAR(60), last VARCHAR(60), changed DATETIME)",
    "CREATE TABLE kin (link INT PRIMARY KEY, kid INT, adult INT)",
    "INSERT INTO kids VALUES (1, 'Ana', 'Lopez', '2026-11-01 08:00:00'), (2, 'Ben', 'Kim', '2026-11-02 08:00:00')",
    "INSERT INTO kin VALUES (7, 1, 9)",
    "CREATE FUNCTION wipe_kids() RETURNS INT MODIFIES SQL DATA BEGIN DELETE FROM kids; RETURN 1; END",
    "CREATE PROCEDURE wipe_kids_proc() MODIFIES SQL DATA BEGIN DELETE FROM kids; END",
)


def fingerprint(url: str) -> dict[str, object]:
    """CHECKSUM TABLE of every table in the SIS database, and its routines."""
    engine = create_engine(url)
    with engine.connect() as connection:
        tables = connection.execute(text("SELECT table_name FROM information_schema.tables "
                                         "WHERE table_schema = DATABASE() ORDER BY 1")).scalars().all()
        sums: dict[str, object] = {name: connection.execute(text(f"CHECKSUM TABLE `{name}`")).one()[1] for name in tables}
        sums["routines"] = connection.execute(text("SELECT GROUP_CONCAT(routine_name ORDER BY 1) FROM "
                                                   "information_schema.routines WHERE routine_schema = DATABASE()")).scalar()
    engine.dispose()
    return sums


def written(out: Path) -> bool:
    """Whether the server wrote the file (it runs on this machine); removed either way."""
    exists = out.exists()
    out.unlink(missing_ok=True)
    return exists


def write_mapping(tmp_path: Path, query: str) -> str:
    path = tmp_path / "hostile.toml"
    # A TOML literal string: the query reaches the connector byte for byte (backslashes too).
    path.write_text(f"[streams.students]\ntable = \"students\"\ntables = [\"kids\"]\nincremental = true\n"
                    f"query = '''{query}'''\n")
    return str(path)


def attempt(url: str, guard: bool, mapping: str) -> list[str]:
    """Every way the connector sends a mapping's query: the column check, a full and an incremental read."""
    outcomes = []
    try:
        # allow_writable_login: only the parser, the protocol and the read-only session stand
        # in the way (a writable login is otherwise refused before anything is read).
        engine = (create_source_engine(url, drivers=SOURCE_DRIVERS) if guard
                  else create_ro_engine(url, guard=False, source=True, drivers=SOURCE_DRIVERS))
        connector = SqlConnector("sis", "sis", engine, load_mapping(mapping), allow_writable_login=True)
    except (GatewayError, SQLAlchemyError) as exc:
        return [f"refused before reading: {type(exc).__name__}"]
    for since in (None, dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)):
        try:
            list(connector.iter_records("students", since))
            outcomes.append("read")
        except (GatewayError, SQLAlchemyError) as exc:
            outcomes.append(f"refused: {type(exc).__name__}")
    connector.close()
    return outcomes


@pytest.fixture
def sis(mysql_database: str, mysql_admin: MysqlAdmin) -> tuple[str, str]:
    """The SIS database: its owner's URL (ALL on it) and root's URL."""
    owner = create_engine(mysql_database)
    with owner.begin() as connection:
        for statement in SETUP:
            connection.execute(text(statement))
    owner.dispose()
    return mysql_database, mysql_admin.admin_url_for(make_url(mysql_database).database or "")


MAPPING_CASES = [pytest.param(form, login, guard, id=f"{form}-{login}{'' if guard else ', no guard'}")
                 for form in HOSTILE for login, guard in (("owner", True), ("root", True), ("owner", False))]


@pytest.mark.parametrize("form, login, guard", MAPPING_CASES)
def test_a_hostile_mapping_fails_and_every_source_table_is_unchanged(
    form: str, login: str, guard: bool, sis: tuple[str, str], tmp_path: Path
) -> None:
    owner, root = sis
    before = fingerprint(root)
    out = Path(OUT.format(token=uuid.uuid4().hex))
    mapping = write_mapping(tmp_path, HOSTILE[form].replace(OUT, str(out)))
    outcomes = attempt(owner if login == "owner" else root, guard, mapping)
    assert not written(out)
    assert all(outcome.startswith("refused") for outcome in outcomes), outcomes
    assert fingerprint(root) == before


# The server's walls alone, with the statement sent as written (no guard, no wrapping query).
# Not listed: root writing a file (INTO OUTFILE/DUMPFILE). The server lets a login holding FILE
# do that inside a read-only transaction; the statement guard (and a parser) and a login
# without FILE are the walls there.
FILE_FORMS = {form for form, query in HOSTILE.items() if "OUTFILE" in query or "DUMPFILE" in query}
RAW_CASES = [(form, "owner") for form in HOSTILE] + [(form, "root") for form in HOSTILE if form not in FILE_FORMS]


@pytest.mark.parametrize("form, login", RAW_CASES)
def test_a_hostile_statement_sent_as_written_through_the_source_session_is_refused_by_the_server(
    form: str, login: str, sis: tuple[str, str]
) -> None:
    owner, root = sis
    before = fingerprint(root)
    out = Path(OUT.format(token=uuid.uuid4().hex))
    engine = create_ro_engine(owner if login == "owner" else root, guard=False, drivers=SOURCE_DRIVERS)
    with engine.connect() as connection, pytest.raises(DBAPIError) as caught:
        connection.execute(text(HOSTILE[form].replace(OUT, str(out))))
    engine.dispose()
    assert not written(out)
    # Refused as a second statement, as a write in a read-only transaction, or for want of FILE.
    assert caught.value.orig.args[0] in (SYNTAX_ERROR, READ_ONLY_TRANSACTION, NO_FILE_PRIVILEGE, ACCESS_DENIED)
    assert fingerprint(root) == before

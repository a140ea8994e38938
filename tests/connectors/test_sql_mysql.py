"""The sql connector on a live MariaDB server: read-only sessions, one statement per round
trip, zero dates, ZEROFILL ids, TIMESTAMP time zones, utf8mb4, streaming, and the demo SIS.

Every test gets its own database and a login holding ALL on it (a login that can write):
the walls tested here are the server's, so most engines are built without the statement guard.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from gateway.db import create_ro_engine
from gateway.errors import ConfigError
from gateway.replica.records import Record, Reject
from gateway.settings import SOURCE_DRIVERS, ConnectorSettings, Settings
from gateway.security.keys import write_secret_file

from connectors.mapping import load_mapping
from connectors.sql import SqlConnector, from_settings

# Each test's login owns its database (the mysql_database fixture): these tests are about
# reading values, the login check has its own (test_sql_mysql_hostile, test_sourcelogin).
OWNER_LOGIN = True

UTC = dt.timezone.utc
READ_ONLY_TRANSACTION = 1792  # ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
SYNTAX_ERROR = 1064  # ER_PARSE_ERROR: what a second statement is without CLIENT.MULTI_STATEMENTS


def admin(url: str) -> Engine:
    """The test's writable login, for setting the source up and checking it afterwards."""
    return create_engine(url, isolation_level="AUTOCOMMIT")


def source_engine(url: str) -> Engine:
    """The connector's engine for a MySQL source, without the statement guard: only the server's walls."""
    return create_ro_engine(url, guard=False, source=True, drivers=SOURCE_DRIVERS)


def setup_sql(url: str, *statements: str) -> None:
    engine = admin(url)
    with engine.connect() as connection:
        connection.execute(text("SET SESSION sql_mode = ''"))  # let the SIS store zero dates, as old ones did
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()


def count(url: str, table: str = "kids") -> int:
    engine = admin(url)
    with engine.connect() as connection:
        number = connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    engine.dispose()
    return int(number)


def write_mapping(tmp_path: Path, query: str, table: str = "students", tables: str = '["kids"]',
                  incremental: bool = False) -> str:
    path = tmp_path / f"mapping-{table}.toml"
    path.write_text(f'[streams.{table}]\ntable = "{table}"\ntables = {tables}\nincremental = {str(incremental).lower()}\n'
                    f'query = """{query}"""\n')
    return str(path)


@pytest.fixture
def kids(mysql_database: str) -> str:
    setup_sql(mysql_database,
              "CREATE TABLE kids (id INT PRIMARY KEY, first VARCHAR(60), last VARCHAR(60), born DATE, changed DATETIME)",
              "INSERT INTO kids VALUES (1, 'Ana', 'Lopez', '2012-03-01', '2026-11-01 08:00:00'),"
              " (2, 'Ben', 'Kim', '2013-04-02', '2026-11-02 08:00:00')")
    return mysql_database


# --- read-only at the server ---------------------------------------------------------------------

def test_a_write_through_the_connectors_session_is_refused_by_the_read_only_transaction(kids: str) -> None:
    engine = source_engine(kids)
    with engine.connect() as connection, pytest.raises(DBAPIError) as caught:
        connection.execute(text("INSERT INTO kids (id, first, last) VALUES (3, 'Cy', 'Ng')"))
    engine.dispose()
    assert caught.value.orig.args[0] == READ_ONLY_TRANSACTION
    assert count(kids) == 2


def test_a_session_cannot_switch_itself_back_to_read_write_inside_its_transaction(kids: str) -> None:
    engine = source_engine(kids)
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))  # the read-only transaction has begun
        with pytest.raises(DBAPIError):
            connection.execute(text("SET TRANSACTION READ WRITE"))
        with pytest.raises(DBAPIError) as caught:
            connection.execute(text("DELETE FROM kids"))
    engine.dispose()
    assert caught.value.orig.args[0] == READ_ONLY_TRANSACTION
    assert count(kids) == 2


def test_a_two_statement_string_is_refused_by_the_server(kids: str) -> None:
    engine = source_engine(kids)
    with engine.connect() as connection, pytest.raises(DBAPIError) as caught:
        connection.execute(text("SELECT 1; DELETE FROM kids"))
    engine.dispose()
    assert caught.value.orig.args[0] == SYNTAX_ERROR
    assert count(kids) == 2


def test_the_url_cannot_turn_multiple_statements_back_on(kids: str) -> None:
    engine = source_engine(f"{kids}{'&' if '?' in kids else '?'}client_flag=65536")  # CLIENT.MULTI_STATEMENTS
    with engine.connect() as connection, pytest.raises(DBAPIError) as caught:
        connection.execute(text("SELECT 1; SELECT 2"))
    engine.dispose()
    assert caught.value.orig.args[0] == SYNTAX_ERROR


def test_the_same_two_statements_run_on_a_connection_that_allows_them(kids: str) -> None:
    """The control for the two tests above: the refusal is the missing flag, not the string."""
    import pymysql

    url = make_url(kids)
    connection = pymysql.connect(user=url.username, password=url.password, database=url.database,
                                 unix_socket=url.query.get("unix_socket"), host=url.host or "localhost",
                                 client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS, autocommit=True)
    connection.cursor().execute("SELECT 1; DELETE FROM kids WHERE id = 2")
    connection.close()
    assert count(kids) == 1


# --- values ----------------------------------------------------------------------------------------

def test_zero_dates_are_rejects_naming_the_field_and_the_other_rows_load(kids: str, tmp_path: Path) -> None:
    setup_sql(kids, "INSERT INTO kids VALUES (3, 'Cy', 'Ng', '0000-00-00', '2026-11-03 08:00:00'),"
                    " (4, 'Di', 'Ho', '2014-05-03', '0000-00-00 00:00:00')")
    mapping = write_mapping(tmp_path, "SELECT id AS source_id, first AS given_name, last AS family_name, "
                                      "born AS birth_date, changed AS modified_at FROM kids ORDER BY id", incremental=True)
    items = list(SqlConnector("sis", "sis", source_engine(kids), load_mapping(mapping), allow_writable_login=OWNER_LOGIN).iter_records("students", None))
    assert [type(item).__name__ for item in items] == ["StudentRecord", "StudentRecord", "Reject", "Reject"]
    born, changed = items[2], items[3]
    assert isinstance(born, Reject) and isinstance(changed, Reject)
    assert born.source_id == "3" and born.reason.startswith("birth_date: '0000-00-00' is a MySQL zero date")
    assert changed.source_id == "4" and changed.reason.startswith("modified_at: '0000-00-00 00:00:00")
    assert "zero date" in changed.reason


def test_a_zerofill_id_arrives_as_its_number_and_matches_plain_references_to_it(mysql_database: str, tmp_path: Path) -> None:
    setup_sql(mysql_database,
              "CREATE TABLE kids (id INT(5) UNSIGNED ZEROFILL PRIMARY KEY, first VARCHAR(60), last VARCHAR(60))",
              "CREATE TABLE kin (link INT PRIMARY KEY, kid INT, adult INT)",
              "INSERT INTO kids VALUES (42, 'Ana', 'Lopez')", "INSERT INTO kin VALUES (7, 42, 9)")
    students = write_mapping(tmp_path, "SELECT id AS source_id, first AS given_name, last AS family_name FROM kids")
    links = write_mapping(tmp_path, "SELECT link AS source_id, kid AS student_source_id, adult AS guardian_source_id, "
                                    "1 AS portal_access FROM kin", table="student_guardians", tables='["kin"]')
    engine = source_engine(mysql_database)
    [student] = SqlConnector("sis", "sis", engine, load_mapping(students), allow_writable_login=OWNER_LOGIN).iter_records("students", None)
    [link] = SqlConnector("sis", "sis", engine, load_mapping(links), allow_writable_login=OWNER_LOGIN).iter_records("student_guardians", None)
    assert isinstance(student, Record) and isinstance(link, Record)
    assert student.source_id == "42" and link.student_source_id == "42"  # not "00042"


def test_timestamp_columns_are_read_in_utc_and_datetime_columns_in_the_source_zone(
    mysql_database: str, tmp_path: Path
) -> None:
    # The SIS wrote both at 06:00 Chicago time (CST, UTC-6, in November): 12:00 UTC.
    setup_sql(mysql_database,
              "CREATE TABLE kids (id INT PRIMARY KEY, first VARCHAR(60), last VARCHAR(60), "
              "stamped TIMESTAMP NULL, written DATETIME)",
              "SET SESSION time_zone = '-06:00'",
              "INSERT INTO kids VALUES (1, 'Ana', 'Lopez', '2026-11-02 06:00:00', '2026-11-02 06:00:00')")
    noon_utc = dt.datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    chicago = ZoneInfo("America/Chicago")
    for column in ("stamped", "written"):
        mapping = write_mapping(tmp_path, f"SELECT id AS source_id, first AS given_name, last AS family_name, "
                                          f"{column} AS modified_at FROM kids", incremental=True)
        connector = SqlConnector("sis", "sis", source_engine(mysql_database), load_mapping(mapping), allow_writable_login=OWNER_LOGIN, source_zone=chicago)
        [record] = connector.iter_records("students", None)
        assert isinstance(record, Record) and record.modified_at == noon_utc, column
        assert len(list(connector.iter_records("students", noon_utc))) == 1, column  # the bound is in the same zone
        assert list(connector.iter_records("students", noon_utc + dt.timedelta(seconds=1))) == [], column
        connector.close()


def test_four_byte_characters_come_through_whole(mysql_database: str, tmp_path: Path) -> None:
    setup_sql(mysql_database,
              "CREATE TABLE kids (id INT PRIMARY KEY, first VARCHAR(60), last VARCHAR(60)) CHARACTER SET utf8mb4",
              "INSERT INTO kids VALUES (1, 'Zoë 🌻', '𝔊arcía')")
    mapping = write_mapping(tmp_path, "SELECT id AS source_id, first AS given_name, last AS family_name FROM kids")
    [record] = SqlConnector("sis", "sis", source_engine(mysql_database), load_mapping(mapping), allow_writable_login=OWNER_LOGIN).iter_records("students", None)
    assert isinstance(record, Record)
    assert (record.given_name, record.family_name) == ("Zoë 🌻", "𝔊arcía")  # type: ignore[attr-defined]


def test_bit_flags_and_text_in_binary_columns_are_read_as_values(mysql_database: str, tmp_path: Path) -> None:
    setup_sql(mysql_database,
              "CREATE TABLE kin (link INT PRIMARY KEY, kid INT, adult INT, rights BIT(1), rel VARBINARY(20))",
              "INSERT INTO kin VALUES (1, 10, 20, b'1', 'mother'), (2, 11, 21, b'0', 'aunt'), (3, 12, 22, b'1', X'FF')")
    links = write_mapping(tmp_path, "SELECT link AS source_id, kid AS student_source_id, adult AS guardian_source_id, "
                                    "rights AS portal_access, rel AS relationship FROM kin ORDER BY link",
                          table="student_guardians", tables='["kin"]')
    connector = SqlConnector("sis", "sis", source_engine(mysql_database), load_mapping(links), allow_writable_login=OWNER_LOGIN)
    first, second, third = connector.iter_records("student_guardians", None)
    assert isinstance(first, Record) and isinstance(second, Record)
    assert (first.portal_access, first.relationship) == (True, "mother")  # type: ignore[attr-defined]
    assert (second.portal_access, second.relationship) == (False, "aunt")  # type: ignore[attr-defined]
    assert isinstance(third, Reject) and third.reason == "relationship: a binary value is not UTF-8 text"


def test_rows_stream_from_a_server_side_cursor(mysql_database: str, tmp_path: Path) -> None:
    """After the first record the query is still running on the server: nothing was buffered whole."""
    setup_sql(mysql_database,
              "CREATE TABLE kids (id INT PRIMARY KEY, first VARCHAR(60), last VARCHAR(200))",
              "INSERT INTO kids SELECT seq, 'Ana', REPEAT('x', 200) FROM seq_1_to_50000")
    mapping = write_mapping(tmp_path, "SELECT id AS source_id, first AS given_name, last AS family_name "
                                      "FROM kids AS gw_streaming_probe")  # the parser drops comments; an alias is sent
    connector = SqlConnector("sis", "sis", source_engine(mysql_database), load_mapping(mapping), allow_writable_login=OWNER_LOGIN, batch_size=100)
    rows = connector.iter_records("students", None)
    assert isinstance(next(rows), Record)
    engine = admin(mysql_database)
    with engine.connect() as connection:
        running = connection.execute(text(
            "SELECT count(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' "
            "AND INFO LIKE '%gw_streaming_probe%' AND INFO NOT LIKE '%PROCESSLIST%'")).scalar_one()
    engine.dispose()
    assert running == 1
    assert sum(1 for _ in rows) == 49_999
    connector.close()


# --- configuration ---------------------------------------------------------------------------------

def test_a_mysql_url_is_accepted_for_a_sql_connector(kids: str, instance: Settings, tmp_path: Path) -> None:
    url = make_url(kids)
    write_secret_file(instance.keys_dir / "source-opensis", url.password or "")
    mapping = write_mapping(tmp_path, "SELECT id AS source_id, first AS given_name, last AS family_name FROM kids")
    without_password = URL.create(url.drivername, url.username, None, url.host, url.port, url.database, url.query)
    entry = ConnectorSettings("opensis", "sql", "opensis", {"url": without_password.render_as_string(), "mapping": mapping},
                              allow_writable_login=OWNER_LOGIN)
    connector = from_settings(entry, instance)
    assert sorted(item.source_id for item in connector.iter_records("students", None)) == ["1", "2"]
    connector.close()


def test_a_mysql_url_for_the_replica_is_still_refused(tmp_path: Path) -> None:
    from gateway.db import create_rw_engine

    with pytest.raises(ConfigError, match="mysql"):
        create_rw_engine("mysql+pymysql://gateway@db/replica")

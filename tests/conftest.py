"""Fixtures shared by every test: instances on SQLite and PostgreSQL, MariaDB sources, the app, a pinned today.

Each test gets its own databases: SQLite files copied from a template migrated once per
session, PostgreSQL databases created from template databases (``CREATE DATABASE ...
TEMPLATE``), so isolation costs milliseconds instead of a migration per test.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gateway import migrate
from gateway.db import create_rw_engine
from gateway.instance import create_missing_keys, write_config
from gateway.settings import Settings, load_settings

PINNED_TODAY = dt.date(2026, 11, 28)
PG_URL = os.environ.get("GATEWAY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
# MariaDB/MySQL plays a SIS (openSIS, Gibbon); root over the local unix socket by default.
MYSQL_URL = os.environ.get("GATEWAY_TEST_MYSQL_URL", "mysql+pymysql://root@localhost/?unix_socket=/run/mysqld/mysqld.sock")
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GATEWAY_SHARED_DIR", REPO.parent / "shared"))
STRICT_MARKERS = ("postgres", "mysql", "interop", "browser")


# --- CI: a skipped PostgreSQL, MariaDB, interop or browser test is a failure, not a skip -------

def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(name.startswith("pg_") for name in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)
        if any(name.startswith("mysql_") for name in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.mysql)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    strict = [m for m in STRICT_MARKERS if item.get_closest_marker(m)]
    if report.skipped and strict and in_ci() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true: a {'/'.join(strict)} test may not skip ({reason})"


# --- time -----------------------------------------------------------------------------

@pytest.fixture
def today() -> dt.date:
    """The pinned "today" of the test instances (POLICY-CASES.md's first example date)."""
    return PINNED_TODAY


# --- instances --------------------------------------------------------------------------

def make_instance(directory: Path, extra: str = "", env: dict[str, str] | None = None) -> Settings:
    config = write_config(directory, "test", "Test Unified School District", "America/Chicago",
                          extra=f'\n[policy]\ntoday = "{PINNED_TODAY.isoformat()}"\n' + extra)
    settings = load_settings(config, env=env or {})
    create_missing_keys(settings)
    return settings


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both SQLite databases migrated once; tests get copies."""
    folder = tmp_path_factory.mktemp("sqlite-templates")
    paths = {}
    for name in migrate.DATABASES:
        paths[name] = folder / f"{name}.sqlite3"
        engine = create_rw_engine(f"sqlite:///{paths[name]}")
        migrate.upgrade(name, engine)
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
    return paths


@pytest.fixture
def instance(tmp_path: Path, sqlite_templates: dict[str, Path]) -> Settings:
    """A test instance on SQLite with fresh keys and migrated, empty databases."""
    settings = make_instance(tmp_path / "instance")
    for name, template in sqlite_templates.items():
        shutil.copyfile(template, settings.instance_dir / f"{name}.sqlite3")
    return settings


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The PostgreSQL server's admin URL, or a skip saying why there is none."""
    try:
        engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means: no server to test against
        pytest.skip(f"no PostgreSQL at {make_url(PG_URL).render_as_string(hide_password=True)} ({type(exc).__name__}); "
                    "set GATEWAY_TEST_PG_URL")
    return PG_URL


class PgAdmin:
    """Creates and drops throwaway databases on the test server."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.engine = create_engine(self.url, isolation_level="AUTOCOMMIT")

    def url_for(self, database: str) -> str:
        return self.url.set(database=database).render_as_string(hide_password=False)

    def create(self, database: str, template: str | None = None) -> str:
        clause = f' TEMPLATE "{template}"' if template else ""
        with self.engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{database}"{clause}'))
        return self.url_for(database)

    def drop(self, database: str) -> None:
        with self.engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_admin(pg_server: str) -> Iterator[PgAdmin]:
    admin = PgAdmin(pg_server)
    yield admin
    admin.engine.dispose()


@pytest.fixture(scope="session")
def pg_templates(pg_admin: PgAdmin) -> Iterator[dict[str, str]]:
    """Both databases migrated once into template databases for this test session."""
    suffix = uuid.uuid4().hex[:8]
    names = {name: f"gw_tpl_{name}_{suffix}" for name in migrate.DATABASES}
    for name, database in names.items():
        engine = create_rw_engine(pg_admin.create(database))
        migrate.upgrade(name, engine)
        engine.dispose()
    yield names
    for database in names.values():
        pg_admin.drop(database)


@pytest.fixture
def pg_instance(tmp_path: Path, pg_admin: PgAdmin, pg_templates: dict[str, str]) -> Iterator[Settings]:
    """A test instance whose replica and portal are fresh PostgreSQL databases."""
    suffix = uuid.uuid4().hex[:8]
    databases = {name: f"gw_test_{name}_{suffix}" for name in migrate.DATABASES}
    urls = {name: pg_admin.create(db, template=pg_templates[name]) for name, db in databases.items()}
    extra = f'\n[replica]\nurl = "{urls["replica"]}"\n\n[portal]\nurl = "{urls["portal"]}"\n'
    yield make_instance(tmp_path / "instance", extra=extra)
    for database in databases.values():
        pg_admin.drop(database)


@pytest.fixture(params=["sqlite", "postgres"])
def any_instance(request: pytest.FixtureRequest) -> Settings:
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("instance")
    request.node.add_marker(pytest.mark.postgres)
    return request.getfixturevalue("pg_instance")


# --- MariaDB/MySQL sources ------------------------------------------------------------------

@pytest.fixture(scope="session")
def mysql_server() -> str:
    """The MariaDB/MySQL server's admin URL, or a skip saying why there is none."""
    where = make_url(MYSQL_URL).render_as_string(hide_password=True)
    try:
        import pymysql  # noqa: F401  (the mysql extra)
    except ImportError:
        pytest.skip(f"PyMySQL is not installed (pip install -e '.[mysql]'); needed for MariaDB at {where}")
    try:
        engine = create_engine(MYSQL_URL)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means: no server to test against
        reason = str(getattr(exc, "orig", exc)).splitlines()[0]
        pytest.skip(f"no MariaDB/MySQL at {where} ({type(exc).__name__}: {reason}); set GATEWAY_TEST_MYSQL_URL")
    return MYSQL_URL


class MysqlAdmin:
    """Creates and drops throwaway databases, each with its own login holding ALL on it."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.engine = create_engine(self.url, isolation_level="AUTOCOMMIT")

    def admin_url_for(self, database: str) -> str:
        return self.url.set(database=database).render_as_string(hide_password=False)

    def create(self, database: str) -> str:
        """A new utf8mb4 database and its owner-like login (it can write): that login's URL."""
        password = uuid.uuid4().hex
        with self.engine.connect() as connection:
            connection.execute(text(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
            connection.execute(text(f"CREATE USER '{database}'@'localhost' IDENTIFIED BY '{password}'"))
            connection.execute(text(f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{database}'@'localhost'"))
        return self.url.set(database=database, username=database, password=password).render_as_string(hide_password=False)

    def drop(self, database: str) -> None:
        with self.engine.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS `{database}`"))
            connection.execute(text(f"DROP USER IF EXISTS '{database}'@'localhost'"))


@pytest.fixture(scope="session")
def mysql_admin(mysql_server: str) -> Iterator[MysqlAdmin]:
    admin = MysqlAdmin(mysql_server)
    yield admin
    admin.engine.dispose()


@pytest.fixture
def mysql_database(mysql_admin: MysqlAdmin) -> Iterator[str]:
    """A fresh MariaDB database for this test: the URL of a login that can write to it."""
    name = f"gw_test_{uuid.uuid4().hex[:12]}"  # also the login's name: at most 32 characters
    yield mysql_admin.create(name)
    mysql_admin.drop(name)


# --- the app and the CLI -------------------------------------------------------------------

@pytest.fixture
def app(instance: Settings) -> Flask:
    from web import create_app

    flask_app = create_app(instance)
    flask_app.config.update(TESTING=True)
    return flask_app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


# --- RosarioSIS on PostgreSQL ------------------------------------------------------------------

ROSARIO_SCHEMA = SHARED / "interop" / "rosariosis" / "rosariosis.sql"
ROSARIO_POPULATION = Path(__file__).parent / "fixtures" / "rosariosis" / "population.sql"


@pytest.fixture
def rosario(pg_admin: PgAdmin) -> Iterator[str]:
    """A fresh database with RosarioSIS's own schema and seed, plus a small planted population."""
    import psycopg

    if not ROSARIO_SCHEMA.is_file():
        pytest.skip(f"the RosarioSIS schema is not at {ROSARIO_SCHEMA}")
    name = f"gw_rosario_{uuid.uuid4().hex[:8]}"
    url = pg_admin.create(name)
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(ROSARIO_SCHEMA.read_text(encoding="utf-8"))  # type: ignore[arg-type]
        connection.execute(ROSARIO_POPULATION.read_text(encoding="utf-8"))  # type: ignore[arg-type]
    yield url
    pg_admin.drop(name)

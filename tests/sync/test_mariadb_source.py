"""The same district read from MariaDB and from SQLite lands in the replica identically."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy.engine import URL, make_url

from gateway.cli import main
from gateway.settings import ConnectorSettings, Settings
from gateway.security.keys import write_secret_file

from connectors import registry
from sync.engine import run_sync

from ..conftest import make_instance
from .conftest import CONNECTOR, replica_state


def generate_demo_sis(cli: CliRunner, url: str) -> None:
    result = cli.invoke(main, ["demo-sis", "generate", "--out", url, "--students", "40", "--seed", "5",
                               "--today", "2026-11-28"])
    assert result.exit_code == 0, result.output


def replica_reading(folder: Path, templates: dict[str, Path], keys_from: Settings | None, url: str) -> Settings:
    """A fresh instance whose connector ``sis`` reads ``url``; with another's keys, so equal rows hash equally."""
    settings = make_instance(folder)
    for name, template in templates.items():
        shutil.copyfile(template, settings.instance_dir / f"{name}.sqlite3")
    if keys_from is not None:
        shutil.copytree(keys_from.keys_dir, settings.keys_dir, dirs_exist_ok=True)
    parsed = make_url(url)
    if parsed.password:  # a source password lives in the keys folder, never in the URL
        write_secret_file(settings.keys_dir / f"source-{CONNECTOR}", parsed.password)
        url = URL.create(parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database,
                         parsed.query).render_as_string()
    # The test database's login owns its tables; the login check is tested elsewhere
    # (test_sql_hostile, test_sourcelogin): here only the row hashes are compared.
    entry = ConnectorSettings(CONNECTOR, "sql", CONNECTOR, {"url": url, "mapping": "demo"},
                              allow_writable_login=True)
    return dataclasses.replace(settings, connectors=(entry,))


def full_sync(settings: Settings) -> int:
    connector = registry.build(settings.connector(CONNECTOR), settings)
    try:
        result = run_sync(settings, connector, "full")
    finally:
        connector.close()
    return sum(count.rejected for count in result.counts.values())


def test_the_demo_sis_generated_on_mariadb_and_on_sqlite_with_the_same_seed_syncs_to_identical_row_hashes(
    mysql_database: str, tmp_path: Path, sqlite_templates: dict[str, Path], cli: CliRunner
) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'sis.sqlite3'}"
    generate_demo_sis(cli, sqlite_url)
    generate_demo_sis(cli, mysql_database)
    from_sqlite = replica_reading(tmp_path / "from-sqlite", sqlite_templates, None, sqlite_url)
    from_mariadb = replica_reading(tmp_path / "from-mariadb", sqlite_templates, from_sqlite, mysql_database)
    assert full_sync(from_sqlite) == 0
    assert full_sync(from_mariadb) == 0
    sqlite_rows = {(table, source_id, row_hash) for table, rows in replica_state(from_sqlite).items()
                   for source_id, row_hash in rows.items()}
    mariadb_rows = {(table, source_id, row_hash) for table, rows in replica_state(from_mariadb).items()
                    for source_id, row_hash in rows.items()}
    assert {table for table, _, _ in sqlite_rows} >= {"students", "guardians", "student_guardians", "scores", "attendance"}
    assert len(sqlite_rows) > 1000
    assert mariadb_rows == sqlite_rows

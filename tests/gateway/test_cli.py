"""The CLI: init, db upgrade/status, and one-line errors a person can act on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main


def run_gateway(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script, as an operator runs it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True,
                          env={**clean, **(env or {})}, timeout=120)


def test_init_creates_owner_only_keys_and_both_databases(tmp_path: Path, cli: CliRunner) -> None:
    result = cli.invoke(main, ["init", "--dir", str(tmp_path / "inst"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert sorted(report["keys_created"]) == ["audit", "blind_index", "field", "flask", "row_hash"]
    for name in report["keys_created"]:
        assert (tmp_path / "inst" / "keys" / name).stat().st_mode & 0o777 == 0o600
    assert report["revisions"] == {"replica": "0003", "portal": "0010"}


def test_init_twice_keeps_the_existing_keys(tmp_path: Path, cli: CliRunner) -> None:
    cli.invoke(main, ["init", "--dir", str(tmp_path)])
    before = (tmp_path / "keys" / "field").read_bytes()
    result = cli.invoke(main, ["init", "--dir", str(tmp_path), "--json"])
    assert json.loads(result.output)["keys_created"] == []
    assert (tmp_path / "keys" / "field").read_bytes() == before


def test_db_status_reports_each_database_up_to_date(tmp_path: Path, cli: CliRunner) -> None:
    cli.invoke(main, ["init", "--dir", str(tmp_path)])
    result = cli.invoke(main, ["--config", str(tmp_path / "gateway.toml"), "db", "status", "--json"])
    report = json.loads(result.output)
    assert report["replica"] == {"current": "0003", "head": "0003", "up_to_date": True}
    assert report["portal"]["up_to_date"] is True


def init_instance(tmp_path: Path) -> Path:
    result = run_gateway("init", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    return tmp_path / "gateway.toml"


def test_a_missing_secret_exits_non_zero_with_one_line_naming_it(tmp_path: Path) -> None:
    config = init_instance(tmp_path)
    (tmp_path / "keys" / "field").unlink()
    result = run_gateway("--config", str(config), "keys", "status")
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1
    assert "secret field" in result.stderr and "GATEWAY_SECRET_FIELD" in result.stderr


def test_an_unknown_config_key_exits_non_zero_with_one_line_naming_it(tmp_path: Path) -> None:
    config = init_instance(tmp_path)
    config.write_text(config.read_text() + "\n[web]\nwokers = 3\n")
    result = run_gateway("--config", str(config), "db", "status")
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1
    assert "web.wokers" in result.stderr and "valid keys" in result.stderr


def test_a_malformed_database_url_exits_non_zero_with_one_line_naming_it(tmp_path: Path) -> None:
    config = init_instance(tmp_path)
    result = run_gateway("--config", str(config), "db", "upgrade", env={"GATEWAY_REPLICA_URL": "postgres//nohost"})
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1
    assert "replica.url" in result.stderr and "postgresql+psycopg://" in result.stderr


@pytest.mark.parametrize("args", [["db", "status"], ["keys", "status"]])
def test_status_commands_print_json_on_request(tmp_path: Path, cli: CliRunner, args: list[str]) -> None:
    cli.invoke(main, ["init", "--dir", str(tmp_path)])
    result = cli.invoke(main, ["--config", str(tmp_path / "gateway.toml"), *args, "--json"])
    assert result.exit_code == 0
    assert isinstance(json.loads(result.output), dict)


def test_keys_status_never_prints_key_material(tmp_path: Path, cli: CliRunner) -> None:
    cli.invoke(main, ["init", "--dir", str(tmp_path)])
    ring = json.loads((tmp_path / "keys" / "field").read_text())
    result = cli.invoke(main, ["--config", str(tmp_path / "gateway.toml"), "keys", "status", "--json"])
    for key in ring["keys"].values():
        assert key not in result.output

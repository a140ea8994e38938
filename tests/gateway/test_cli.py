"""The CLI: init, db upgrade/status, and one-line errors a person can act on."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.settings import Settings


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
    assert report["revisions"] == {"replica": "0004", "portal": "0007"}


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
    assert report["replica"] == {"current": "0004", "head": "0004", "up_to_date": True}
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


# --- with no config: one line saying what to do, and no file left behind ------------------------

# These make an instance or a demo SIS where they are told to; every other command needs a config.
NEED_NO_CONFIG = {"init", "demo", "demo-sis generate"}


def leaf_commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*path, name))
        else:
            yield (*path, name), command


def required_values(command: click.Command, existing_file: Path) -> list[str]:
    """Plausible values for a command's required arguments and options, so only the config is missing."""
    args: list[str] = []
    for param in command.params:
        if not param.required:
            continue
        if isinstance(param.type, click.Choice):
            value = str(param.type.choices[0])
        elif isinstance(param.type, (click.types.IntParamType, click.IntRange)):
            value = "99"
        elif isinstance(param.type, click.DateTime):
            value = "2026-09-01"
        elif isinstance(param.type, click.Path):
            value = str(existing_file if param.type.file_okay else existing_file.parent / "out")
        else:
            value = "someone"
        args += [param.opts[0], value] if isinstance(param, click.Option) else [value]
    return args


COMMANDS = [(path, command) for path, command in leaf_commands(main) if " ".join(path) not in NEED_NO_CONFIG]


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(path) for path, _ in COMMANDS])
def test_every_command_without_a_config_says_in_one_line_what_to_do_and_creates_no_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: tuple[str, ...], command: click.Command) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "guidelines.txt").write_text("Be kind.\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    result = CliRunner().invoke(main, [*path, *required_values(command, elsewhere / "guidelines.txt")])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    assert "pass --config PATH or set GATEWAY_CONFIG" in lines[0] and "gateway init --dir DIR" in lines[0]
    assert list(empty.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == ["guidelines.txt"]


def test_the_command_walk_covers_the_database_commands_the_issue_names() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"jobs list", "db status", "db upgrade", "sync rejects", "users create", "scheduler"} <= names


def test_init_with_dir_and_gateway_config_set_makes_the_new_instance_not_the_configured_one(
        tmp_path: Path, cli: CliRunner) -> None:
    cli.invoke(main, ["init", "--dir", str(tmp_path / "first")])
    first_key = (tmp_path / "first" / "keys" / "field").read_bytes()
    result = cli.invoke(main, ["init", "--dir", str(tmp_path / "second"), "--json"],
                        env={"GATEWAY_CONFIG": str(tmp_path / "first" / "gateway.toml")})
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["config"] == str(tmp_path / "second" / "gateway.toml")
    assert len(report["keys_created"]) == 5
    assert (tmp_path / "second" / "keys" / "field").read_bytes() != first_key
    assert (tmp_path / "first" / "keys" / "field").read_bytes() == first_key


def test_init_with_both_config_and_dir_on_the_command_line_is_refused_creating_nothing(
        tmp_path: Path, cli: CliRunner) -> None:
    cli.invoke(main, ["init", "--dir", str(tmp_path / "first")])
    result = cli.invoke(main, ["--config", str(tmp_path / "first" / "gateway.toml"),
                               "init", "--dir", str(tmp_path / "second")])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert "not both" in result.output
    assert not (tmp_path / "second").exists()


def test_sync_rejects_of_a_run_that_does_not_exist_says_so(tmp_path: Path, cli: CliRunner) -> None:
    cli.invoke(main, ["init", "--dir", str(tmp_path)])
    result = cli.invoke(main, ["--config", str(tmp_path / "gateway.toml"), "sync", "rejects", "99"])
    assert result.exit_code == 1
    assert result.output == "gateway: there is no run 99; `gateway sync history` lists the runs\n"


def commands_named(text: str) -> list[str]:
    """Every `gateway ...` command quoted in backticks in the text."""
    return re.findall(r"`gateway ([a-z_ -]+?)`", text)


def is_a_command(words: str) -> bool:
    command: click.Command = main
    for word in words.split():
        if not isinstance(command, click.Group):
            break
        if word not in command.commands:
            return False
        command = command.commands[word]
    argument = next((p for p in command.params if isinstance(p, click.Argument)), None)
    given = words.split()[len(words.split()) - 1]
    return not (argument and isinstance(argument.type, click.Choice) and given not in argument.type.choices)


def test_is_a_command_knows_the_keys_that_can_be_pruned() -> None:
    assert is_a_command("keys prune field")
    assert not is_a_command("keys prune audit")
    assert not is_a_command("keys shred field")


@pytest.mark.parametrize("kind", ["audit", "flask"])
def test_keys_rotate_names_only_commands_that_exist(tmp_path: Path, cli: CliRunner, kind: str) -> None:
    cli.invoke(main, ["init", "--dir", str(tmp_path)])
    result = cli.invoke(main, ["--config", str(tmp_path / "gateway.toml"), "keys", "rotate", kind])
    assert result.exit_code == 0, result.output
    assert all(is_a_command(words) for words in commands_named(result.output)), result.output
    assert ("`gateway keys prune flask`" in result.output) == (kind == "flask")
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_key_file_readable_by_group_or_others_stops_start_up_with_the_chmod_to_run(
    instance: Settings, cli: CliRunner, mode: int
) -> None:
    from gateway.errors import KeyringError
    from gateway.security.keys import load_keys
    from web import create_app

    path = instance.keys_dir / "audit"
    path.chmod(mode)
    result = cli.invoke(main, ["--config", str(instance.config_path), "keys", "status"])
    assert result.exit_code == 2
    assert f"chmod 600 {path}" in result.output
    with pytest.raises(KeyringError, match=f"chmod 600 {path}"):
        load_keys(instance)
    with pytest.raises(KeyringError):
        create_app(instance)
    path.chmod(0o600)
    assert cli.invoke(main, ["--config", str(instance.config_path), "keys", "status"]).exit_code == 0


def test_every_key_file_the_test_instances_create_is_owner_only(instance: Settings) -> None:
    modes = {path.name: path.stat().st_mode & 0o777 for path in instance.keys_dir.iterdir()}
    assert modes == {name: 0o600 for name in ("audit", "blind_index", "field", "flask", "row_hash")}


def test_a_database_error_prints_one_line_and_puts_the_traceback_in_the_log(instance: Settings, cli: CliRunner) -> None:
    portal = instance.instance_dir / "portal.sqlite3"
    portal.unlink()
    portal.touch(mode=0o600)  # a database never migrated: every command touching accounts fails
    result = cli.invoke(main, ["--config", str(instance.config_path), "users", "unlock", "someone"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    log = instance.instance_dir / "logs" / "gateway-cli.log"
    assert result.stderr.startswith("gateway: users unlock failed on the database (OperationalError)")
    assert "gateway db status" in result.stderr and str(log) in result.stderr
    assert "Traceback" in log.read_text() and "no such table" in log.read_text()
    assert log.stat().st_mode & 0o777 == 0o600

"""The service commands staff and IT run: users, codes, denials, guidelines, paper requests."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.portal import accounts, denials, guidelines
from gateway.cli import main
from gateway.security.crypto import email_index
from gateway.db import create_ro_engine, create_rw_engine
from gateway.security.keys import load_keyring
from gateway.settings import Settings

GOOD = "velvet tram gallops past nine lanterns"


def run(cli: CliRunner, settings: Settings, *args: str) -> object:
    result = cli.invoke(main, ["--config", str(settings.config_path), *args])
    return result


def portal(settings: Settings) -> Session:
    return Session(create_rw_engine(settings.portal.url))


def test_the_first_admin_is_created_with_a_password_from_a_file(instance: Settings, cli: CliRunner, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text(GOOD + "\n")
    result = run(cli, instance, "users", "create", "boss", "--role", "admin", "--name", "Dana Admin", "--password-file", str(secret), "--json")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert json.loads(result.output)["role"] == "admin"  # type: ignore[attr-defined]
    secret.write_text("password1234567890")
    weak = run(cli, instance, "users", "create", "weak", "--role", "staff", "--name", "W", "--password-file", str(secret))
    assert weak.exit_code == 2 and "commonly used password" in weak.output  # type: ignore[attr-defined]


def test_deny_and_restore_by_email(instance: Settings, cli: CliRunner) -> None:
    result = run(cli, instance, "users", "deny", "--email", "risk@example.net", "--reason", "threatened staff", "--json")
    denial = json.loads(result.output)["denial_id"]  # type: ignore[attr-defined]
    person = denials.Person(email_indexes=frozenset({email_index(load_keyring(instance, "blind_index"), "RISK@example.net ")}))
    with portal(instance) as session:
        assert denials.is_denied(session, person)
    assert run(cli, instance, "users", "restore", str(denial)).exit_code == 0  # type: ignore[attr-defined]
    with portal(instance) as session:
        assert not denials.is_denied(session, person)


def test_publishing_guidelines_makes_a_new_version(instance: Settings, cli: CliRunner, tmp_path: Path) -> None:
    text = tmp_path / "guidelines.txt"
    text.write_text("New rule: lock your screen.")
    with portal(instance) as session:
        guidelines.ensure_published(session)
        session.commit()
    result = run(cli, instance, "guidelines", "publish", str(text), "--json")
    assert json.loads(result.output) == {"version": 2}  # type: ignore[attr-defined]
    with portal(instance) as session:
        assert "lock your screen" in (guidelines.current(session).body)  # type: ignore[union-attr]


def test_unlock_lifts_a_lockout(instance: Settings, cli: CliRunner) -> None:
    replica = Session(create_ro_engine(instance.replica.url))
    known = {"replica": replica, "index_ring": load_keyring(instance, "blind_index")}
    with portal(instance) as session:
        accounts.create_user(session, instance, username="locked", password=GOOD, role="parent", display_name="L")
        for _ in range(5):
            accounts.authenticate(session, instance, "locked", "wrong", "10.0.0.9", **known)
        session.commit()
        assert accounts.authenticate(session, instance, "locked", GOOD, "10.0.0.9", **known).refusal == "locked"
    assert run(cli, instance, "users", "unlock", "locked").exit_code == 0  # type: ignore[attr-defined]
    with portal(instance) as session:
        assert accounts.authenticate(session, instance, "locked", GOOD, "10.0.0.9", **known).user is not None


OPERATOR = {"USER": "alice", "LOGNAME": "alice", "LNAME": "alice", "USERNAME": "alice"}


def audit_entries(settings: Settings) -> list[tuple[str, str | None, dict[str, object]]]:
    from gateway.portal.models import AuditEntry

    with portal(settings) as session:
        return [(e.action, e.actor_role, e.detail) for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def as_operator(cli: CliRunner, settings: Settings, *args: str) -> None:
    result = cli.invoke(main, ["--config", str(settings.config_path), *args], env=OPERATOR)
    assert result.exit_code == 0, result.output


def test_every_cli_change_is_an_audit_entry_naming_the_operating_system_user_and_host(
    instance: Settings, cli: CliRunner, tmp_path: Path
) -> None:
    import socket

    from gateway.security import audit

    actor = f"cli:alice@{socket.gethostname()}"
    with instance.config_path.open("a") as config:  # a connector for the jobs (never run here)
        config.write(f'\n[[connectors]]\nname = "sis"\nkind = "sql"\nurl = "sqlite:///{tmp_path}/sis.db"\nmapping = "demo"\n')
    secret = tmp_path / "pw"
    secret.write_text(GOOD + "\n")
    text_file = tmp_path / "guidelines.txt"
    text_file.write_text("Lock your screen.")
    # codes issue and terminations record need a synced SIS: web/test_letters.py covers them.
    steps: list[tuple[tuple[str, ...], str]] = [
        (("users", "create", "boss", "--role", "admin", "--name", "Dana Admin", "--password-file", str(secret)), "account.created"),
        (("users", "unlock", "boss"), "account.unlocked"),
        (("users", "deny", "--email", "risk@example.net", "--reason", "threatened staff"), "denial.added"),
        (("users", "restore", "1"), "denial.lifted"),
        (("guidelines", "publish", str(text_file)), "guidelines.published"),
        (("jobs", "add", "sis", "--every", "15m", "--no-nightly"), "job.added"),
        (("jobs", "pause", "1"), "job.pause"),
        (("jobs", "resume", "1"), "job.resume"),
        (("jobs", "run-now", "sis"), "sync.run_requested"),
        (("jobs", "remove", "1"), "job.remove"),
        (("keys", "rotate", "flask"), "key.rotated"),
        (("keys", "prune", "flask"), "key.pruned"),
    ]
    for args, action in steps:
        before = len(audit_entries(instance))
        as_operator(cli, instance, *args)
        new = audit_entries(instance)[before:]
        assert [(name, role, detail["actor"]) for name, role, detail in new] == [(action, "cli", actor)], args
    entries = audit_entries(instance)
    assert entries[0][2] == {"actor": actor, "username": "boss", "role": "admin"}
    assert entries[2][2] == {"actor": actor, "denial_id": 1, "by": ["email"], "guardian_source_id": None,
                             "username": None, "reason": "threatened staff"}  # what it matches on, never the email
    assert audit.verify(create_rw_engine(instance.portal.url), load_keyring(instance, "audit"),
                        instance.audit.checkpoint_file).ok


def test_rotating_the_audit_key_names_the_operator_too(instance: Settings, cli: CliRunner) -> None:
    import socket

    as_operator(cli, instance, "keys", "rotate", "audit")
    assert [(name, detail["actor"]) for name, _, detail in audit_entries(instance)] == [
        ("audit.key_rotated", f"cli:alice@{socket.gethostname()}"), ("key.rotated", f"cli:alice@{socket.gethostname()}")]

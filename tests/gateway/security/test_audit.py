"""The hash-chained audit trail: appends from many workers, and every kind of tampering found."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Connection, delete, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from gateway.security import audit
from gateway.db import create_rw_engine
from gateway.security.keys import load_keyring
from gateway.portal.models import AuditEntry
from gateway.settings import Settings


def fill(settings: Settings, count: int) -> None:
    engine = create_rw_engine(settings.portal.url)
    ring = load_keyring(settings, "audit")
    for number in range(count):
        audit.append(engine, ring, settings.audit.checkpoint_file,
                     audit.Event("record.view", actor_user_id=number, student_source_id=f"s{number}", ip="10.0.0.1"))
    engine.dispose()


def verify(settings: Settings) -> audit.Verification:
    return audit.verify(create_rw_engine(settings.portal.url), load_keyring(settings, "audit"), settings.audit.checkpoint_file)


def tamper(settings: Settings, statement: object) -> None:
    engine = create_rw_engine(settings.portal.url)
    with engine.begin() as connection:
        connection.execute(statement)  # type: ignore[call-overload]


def test_an_untouched_trail_verifies(any_instance: Settings) -> None:
    fill(any_instance, 12)
    assert verify(any_instance) == audit.Verification(True, 12)


def test_an_edited_entry_is_named(any_instance: Settings) -> None:
    fill(any_instance, 12)
    tamper(any_instance, update(AuditEntry).where(AuditEntry.id == 5).values(student_source_id="someone-else"))
    result = verify(any_instance)
    assert not result.ok and result.entry_id == 5 and "altered" in (result.problem or "")


def test_a_deleted_entry_is_named(any_instance: Settings) -> None:
    fill(any_instance, 12)
    tamper(any_instance, delete(AuditEntry).where(AuditEntry.id == 7))
    result = verify(any_instance)
    assert not result.ok and "7..7 are missing" in (result.problem or "")


def test_two_swapped_entries_are_found(any_instance: Settings) -> None:
    fill(any_instance, 12)
    engine = create_rw_engine(any_instance.portal.url)
    with engine.begin() as connection:  # swap ids 3 and 4 through a free id
        connection.execute(update(AuditEntry).where(AuditEntry.id == 3).values(id=1000))
        connection.execute(update(AuditEntry).where(AuditEntry.id == 4).values(id=3))
        connection.execute(update(AuditEntry).where(AuditEntry.id == 1000).values(id=4))
    result = verify(any_instance)
    assert not result.ok and result.entry_id == 3


def test_removing_the_newest_ten_entries_is_found_through_the_checkpoint(any_instance: Settings) -> None:
    fill(any_instance, 15)
    tamper(any_instance, delete(AuditEntry).where(AuditEntry.id > 5))
    result = verify(any_instance)
    assert not result.ok and "newest entries were removed" in (result.problem or "")
    assert result.entry_id == 15


def test_a_missing_checkpoint_file_fails_verification(instance: Settings) -> None:
    fill(instance, 2)
    instance.audit.checkpoint_file.unlink()
    assert not verify(instance).ok


WORKER = """
import sys
from gateway.security import audit
from gateway.db import create_rw_engine
from gateway.security.keys import load_keyring
from gateway.settings import load_settings
settings = load_settings(sys.argv[1], env={})
engine = create_rw_engine(settings.portal.url)
for number in range(int(sys.argv[2])):
    audit.append(engine, load_keyring(settings, "audit"), settings.audit.checkpoint_file,
                 audit.Event("record.view", actor_user_id=number))
"""


@pytest.mark.parametrize("backend", ["instance", "pg_instance"])
def test_several_processes_appending_at_once_keep_one_chain(request: pytest.FixtureRequest, backend: str) -> None:
    settings: Settings = request.getfixturevalue(backend)
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(settings.config_path), "15"]) for _ in range(4)]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0, 0, 0]
    assert verify(settings) == audit.Verification(True, 60)
    assert audit.read_checkpoint(Path(settings.audit.checkpoint_file))[0] == 60  # type: ignore[index]


def test_the_cli_verifies_a_clean_trail_and_names_tampering(instance: Settings) -> None:
    import json

    from click.testing import CliRunner

    from gateway.cli import main

    fill(instance, 5)
    cli = CliRunner()
    clean = cli.invoke(main, ["--config", str(instance.config_path), "audit", "verify", "--json"])
    assert clean.exit_code == 0 and json.loads(clean.output) == {"ok": True, "checked": 5, "problem": None, "entry_id": None}
    tamper(instance, update(AuditEntry).where(AuditEntry.id == 2).values(action="nothing.happened"))
    broken = cli.invoke(main, ["--config", str(instance.config_path), "audit", "verify"])
    assert broken.exit_code == 4 and "entry 2 was altered" in broken.output
    exported = cli.invoke(main, ["--config", str(instance.config_path), "audit", "export", "--from", "2000-01-01", "--to", "2100-01-01"])
    lines = [json.loads(line) for line in exported.output.splitlines()]
    assert [line["id"] for line in lines] == [1, 2, 3, 4, 5] and all(len(line["entry_hash"]) == 64 for line in lines)


def _swap(settings: Settings) -> None:
    engine = create_rw_engine(settings.portal.url)
    with engine.begin() as connection:
        connection.execute(update(AuditEntry).where(AuditEntry.id == 3).values(id=1000))
        connection.execute(update(AuditEntry).where(AuditEntry.id == 4).values(id=3))
        connection.execute(update(AuditEntry).where(AuditEntry.id == 1000).values(id=4))


@pytest.mark.parametrize(("damage", "named"), [
    ("edit", "entry 6 was altered"),
    ("delete", "entries 7..7 are missing"),
    ("swap", "entry 3 does not follow entry 2"),
    ("truncate", "the newest entries were removed: checkpoint names entry 15, the chain ends at 5"),
])
def test_gateway_audit_verify_exits_non_zero_naming_each_kind_of_tampering(any_instance: Settings, damage: str, named: str) -> None:
    from click.testing import CliRunner

    from gateway.cli import main

    fill(any_instance, 15)
    if damage == "edit":
        tamper(any_instance, update(AuditEntry).where(AuditEntry.id == 6).values(ip="203.0.113.9"))
    elif damage == "delete":
        tamper(any_instance, delete(AuditEntry).where(AuditEntry.id == 7))
    elif damage == "swap":
        _swap(any_instance)
    else:
        tamper(any_instance, delete(AuditEntry).where(AuditEntry.id > 5))
    result = CliRunner().invoke(main, ["--config", str(any_instance.config_path), "audit", "verify"])
    assert result.exit_code == 4
    assert named in result.output


FORGED_VIEW = ("INSERT INTO audit_log (id, at, action, actor_user_id, student_source_id, detail, key_id, prev_hash, entry_hash) "
               "VALUES ({id}, CURRENT_TIMESTAMP, 'record.view', 7, 'forged', '{{}}', 'k', 'p', 'forged-{id}')")


def _without_the_chain_guards(settings: Settings) -> Connection:
    """An owner's connection with the CHECK and the append guard out of the way: what the file's
    owner (SQLite) or the tables' owner (PostgreSQL) could still do."""
    connection = create_rw_engine(settings.portal.url).connect()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
        connection.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_appends_at_the_head")
    else:
        connection.exec_driver_sql("ALTER TABLE audit_log DROP CONSTRAINT IF EXISTS ck_audit_log_chained_id")
    return connection


@pytest.mark.parametrize("forged_id", [0, -1])
def test_the_database_refuses_an_audit_id_below_one(any_instance: Settings, forged_id: int) -> None:
    fill(any_instance, 2)
    engine = create_rw_engine(any_instance.portal.url)
    with engine.connect() as connection, pytest.raises(IntegrityError):
        connection.execute(text(FORGED_VIEW.format(id=forged_id)))
        connection.commit()
    assert verify(any_instance) == audit.Verification(True, 2)


def test_sqlite_refuses_a_raw_insert_that_does_not_follow_the_head(instance: Settings) -> None:
    # PostgreSQL's counterpart is the web role's (tests/gateway/test_readonly_engine.py).
    any_instance = instance
    fill(any_instance, 2)
    engine = create_rw_engine(any_instance.portal.url)
    for forged_id in (3, 50):  # the next id, with a made-up previous hash; and a gap
        with engine.connect() as connection, pytest.raises(DBAPIError):
            connection.execute(text(FORGED_VIEW.format(id=forged_id)))
            connection.commit()
    assert verify(any_instance) == audit.Verification(True, 2)


@pytest.mark.parametrize("forged_id", [0, -5])
def test_verification_names_a_row_below_id_one_that_got_past_the_database(any_instance: Settings, forged_id: int) -> None:
    fill(any_instance, 3)
    with _without_the_chain_guards(any_instance) as connection:
        connection.execute(text(FORGED_VIEW.format(id=forged_id)))
        connection.commit()
    result = verify(any_instance)
    assert not result.ok and result.entry_id == forged_id
    assert result.problem == f"entry {forged_id} is outside the chain (ids start at 1)"


def test_verification_names_rows_past_the_checkpoints_head(any_instance: Settings, tmp_path: Path) -> None:
    fill(any_instance, 4)
    # Two well-formed entries, signed with the audit key, that never reached the checkpoint.
    engine = create_rw_engine(any_instance.portal.url)
    ring = load_keyring(any_instance, "audit")
    for number in range(2):
        audit.append(engine, ring, tmp_path / "elsewhere.json", audit.Event("record.view", actor_user_id=number))
    result = verify(any_instance)
    assert not result.ok and result.entry_id == 5
    assert result.problem.startswith("entries 5..6 are past the checkpoint's head (entry 4): appended around the gateway")


def test_the_cli_names_a_forged_row_below_id_one(instance: Settings) -> None:
    from click.testing import CliRunner

    from gateway.cli import main

    fill(instance, 2)
    with _without_the_chain_guards(instance) as connection:
        connection.execute(text(FORGED_VIEW.format(id=0)))
        connection.commit()
    result = CliRunner().invoke(main, ["--config", str(instance.config_path), "audit", "verify"])
    assert result.exit_code == 4 and "entry 0 is outside the chain" in result.output


def test_accept_head_moves_the_checkpoint_over_verified_entries_and_is_audited(instance: Settings, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from gateway.cli import main

    fill(instance, 3)
    audit.append(create_rw_engine(instance.portal.url), load_keyring(instance, "audit"), tmp_path / "elsewhere.json",
                 audit.Event("record.view", actor_user_id=9))  # committed; its checkpoint write never happened
    assert verify(instance).entry_id == 4
    result = CliRunner().invoke(main, ["--config", str(instance.config_path), "audit", "accept-head", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"previous": 3, "head": 4}
    assert verify(instance) == audit.Verification(True, 5)  # and the acceptance is entry 5, in the chain


def test_accept_head_refuses_when_the_chain_itself_is_broken(instance: Settings) -> None:
    from click.testing import CliRunner

    from gateway.cli import main

    fill(instance, 4)
    tamper(instance, update(AuditEntry).where(AuditEntry.id == 2).values(action="nothing.happened"))
    result = CliRunner().invoke(main, ["--config", str(instance.config_path), "audit", "accept-head"])
    assert result.exit_code == 4 and "entry 2 was altered" in result.output
    assert audit.read_checkpoint(instance.audit.checkpoint_file)[0] == 4  # type: ignore[index]

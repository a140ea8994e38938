"""`gateway keys rotate KIND`: what each rotation rewrites, and that nothing is lost."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.security import audit
from gateway.cli import main
from gateway.security.crypto import FieldCipher, email_index, row_hash
from gateway.db import create_rw_engine
from gateway.security.keys import load_keyring
from gateway.portal.models import Application
from gateway.replica.tables import Guardian
from gateway.replica.schema import plaintext_of
from gateway.settings import Settings

NOW = dt.datetime(2026, 11, 28, 12, tzinfo=dt.timezone.utc)
EMAILS = ["Maria.Lopez@Example.org", "j.smith@example.net"]


def seed(settings: Settings) -> None:
    """Guardians and an application written under the instance's first keys."""
    cipher = FieldCipher(load_keyring(settings, "field"))
    index_ring, hash_ring = load_keyring(settings, "blind_index"), load_keyring(settings, "row_hash")
    with Session(create_rw_engine(settings.replica.url)) as session:
        for number, email in enumerate(EMAILS, start=1):
            plain = {"given_name": f"Parent{number}", "family_name": "Doe", "email": email,
                     "phone": f"555-010{number}", "preferred_language": "es"}
            session.add(Guardian(
                source_system="sis", source_id=f"g{number}", synced_at=NOW, sync_run_id=1,
                given_name=plain["given_name"], family_name="Doe", preferred_language="es",
                email=cipher.encrypt(email, "guardians.email"), email_index=email_index(index_ring, email),
                phone=cipher.encrypt(plain["phone"], "guardians.phone"), row_hash=row_hash(hash_ring, plain),
            ))
        session.commit()
    with Session(create_rw_engine(settings.portal.url)) as session:
        session.add(Application(given_name="Maria", family_name="Lopez", email="m@x.org", relationship="mother",
                                student_number="1001", student_birth_date=cipher.encrypt("2010-03-14", "applications.student_birth_date")))
        session.commit()


def rotate(cli: CliRunner, settings: Settings, *args: str) -> dict[str, object]:
    result = cli.invoke(main, ["--config", str(settings.config_path), "keys", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def decrypted_guardians(settings: Settings) -> dict[str, tuple[str, str]]:
    cipher = FieldCipher(load_keyring(settings, "field"))  # read back from the files
    with Session(create_rw_engine(settings.replica.url)) as session:
        return {g.source_id: (cipher.decrypt(g.email, "guardians.email"), cipher.decrypt(g.phone, "guardians.phone"))
                for g in session.scalars(select(Guardian))}


def test_field_values_read_back_after_rotation_and_after_the_old_key_is_deleted(instance: Settings, cli: CliRunner) -> None:
    seed(instance)
    old_id = load_keyring(instance, "field").active
    report = rotate(cli, instance, "rotate", "field")
    assert report["active"] != old_id
    assert decrypted_guardians(instance) == {"g1": (EMAILS[0], "555-0101"), "g2": (EMAILS[1], "555-0102")}
    rotate(cli, instance, "prune", "field")
    assert list(load_keyring(instance, "field").keys) == [report["active"]]
    assert decrypted_guardians(instance) == {"g1": (EMAILS[0], "555-0101"), "g2": (EMAILS[1], "555-0102")}
    cipher = FieldCipher(load_keyring(instance, "field"))
    with Session(create_rw_engine(instance.portal.url)) as session:
        token = session.scalars(select(Application.student_birth_date)).one()
    assert cipher.decrypt(token, "applications.student_birth_date") == "2010-03-14"


def test_pruning_the_field_key_before_rewriting_is_refused(instance: Settings, cli: CliRunner) -> None:
    seed(instance)
    ring = load_keyring(instance, "field").rotated()
    from gateway.security.keys import write_keyring

    write_keyring(instance, ring)  # a new key, but nothing rewritten yet
    result = cli.invoke(main, ["--config", str(instance.config_path), "keys", "prune", "field"])
    assert result.exit_code != 0
    assert "still under an old field key" in result.output
    assert len(load_keyring(instance, "field").keys) == 2


def test_blind_index_lookups_still_match_after_their_key_rotates(any_instance: Settings, cli: CliRunner) -> None:
    seed(any_instance)
    rotate(cli, any_instance, "rotate", "blind_index")
    rotate(cli, any_instance, "prune", "blind_index")
    ring = load_keyring(any_instance, "blind_index")
    with Session(create_rw_engine(any_instance.replica.url)) as session:
        found = session.scalars(select(Guardian.source_id).where(
            Guardian.email_index == email_index(ring, "  maria.lopez@example.ORG"))).all()
    assert found == ["g1"]


def test_row_hashes_are_recomputed_under_the_new_key(instance: Settings, cli: CliRunner) -> None:
    seed(instance)
    with Session(create_rw_engine(instance.replica.url)) as session:
        before = dict(session.execute(select(Guardian.source_id, Guardian.row_hash)).all())
    rotate(cli, instance, "rotate", "row_hash")
    ring, cipher = load_keyring(instance, "row_hash"), FieldCipher(load_keyring(instance, "field"))
    table = Guardian.__table__
    with Session(create_rw_engine(instance.replica.url)) as session:
        rows = session.execute(select(table)).mappings().all()
    for row in rows:
        assert row["row_hash"] != before[row["source_id"]]
        assert row["row_hash"] == row_hash(ring, plaintext_of(table, row, cipher))


def test_the_flask_key_rotation_keeps_the_old_key_as_a_fallback(instance: Settings, cli: CliRunner) -> None:
    from web import create_app

    client = create_app(instance).test_client()
    with client.session_transaction() as session:
        session["probe"] = "kept"
    rotate(cli, instance, "rotate", "flask")
    rotated_app = create_app(instance)
    assert len(rotated_app.config["SECRET_KEY_FALLBACKS"]) == 1
    cookie = client.get_cookie("session")
    assert cookie is not None
    new_client = rotated_app.test_client()
    new_client.set_cookie("session", cookie.value)
    with new_client.session_transaction() as session:
        assert session.get("probe") == "kept"


def test_an_audit_key_rotation_starts_a_new_segment_that_still_verifies(instance: Settings, cli: CliRunner) -> None:
    engine = create_rw_engine(instance.portal.url)
    checkpoint = instance.audit.checkpoint_file
    audit.append(engine, load_keyring(instance, "audit"), checkpoint, audit.Event("login", actor_user_id=1))
    old_id = load_keyring(instance, "audit").active
    rotate(cli, instance, "rotate", "audit")
    ring = load_keyring(instance, "audit")
    audit.append(engine, ring, checkpoint, audit.Event("login", actor_user_id=2))
    result = audit.verify(engine, ring, checkpoint)
    assert result.ok and result.checked == 4, result  # login, key_rotated (old key), the CLI's key.rotated, login
    with Session(engine) as session:
        key_ids = session.scalars(select(audit.AuditEntry.key_id).order_by(audit.AuditEntry.id)).all()
    assert key_ids == [old_id, old_id, ring.active, ring.active]


def test_a_denial_by_email_still_matches_after_the_blind_index_key_rotates(instance: Settings, cli: CliRunner) -> None:
    from gateway.portal import people
    from gateway.portal import denials

    with Session(create_rw_engine(instance.portal.url)) as session:
        people.deny(session, FieldCipher(load_keyring(instance, "field")), load_keyring(instance, "blind_index"),
                    "security risk", email="Risky.Person@Example.net")
        session.commit()
    rotate(cli, instance, "rotate", "blind_index")
    rotate(cli, instance, "prune", "blind_index")
    ring = load_keyring(instance, "blind_index")
    with Session(create_rw_engine(instance.portal.url)) as session:
        assert denials.is_denied(session, denials.Person(email_indexes=frozenset({email_index(ring, "risky.person@example.net")})))

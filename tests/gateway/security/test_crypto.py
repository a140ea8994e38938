"""Field encryption, blind indexes and row hashes."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.security.crypto import FieldCipher, email_index, row_hash
from gateway.errors import DecryptionError, KeyringError
from gateway.security.keys import KeyRing, Secret


def test_a_value_round_trips_and_is_not_stored_in_clear() -> None:
    cipher = FieldCipher(KeyRing.generate("field"))
    token = cipher.encrypt("2010-03-14", "students.birth_date")
    assert "2010-03-14" not in token
    assert cipher.decrypt(token, "students.birth_date") == "2010-03-14"


def test_the_same_value_encrypts_differently_each_time() -> None:
    cipher = FieldCipher(KeyRing.generate("field"))
    assert cipher.encrypt("x", "c") != cipher.encrypt("x", "c")


def test_a_value_moved_to_another_column_does_not_decrypt() -> None:
    cipher = FieldCipher(KeyRing.generate("field"))
    token = cipher.encrypt("555-0100", "guardians.phone")
    with pytest.raises(DecryptionError):
        cipher.decrypt(token, "guardians.email")


def test_a_tampered_token_does_not_decrypt() -> None:
    cipher = FieldCipher(KeyRing.generate("field"))
    token = cipher.encrypt("secret", "c")
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(DecryptionError):
        cipher.decrypt(tampered, "c")


def test_a_rotated_ring_reads_old_tokens_and_writes_under_the_new_key() -> None:
    old = KeyRing.generate("field")
    token = FieldCipher(old).encrypt("x", "c")
    rotated = FieldCipher(old.rotated())
    assert rotated.decrypt(token, "c") == "x"
    assert not rotated.is_current(token)
    assert rotated.is_current(rotated.encrypt("x", "c"))


def test_blind_index_ignores_case_and_surrounding_space_but_depends_on_the_key() -> None:
    ring = KeyRing.generate("blind_index")
    assert email_index(ring, " Parent@Example.ORG ") == email_index(ring, "parent@example.org")
    assert email_index(KeyRing.generate("blind_index"), "parent@example.org") != email_index(ring, "parent@example.org")
    assert email_index(ring, None) is None


def test_row_hash_is_stable_and_keyed() -> None:
    ring = KeyRing.generate("row_hash")
    values = {"given_name": "Ana", "birth_date": dt.date(2010, 3, 14), "points": 9.5}
    assert row_hash(ring, values) == row_hash(ring, dict(reversed(list(values.items()))))
    assert row_hash(ring, values) != row_hash(ring, {**values, "points": 9.0})
    assert row_hash(KeyRing.generate("row_hash"), values) != row_hash(ring, values)


def test_secrets_and_rings_never_show_their_values() -> None:
    ring = KeyRing.generate("field")
    assert ring.active_key.hex() not in repr(ring)
    assert "hunter2" not in repr(Secret("hunter2")) and "hunter2" not in str(Secret("hunter2"))


def test_a_malformed_key_file_is_a_clear_error() -> None:
    with pytest.raises(KeyringError, match="field"):
        KeyRing.from_json("field", '{"active": "a", "keys": {"a": "c2hvcnQ="}}')

"""A username is one name however it is typed, and an unknown name costs what a known one does."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gateway import migrate
from gateway.db import create_rw_engine
from gateway.demo.sis import DemoSummary
from gateway.mail import outbox_messages
from gateway.portal import accounts, recovery
from gateway.portal.accounts import AccountError, create_user
from gateway.portal.models import User
from gateway.settings import Settings

from .conftest import PASSWORD, activate, issue_code, login, portal_session, staff_client

SPELLINGS = (" parent-x", "parent-x\t", "parent-x\u00a0", "PARENT-X", "\uff50\uff41\uff52\uff45\uff4e\uff54-x")


def portal(settings: Settings) -> Session:
    return Session(create_rw_engine(settings.portal.url))


@pytest.fixture
def parent_x(instance: Settings) -> Settings:
    with portal(instance) as session:
        create_user(session, instance, username="parent-x", password=PASSWORD, role="parent", display_name="Pat Example",
                    email="pat@example.net")
        session.commit()
    return instance


def test_a_name_is_normalised_by_nfkc_without_any_whitespace_and_casefolded() -> None:
    assert accounts.normalize_username(" Parent-X\t") == "parent-x"
    assert accounts.normalize_username("parent-x\u00a0") == "parent-x"
    assert accounts.normalize_username("\uff30\uff41\uff52\uff45\uff4e\uff54-x") == "parent-x"  # fullwidth letters
    assert accounts.normalize_username("pa rent\u2003-x\n") == "parent-x"  # inner spaces, em space, newline
    assert accounts.normalize_username("Stra\u00dfe") == "strasse"  # casefold, not lower


def test_normalising_a_normalised_name_changes_nothing() -> None:
    # Removing a space can leave a combining mark next to a letter, and NFKC can turn a
    # spacing mark into a space and a combining one: both end as the composed letter.
    assert accounts.normalize_username("e \u0301") == "\u00e9"
    assert accounts.normalize_username("a\u00a8") == "\u00e4"


@given(st.text(max_size=20))
@settings(max_examples=300, deadline=None)
def test_the_normal_form_is_a_fixed_point(name: str) -> None:
    once = accounts.normalize_username(name)
    assert accounts.normalize_username(once) == once


def test_every_spelling_of_a_name_shares_the_accounts_lockout(app: Flask, parent_x: Settings) -> None:
    for spelling in SPELLINGS:
        assert login(app.test_client(), spelling, "not the password at all").status_code == 401
    refused = login(app.test_client(), "parent-x")
    assert refused.status_code == 401 and "Too many attempts" in refused.get_data(as_text=True)


def test_sign_in_finds_the_account_under_any_spelling_of_its_name(app: Flask, parent_x: Settings) -> None:
    for spelling in SPELLINGS:
        assert login(app.test_client(), spelling).status_code == 302, repr(spelling)


def test_a_new_account_whose_name_normalises_to_a_taken_one_is_refused(parent_x: Settings) -> None:
    for spelling in ("Parent-X", "parent- x", "\uff50\uff41\uff52\uff45\uff4e\uff54-x", "parent-x\u00a0"):
        with portal(parent_x) as session, pytest.raises(AccountError, match="taken"):
            create_user(session, parent_x, username=spelling, password=PASSWORD, role="parent", display_name="Someone Else")
    with portal(parent_x) as session:
        assert session.scalars(select(User.username)).all() == ["parent-x"]


def test_a_name_that_normalises_to_nothing_is_refused(instance: Settings) -> None:
    with portal(instance) as session, pytest.raises(AccountError, match="choose another"):
        create_user(session, instance, username="\u00a0\t \u2003", password=PASSWORD, role="parent", display_name="Nobody")


def test_a_reset_request_finds_the_account_under_any_spelling_of_its_name(parent_x: Settings) -> None:
    with portal(parent_x) as session:
        recovery.request_reset(session, parent_x, "\uff30\uff41\uff52\uff45\uff4e\uff54-X\u00a0", "192.0.2.1")
        session.commit()
    (message,) = outbox_messages(parent_x.mail.outbox_dir)
    assert "pat@example.net" in message.read_text()


def test_the_migration_gives_existing_accounts_their_normalised_name(tmp_path: Path) -> None:
    engine = create_rw_engine(f"sqlite:///{tmp_path / 'portal.sqlite3'}")
    migrate.upgrade("portal", engine, "0004")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO users (username, role, display_name, password_hash, password_changed_at, "
                                "created_at) VALUES ('Mixed.Case', 'staff', 'M', 'x', '2026-01-01', '2026-01-01')"))
    migrate.upgrade("portal", engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT username, username_key FROM users")).all() == [("Mixed.Case", "mixed.case")]
    engine.dispose()


@pytest.fixture
def hash_operations(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts argon2 hash and verify calls; each still does its real work."""
    counted: Counter[str] = Counter()

    def counting(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counted[name] += 1
            return original(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(PasswordHasher, "verify", counting("verify", PasswordHasher.verify))
    monkeypatch.setattr(PasswordHasher, "hash", counting("hash", PasswordHasher.hash))
    yield counted


def test_an_unknown_name_costs_the_same_hash_operations_as_a_known_one(app: Flask, parent_x: Settings,
                                                                      hash_operations: Counter[str]) -> None:
    login(app.test_client(), "parent-x", "a wrong password for a known name")
    known = dict(hash_operations)
    hash_operations.clear()
    login(app.test_client(), "nobody-by-this-name", "a wrong password for an unknown name")
    assert dict(hash_operations) == known == {"verify": 1}


def test_the_migration_stops_with_the_clashing_names_when_two_accounts_normalise_alike(tmp_path: Path) -> None:
    from gateway.errors import GatewayError

    engine = create_rw_engine(f"sqlite:///{tmp_path / 'portal.sqlite3'}")
    migrate.upgrade("portal", engine, "0004")
    with engine.begin() as connection:
        for name in ("Pat.Lee", "pat.lee\u00a0"):
            connection.execute(text("INSERT INTO users (username, role, display_name, password_hash, password_changed_at, "
                                    "created_at) VALUES (:name, 'parent', 'P', 'x', '2026-01-01', '2026-01-01')"), {"name": name})
    with pytest.raises(GatewayError, match=r"'Pat\.Lee' / 'pat\.lee\\xa0'.*Rename all but one"):
        migrate.upgrade("portal", engine)
    assert migrate.current(engine) == "0004"  # nothing half-done: rename one, then migrate again
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM users")).scalar() == 2
    engine.dispose()


# --- invisible characters (attack review of issue 13, F4) ----------------------------------------

INVISIBLE = {
    "combining grapheme joiner U+034F": "\u034f",
    "hangul filler U+3164": "\u3164",
    "halfwidth hangul filler U+FFA0": "\uffa0",
    "hangul choseong filler U+115F": "\u115f",
    "braille blank U+2800": "\u2800",
    "variation selector 16 U+FE0F": "\ufe0f",
}


@pytest.mark.parametrize("mark", list(INVISIBLE.values()), ids=list(INVISIBLE))
def test_an_invisible_character_does_not_make_a_second_account_that_looks_the_same(instance: Settings, mark: str) -> None:
    with portal_session(instance) as session:
        accounts.create_user(session, instance, username="desk.clerk", password=PASSWORD, role="staff", display_name="Desk")
        session.commit()
        with pytest.raises(accounts.AccountError):
            accounts.create_user(session, instance, username=f"desk{mark}.clerk", password=PASSWORD, role="parent",
                                 display_name="Impostor")


def test_a_variation_selector_supplement_character_is_removed_from_a_name() -> None:
    assert accounts.normalize_username("desk\U000e0100.clerk") == "desk.clerk"


def test_activation_refuses_a_username_that_only_differs_by_an_invisible_character(
        district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    staff_client(district_app, settings, "desk.admin", "admin")
    info = summary.cases["transfer"]
    code = issue_code(settings, "guardian", info["pupil_id"], info["contact_id"])
    response = activate(district_app.test_client(), code, "desk\u034f.admin")
    with portal_session(settings) as session:
        names = session.scalars(select(User.username).where(User.role == "parent")).all()
    assert response.status_code != 302, f"a parent account looking exactly like desk.admin was created: {names!r}"

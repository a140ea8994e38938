"""Sessions and sign-in security: lockouts, throttles, CSRF, timeouts, revocation, cookies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from gateway.demo.sis import DemoSummary
from gateway.portal.models import Denial, UserSession
from gateway.settings import Settings

from .conftest import PASSWORD, activate, csrf, issue_code, login, portal_session


def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(parent_client: Callable[[str, str], FlaskClient],
                                                                      district_app: Flask) -> None:
    parent_client("siblings", "lockme")
    client = district_app.test_client()
    for _ in range(5):
        assert login(client, "lockme", "not the password at all").status_code == 401
    response = login(client, "lockme", PASSWORD)
    assert response.status_code == 401 and "Too many attempts" in response.get_data(as_text=True)


def test_the_lockout_holds_for_another_worker_because_it_lives_in_the_database(
    parent_client: Callable[[str, str], FlaskClient], district: tuple[Settings, DemoSummary]
) -> None:
    from web import create_app

    parent_client("siblings", "shared")
    first_worker, second_worker = create_app(district[0]), create_app(district[0])
    for _ in range(5):
        login(first_worker.test_client(), "shared", "wrong wrong wrong wrong")
    assert login(second_worker.test_client(), "shared", PASSWORD).status_code == 401


def test_code_entry_is_throttled_per_address(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    client = district_app.test_client()
    for number in range(10):
        response = activate(client, f"ABCD-EFGH-JKMN-{number:04d}", f"prober{number}")
        assert "That code is not right" in response.get_data(as_text=True)
    info = summary.cases["siblings"]
    real = issue_code(settings, "guardian", info["pupil_id"], info["contact_id"])
    response = activate(client, real, "prober-real")
    assert "Too many codes were tried from here" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/login", "/activate", "/logout"])
def test_a_form_without_a_valid_csrf_token_is_refused(district_app: Flask, path: str) -> None:
    client = district_app.test_client()
    assert client.post(path, data={"username": "x", "password": "y", "code": "z"}).status_code == 400
    assert client.post(path, data={"csrf_token": "forged", "username": "x"}).status_code == 400


def test_an_idle_session_ends(parent_client: Callable[[str, str], FlaskClient], district: tuple[Settings, DemoSummary]) -> None:
    client = parent_client("siblings", "idler")
    assert client.get("/dashboard").status_code == 200
    with portal_session(district[0]) as session:
        long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=21)
        session.execute(update(UserSession).values(last_seen_at=long_ago))
        session.commit()
    assert client.get("/dashboard").headers["Location"].startswith("/login")


def test_a_session_older_than_the_absolute_lifetime_ends(parent_client: Callable[[str, str], FlaskClient],
                                                         district: tuple[Settings, DemoSummary]) -> None:
    client = parent_client("siblings", "oldtimer")
    with portal_session(district[0]) as session:
        session.execute(update(UserSession).values(created_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=13)))
        session.commit()
    assert client.get("/dashboard").status_code == 302


def test_a_password_change_ends_the_other_sessions(parent_client: Callable[[str, str], FlaskClient], district_app: Flask) -> None:
    first = parent_client("siblings", "changer")
    second = district_app.test_client()
    assert login(second, "changer").status_code == 302
    token = csrf(first, "/account")
    response = first.post("/account", data={"csrf_token": token, "current": PASSWORD, "new": "a brand new gravel bicycle path"})
    assert response.status_code == 302
    assert first.get("/dashboard").status_code == 200
    assert second.get("/dashboard").headers["Location"].startswith("/login")


def test_a_denial_ends_the_session_at_the_next_request(parent_client: Callable[[str, str], FlaskClient],
                                                       district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    client = parent_client("split_household", "risk")
    assert client.get("/dashboard").status_code == 200
    with portal_session(settings) as session:
        session.add(Denial(source_system="sis", guardian_source_id=str(summary.cases["split_household"]["contact_id"]),
                           reason="identified as a security risk"))
        session.commit()
    assert client.get("/dashboard").headers["Location"].startswith("/login")
    assert "cannot sign in" in login(district_app_client(client), "risk").get_data(as_text=True)


def district_app_client(client: FlaskClient) -> FlaskClient:
    return client.application.test_client()


def test_a_denied_person_cannot_redeem_a_code(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    info = summary.cases["transfer"]
    code = issue_code(settings, "guardian", info["pupil_id"], info["contact_id"])  # the letter went out before the denial
    with portal_session(settings) as session:
        session.add(Denial(source_system="sis", guardian_source_id=str(info["contact_id"]), reason="security risk"))
        session.commit()
    response = activate(district_app.test_client(), code, "denied")
    assert "This code cannot be used" in response.get_data(as_text=True)


def test_expired_and_reused_codes_are_refused_with_a_clear_message(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    from gateway.portal.models import ActivationCode

    settings, summary = district
    info = summary.cases["transfer"]
    code = issue_code(settings, "guardian", info["pupil_id"], info["contact_id"])
    assert activate(district_app.test_client(), code, "first.user").status_code == 302
    assert "already been used" in activate(district_app.test_client(), code, "second.user").get_data(as_text=True)
    stale = issue_code(settings, "guardian", info["pupil_id"], info["contact_id"])
    with portal_session(settings) as session:
        session.execute(update(ActivationCode).where(ActivationCode.used_at.is_(None))
                        .values(expires_at=dt.datetime(2026, 1, 1, 18, tzinfo=dt.timezone.utc)))
        session.commit()
    assert "That code expired on January 1, 2026" in activate(district_app.test_client(), stale, "third.user").get_data(as_text=True)


def test_the_session_cookie_is_http_only_same_site_and_never_persistent(parent_client: Callable[[str, str], FlaskClient],
                                                                        district_app: Flask) -> None:
    parent_client("siblings", "cookies")
    client = district_app.test_client()
    response = login(client, "cookies")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Expires" not in cookie and "Max-Age" not in cookie  # a browser-session cookie: no "remember me"


def test_a_new_session_cookie_is_issued_at_login(parent_client: Callable[[str, str], FlaskClient], district_app: Flask) -> None:
    parent_client("siblings", "fixation")
    client = district_app.test_client()
    csrf(client, "/login")
    before = client.get_cookie("session")
    login(client, "fixation")
    after = client.get_cookie("session")
    assert before is not None and after is not None and before.value != after.value


def test_an_unknown_username_costs_the_same_hash_verification(district_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = PasswordHasher.verify

    def counting(self: PasswordHasher, hash: str, password: str) -> bool:
        calls.append(hash[:9])
        return original(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    response = login(district_app.test_client(), "nobody-by-this-name", "whatever it is today")
    assert response.status_code == 401 and "do not match" in response.get_data(as_text=True)
    assert calls == ["$argon2id"]


def test_next_may_only_point_inside_the_site(parent_client: Callable[[str, str], FlaskClient], district_app: Flask) -> None:
    parent_client("siblings", "redirected")
    for target, expected in (("https://evil.example/", "/dashboard"), ("//evil.example", "/dashboard"),
                             ("/account", "/account"), ("/\\evil.example", "/dashboard")):
        client = district_app.test_client()
        token = csrf(client, "/login")
        response = client.post(f"/login?next={target}", data={"csrf_token": token, "username": "redirected", "password": PASSWORD})
        assert response.headers["Location"] == expected, target


def test_logout_ends_the_server_side_session_so_a_replayed_cookie_is_refused(
    parent_client: Callable[[str, str], FlaskClient], district_app: Flask
) -> None:
    client = parent_client("siblings", "replayer")
    stolen = client.get_cookie("session")
    assert stolen is not None
    client.post("/logout", data={"csrf_token": csrf(client, "/account")})
    replay = district_app.test_client()
    replay.set_cookie("session", stolen.value)
    assert replay.get("/dashboard").headers["Location"].startswith("/login")


def test_the_account_page_lists_the_users_own_sign_ins(parent_client: Callable[[str, str], FlaskClient]) -> None:
    client = parent_client("siblings", "historian")
    page = client.get("/account").get_data(as_text=True)
    assert "Recent sign-ins" in page and "this session" in page

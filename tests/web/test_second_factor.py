"""The second factor: its pending state lives on the server, is used once, expires, and honours the lockout."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text, update

from gateway.demo.sis import DemoSummary
from gateway.portal import accounts, models, recovery
from gateway.portal.models import PortalBase, RecoveryToken, Throttle
from gateway.replica.dbtypes import utcnow
from gateway.security import totp
from gateway.settings import Settings

from gateway.portal.accounts import create_user

from .browser.conftest import LiveServer
from .conftest import PASSWORD, create_staff, csrf, login, portal_session, staff_client
from .test_parallel_acceptance import all_at_once, at_second_factor, code_sender, enrolled_staff, form_token
from .test_parallel_acceptance import portal as parallel_portal
from .test_parallel_acceptance import served  # noqa: F401  (the app on loopback, on SQLite and PostgreSQL)

SESSION_COOKIE = "session"


def submit_code(client: FlaskClient, code: str) -> str:
    token = csrf(client, "/login")  # the form token of this browser session (a used-up step has no form)
    response = client.post("/login/second-factor", data={"csrf_token": token, "code": code})
    return response.headers.get("Location") or response.get_data(as_text=True)


def saved_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie is not None, "no session cookie"
    return cookie.value


def replay(app: Flask, cookie: str) -> FlaskClient:
    """A new browser carrying a cookie saved earlier."""
    client = app.test_client()
    client.set_cookie(SESSION_COOKIE, cookie)
    return client


def wrong_code(secret: str, moment: float) -> str:
    right = {totp.code_at(secret, moment + offset * totp.STEP) for offset in (-1, 0, 1)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in right)


def test_the_pre_code_cookie_carries_neither_the_pending_user_nor_the_enrolment_secret(
        district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    create_staff(district[0], "new.enrollee", "staff")
    client = district_app.test_client()
    assert login(client, "new.enrollee").headers["Location"].startswith("/login/second-factor")
    page = client.get("/login/second-factor").get_data(as_text=True)
    secret = re.search(r"<code>([A-Z2-7]+)</code>", page)
    assert secret is not None, "the person enrolling sees the key to type into the app"
    serializer = district_app.session_interface.get_signing_serializer(district_app)  # type: ignore[attr-defined]
    carried = serializer.loads(saved_cookie(client))
    assert set(carried) <= {"csrf_token", "second_factor", "lang"}
    assert secret.group(1) not in repr(carried)
    with portal_session(district[0]) as session:  # kept on the server, and only encrypted there
        for table in PortalBase.metadata.sorted_tables:
            for row in session.execute(select(table)).all():
                assert secret.group(1) not in repr(row), f"the enrolment key is readable in {table.name}"
        (pending,) = session.scalars(select(models.SecondFactorChallenge)).all()
        assert pending.enrol_secret is not None and pending.ended_at is None


def test_a_saved_pre_code_cookie_signs_in_only_once(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    _, secret = staff_client(district_app, district[0], "once.only", "staff")
    client = district_app.test_client()
    login(client, "once.only")
    saved = saved_cookie(client)
    now = time.time()
    assert submit_code(client, totp.code_at(secret, now + totp.STEP)) == "/dashboard"
    # The same pre-code cookie again, with the next valid code: the pending sign-in was used up.
    assert replay(district_app, saved).get("/login/second-factor").status_code == 302  # back to the sign-in page
    again = replay(district_app, saved)
    assert submit_code(again, totp.code_at(secret, now + 2 * totp.STEP)) != "/dashboard"
    assert again.get("/staff").status_code == 302


def test_the_pending_second_factor_expires_on_the_server(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    _, secret = staff_client(district_app, district[0], "slow.typist", "staff")
    client = district_app.test_client()
    login(client, "slow.typist")
    with portal_session(district[0]) as session:
        session.execute(update(models.SecondFactorChallenge).values(expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)))
        session.commit()
    assert client.get("/login/second-factor").status_code == 302  # back to the sign-in page
    assert submit_code(client, totp.code_at(secret, time.time() + totp.STEP)) != "/dashboard"
    assert client.get("/staff").status_code == 302


def test_after_the_lockout_the_right_code_is_refused_on_every_saved_cookie_and_every_new_attempt(
        district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    _, secret = staff_client(district_app, district[0], "brute.target", "it")
    guesser = district_app.test_client()
    login(guesser, "brute.target")
    first_saved = saved_cookie(guesser)
    other = district_app.test_client()
    login(other, "brute.target")
    second_saved = saved_cookie(other)
    now = time.time()
    for _ in range(4):  # four wrong codes on the guesser's browser...
        assert "not right" in submit_code(guesser, wrong_code(secret, now))
    # ...and the fifth on a replay of its cookie saved before any guess: no fresh attempts.
    assert submit_code(replay(district_app, first_saved), wrong_code(secret, now)) != "/dashboard"
    right = totp.code_at(secret, now + totp.STEP)
    for cookie in (first_saved, second_saved):
        assert submit_code(replay(district_app, cookie), right) != "/dashboard"
        assert replay(district_app, cookie).get("/it").status_code == 302
    assert submit_code(guesser, right) != "/dashboard"
    fresh = district_app.test_client()
    assert "Too many attempts" in login(fresh, "brute.target").get_data(as_text=True)
    assert submit_code(fresh, right) != "/dashboard"
    with portal_session(district[0]) as session:  # until the lockout ends
        session.execute(text("UPDATE throttles SET locked_until = NULL, failures = 0"))
        session.commit()
    later = district_app.test_client()
    assert login(later, "brute.target").headers["Location"].startswith("/login/second-factor")
    assert submit_code(later, right) == "/dashboard"


def test_wrong_codes_are_counted_against_the_client_address_too(district_app: Flask,
                                                                district: tuple[Settings, DemoSummary]) -> None:
    _, secret = staff_client(district_app, district[0], "counted", "staff")
    client = district_app.test_client()
    login(client, "counted")
    now = time.time()
    for _ in range(3):
        submit_code(client, wrong_code(secret, now))
    with portal_session(district[0]) as session:
        counts = {row.scope: row.failures for row in session.scalars(select(Throttle).where(
            Throttle.scope.in_(("login_account", "login_ip"))))}
    assert counts == {"login_account": 3, "login_ip": 3}


def test_a_password_sign_in_of_a_staff_account_is_not_yet_a_session(district_app: Flask,
                                                                    district: tuple[Settings, DemoSummary]) -> None:
    create_staff(district[0], "half.there", "auditor")
    client = district_app.test_client()
    login(client, "half.there", PASSWORD)
    assert client.get("/audit").headers["Location"].startswith("/login")
    with portal_session(district[0]) as session:
        assert session.scalar(text("SELECT count(*) FROM user_sessions")) == 0


def test_signing_in_again_with_the_password_gives_no_fresh_code_attempts(district_app: Flask,
                                                                        district: tuple[Settings, DemoSummary]) -> None:
    _, secret = staff_client(district_app, district[0], "knows.password", "staff")
    now = time.time()
    for _ in range(4):
        client = district_app.test_client()
        login(client, "knows.password")
        assert "not right" in submit_code(client, wrong_code(secret, now))
    client = district_app.test_client()
    assert login(client, "knows.password").headers["Location"].startswith("/login/second-factor")
    submit_code(client, wrong_code(secret, now))  # the fifth wrong code: the account locks
    assert submit_code(client, totp.code_at(secret, now + totp.STEP)) != "/dashboard"
    assert "Too many attempts" in login(district_app.test_client(), "knows.password").get_data(as_text=True)


# --- bursts of parallel guesses are held to the lockout (attack review of issue 13, F1) ---------

@pytest.fixture
def pg_served(pg_instance: Settings) -> Iterator[str]:
    from web import create_app

    server = LiveServer(lambda _url: create_app(pg_instance))
    yield server.url
    server.stop()


def test_parallel_wrong_codes_get_no_more_guesses_than_the_lockout_allows(pg_served: str, pg_instance: Settings) -> None:
    """12 browsers (password known) send wrong codes at once: at most login_max_failures may be
    evaluated ("not right" answers); the rest must be refused as locked."""
    secret, _codes = enrolled_staff(pg_instance, "brute")
    browsers = [at_second_factor(pg_served, "brute") for _ in range(12)]
    right = {totp.code_at(secret, time.time() + o * totp.STEP) for o in (-1, 0, 1)}
    guesses = [f"{n:06d}" for n in range(100000, 100100) if f"{n:06d}" not in right][:12]
    answers = all_at_once([code_sender(pg_served, b, g) for b, g in zip(browsers, guesses)])
    evaluated = sum(r.status_code == 200 for r in answers) + sum(
        r.status_code == 302 and r.headers.get("Location", "").endswith("/dashboard") for r in answers)
    limit = pg_instance.security.login_max_failures
    assert evaluated <= limit - 1 + 1, f"{evaluated} codes were tried in one burst; the lockout allows {limit}"


def test_a_larger_burst_of_wrong_codes_is_still_held_to_the_lockout(pg_served: str, pg_instance: Settings) -> None:
    """40 browsers at once: one burst buys at most login_max_failures checked codes."""
    secret, _codes = enrolled_staff(pg_instance, "brute40")
    browsers = [at_second_factor(pg_served, "brute40") for _ in range(40)]
    right = {totp.code_at(secret, time.time() + o * totp.STEP) for o in (-1, 0, 1)}
    guesses = [f"{n:06d}" for n in range(400000, 400100) if f"{n:06d}" not in right][:40]
    answers = all_at_once([code_sender(pg_served, b, g) for b, g in zip(browsers, guesses)])
    evaluated = sum(r.status_code == 200 for r in answers)
    assert evaluated <= pg_instance.security.login_max_failures, f"{evaluated} of 40 codes were evaluated in one burst"


def test_a_right_code_sent_together_with_wrong_ones_is_refused_once_the_threshold_is_passed(
        pg_served: str, pg_instance: Settings) -> None:
    """No delay: 11 wrong codes and the right one released together from 12 browsers. If at least
    login_max_failures wrong codes were evaluated in the same burst, the right one must not sign in."""
    secret, _codes = enrolled_staff(pg_instance, "brute3")
    browsers = [at_second_factor(pg_served, "brute3") for _ in range(12)]
    now = time.time()
    right = {totp.code_at(secret, now + o * totp.STEP) for o in (-1, 0, 1)}
    wrongs = [f"{n:06d}" for n in range(300000, 300100) if f"{n:06d}" not in right][:11]
    senders = [code_sender(pg_served, b, g) for b, g in zip(browsers[:11], wrongs)]
    senders.insert(6, code_sender(pg_served, browsers[11], totp.code_at(secret, now)))
    answers = all_at_once(senders)
    good = answers.pop(6)
    wrong_evaluated = sum(r.status_code == 200 for r in answers)
    good_in = good.status_code == 302 and good.headers.get("Location", "").endswith("/dashboard")
    assert not (wrong_evaluated >= pg_instance.security.login_max_failures and good_in), \
        f"{wrong_evaluated} wrong codes were evaluated in the burst and the right one still signed in"


def test_parallel_wrong_passwords_get_no_more_guesses_than_the_lockout_allows(pg_served: str, pg_instance: Settings) -> None:
    """The same race on the password step: 12 browsers send 12 wrong passwords for one account at once."""
    with parallel_portal(pg_instance) as session:
        create_user(session, pg_instance, username="pw.target", password=PASSWORD, role="parent", display_name="T")
        session.commit()
    senders = []
    for i in range(12):
        browser = requests.Session()
        token = form_token(browser, f"{pg_served}/login")
        senders.append(lambda b=browser, t=token, i=i: b.post(f"{pg_served}/login", allow_redirects=False, data={
            "csrf_token": t, "username": "pw.target", "password": f"wrong guess number {i} of many"}))
    answers = all_at_once(senders)
    evaluated = sum("do not match" in r.text for r in answers)
    limit = pg_instance.security.login_max_failures
    assert evaluated <= limit - 1, f"{evaluated} wrong passwords were each answered 'do not match' in one burst (limit {limit})"


def test_parallel_wrong_codes_on_either_database_are_held_to_the_lockout(served: str, any_instance: Settings) -> None:
    secret, _codes = enrolled_staff(any_instance, "brute.any")
    browsers = [at_second_factor(served, "brute.any") for _ in range(12)]
    right = {totp.code_at(secret, time.time() + o * totp.STEP) for o in (-1, 0, 1)}
    guesses = [f"{n:06d}" for n in range(500000, 500100) if f"{n:06d}" not in right][:12]
    answers = all_at_once([code_sender(served, b, g) for b, g in zip(browsers, guesses)])
    evaluated = sum(r.status_code == 200 for r in answers)
    assert evaluated <= any_instance.security.login_max_failures, f"{evaluated} of 12 codes evaluated in one burst"


# --- a pending second factor ends with the password it was started with (F2) -------------------

NEW_PASSWORD = "seven quiet herons over the marsh"


@pytest.mark.parametrize("how", ["change_password", "reset_password", "sign_out_everywhere"])
def test_pending_second_factor_ends_when_the_password_changes(district_app: Flask, district: tuple[Settings, DemoSummary],
                                                              how: str) -> None:
    """An attacker who typed the (stolen) password holds a pending challenge; the owner then changes
    or resets the password (or signs out everywhere). The attacker's pending challenge must end."""
    settings = district[0]
    owner, secret = staff_client(district_app, settings, "victim.clerk", "staff")
    attacker = district_app.test_client()
    assert login(attacker, "victim.clerk").headers["Location"].startswith("/login/second-factor")
    if how == "change_password":
        token = csrf(owner, "/account")
        assert owner.post("/account", data={"csrf_token": token, "current": PASSWORD, "new": NEW_PASSWORD}).status_code == 302
    elif how == "sign_out_everywhere":
        token = csrf(owner, "/account")
        assert owner.post("/account/sign-out-everywhere", data={"csrf_token": token}).status_code == 302
    else:
        with portal_session(settings) as session:
            user = accounts.find_user(session, "victim.clerk")
            assert user is not None
            session.add(RecoveryToken(user_id=user.id, token_hash=accounts.token_hash("tok-xyz"),
                                      expires_at=utcnow().replace(year=2100)))
            session.flush()
            recovery.reset_password(session, settings, "tok-xyz", NEW_PASSWORD)
            session.commit()
    # the attacker, still holding the pre-code cookie made with the old password, enters a valid code
    where = submit_code(attacker, totp.code_at(secret, time.time() + totp.STEP))
    assert where != "/dashboard", f"pending sign-in made with the old password survived {how}"

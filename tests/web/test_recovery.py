"""Password reset and username reminder: to the email on file only, never revealing accounts."""

from __future__ import annotations

import datetime as dt
import email
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from gateway.demo.sis import DemoSummary
from gateway.mail import outbox_messages
from gateway.portal.models import RecoveryToken
from gateway.portal.recovery import GENERIC_ANSWER
from gateway.settings import Settings

from .conftest import csrf, login, portal_session

NEW = "seven quiet herons over the marsh"


def ask(app: Flask, path: str, field: str, value: str) -> str:
    client = app.test_client()
    token = csrf(client, path)
    client.post(path, data={"csrf_token": token, field: value})
    return client.get("/login").get_data(as_text=True)


def test_a_reset_link_goes_to_the_email_on_file_and_works_once(parent_client: Callable[[str, str], FlaskClient],
                                                              district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    settings = district[0]
    signed_in = parent_client("transfer", "forgetful")
    answer = ask(district_app, "/forgot-password", "identifier", "forgetful")
    assert "If an account matches" in answer
    (message,) = [email.message_from_bytes(path.read_bytes()) for path in outbox_messages(settings.mail.outbox_dir)]
    assert message["To"].endswith("@example.net")  # the guardian's SIS address, kept on the account
    link = re.search(r"/reset\?token=([A-Za-z0-9_-]+)", message.get_payload(decode=True).decode())
    assert link is not None
    client = district_app.test_client()
    assert client.get(link.group(0)).headers["Referrer-Policy"] == "no-referrer"
    token = csrf(client, link.group(0))
    assert client.post(link.group(0), data={"csrf_token": token, "password": NEW}).status_code == 302
    assert login(district_app.test_client(), "forgetful", NEW).status_code == 302
    assert signed_in.get("/dashboard").status_code == 302  # the old session ended
    assert district_app.test_client().get(link.group(0)).status_code == 404  # used up


def test_an_unknown_account_gets_the_same_answer_and_no_mail(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    page = ask(district_app, "/forgot-password", "identifier", "no-such-person")
    assert GENERIC_ANSWER.replace("'", "&#39;") in page
    assert outbox_messages(district[0].mail.outbox_dir) == []


def test_an_expired_link_is_refused(parent_client: Callable[[str, str], FlaskClient], district_app: Flask,
                                    district: tuple[Settings, DemoSummary]) -> None:
    parent_client("transfer", "slowpoke")
    ask(district_app, "/forgot-password", "identifier", "slowpoke")
    message = email.message_from_bytes(outbox_messages(district[0].mail.outbox_dir)[0].read_bytes())
    link = re.search(r"/reset\?token=[A-Za-z0-9_-]+", message.get_payload(decode=True).decode())
    with portal_session(district[0]) as session:
        session.execute(update(RecoveryToken).values(expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)))
        session.commit()
    assert link is not None and district_app.test_client().get(link.group(0)).status_code == 404


def test_a_username_reminder_lists_the_accounts_of_that_email(parent_client: Callable[[str, str], FlaskClient],
                                                              district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    from gateway.portal.models import User
    from sqlalchemy import select

    parent_client("transfer", "remember.me")
    with portal_session(district[0]) as session:
        address = session.scalars(select(User.email).where(User.username == "remember.me")).one()
    ask(district_app, "/forgot-username", "email", address.upper())
    (message,) = outbox_messages(district[0].mail.outbox_dir)
    assert "remember.me" in message.read_text()


def links_mailed(settings: Settings) -> list[str]:
    """The reset links in the outbox, oldest first."""
    found = []
    for path in sorted(outbox_messages(settings.mail.outbox_dir), key=lambda p: p.stat().st_mtime_ns):
        body = email.message_from_bytes(path.read_bytes()).get_payload(decode=True).decode()
        found += re.findall(r"/reset\?token=[A-Za-z0-9_-]+", body)
    return found


def test_a_newer_reset_link_makes_the_older_one_stop_working(parent_client: Callable[[str, str], FlaskClient],
                                                             district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    parent_client("transfer", "asked.twice")
    ask(district_app, "/forgot-password", "identifier", "asked.twice")
    ask(district_app, "/forgot-password", "identifier", "asked.twice")
    older, newer = links_mailed(district[0])
    assert district_app.test_client().get(older).status_code == 404
    client = district_app.test_client()
    assert client.post(newer, data={"csrf_token": csrf(client, newer), "password": NEW}).status_code == 302


def test_a_completed_reset_revokes_every_other_outstanding_link_of_the_account(
        parent_client: Callable[[str, str], FlaskClient], district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    from sqlalchemy import select

    from gateway.portal.accounts import token_hash
    from gateway.portal.models import User
    from gateway.replica.dbtypes import utcnow

    parent_client("transfer", "many.links")
    ask(district_app, "/forgot-password", "identifier", "many.links")
    (link,) = links_mailed(district[0])
    with portal_session(district[0]) as session:  # another link still outstanding (issued before this rule, say)
        user_id = session.scalars(select(User.id).where(User.username == "many.links")).one()
        session.add(RecoveryToken(user_id=user_id, token_hash=token_hash("an-outstanding-older-link"),
                                  expires_at=utcnow() + dt.timedelta(minutes=30)))
        session.commit()
    client = district_app.test_client()
    assert client.post(link, data={"csrf_token": csrf(client, link), "password": NEW}).status_code == 302
    assert district_app.test_client().get("/reset?token=an-outstanding-older-link").status_code == 404


def test_forgot_password_takes_as_long_for_an_unknown_name_as_for_a_known_one(
        parent_client: Callable[[str, str], FlaskClient], district_app: Flask, district: tuple[Settings, DemoSummary],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """In SMTP mode a mail conversation takes tenths of a second; it must not happen inside the
    request, or the answer's time says whether the name exists. Stand-in for a slow server:
    mail.send takes 0.4 s and notes the thread it ran on."""
    from gateway import mail
    parent_client("transfer", "known.parent")
    monkeypatch.setitem(district_app.config, "GATEWAY_SETTINGS",
                        replace(district[0], mail=replace(district[0].mail, mode="smtp", smtp_host="127.0.0.1")))
    sent_on: list[threading.Thread] = []

    def slow_send(*args: object, **kwargs: object) -> None:
        sent_on.append(threading.current_thread())
        time.sleep(0.4)
    monkeypatch.setattr(mail, "send", slow_send)

    def timed(name: str) -> float:
        client = district_app.test_client()
        token = csrf(client, "/forgot-password")
        start = time.perf_counter()
        client.post("/forgot-password", data={"csrf_token": token, "identifier": name})
        return time.perf_counter() - start
    known, unknown = timed("known.parent"), timed("nobody.by.this.name")
    time.sleep(0.1)  # the background sender has started by now
    assert len(sent_on) == 1, "the known name's reset mail was not sent"
    assert sent_on[0] is not threading.current_thread(), "the mail was sent inside the request"
    assert abs(known - unknown) < 0.3, f"known {known:.2f}s vs unknown {unknown:.2f}s"

"""A synced district for page tests: the demo SIS (every policy case) in the test instance."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session

from gateway.portal import activation
from gateway.db import create_ro_engine, create_rw_engine
from gateway.demo.sis import DemoSummary, generate
from gateway.portal.models import ActivationCode, UserStudent
from gateway.settings import Settings, load_settings

PASSWORD = "correct horse battery staple lamp"
TODAY = dt.date(2026, 11, 28)


@pytest.fixture(scope="session")
def district_sis(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoSummary]:
    path = tmp_path_factory.mktemp("district") / "sis.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    summary = generate(engine, students=40, seed=3, today=TODAY)
    engine.dispose()
    return path, summary


def synced_district(instance: Settings, sis: Path, tmp_path: Path) -> Settings:
    """Point the instance at a copy of the demo SIS and run a full sync into its replica."""
    from connectors import registry
    from sync.engine import run_sync

    source = tmp_path / "sis.sqlite3"
    shutil.copyfile(sis, source)
    config = Path(str(instance.config_path))
    config.write_text(config.read_text() + f'\n[[connectors]]\nname = "sis"\nkind = "sql"\nurl = "sqlite:///{source}"\nmapping = "demo"\n')
    settings = load_settings(config, env={})
    run_sync(settings, registry.build(settings.connectors[0], settings), "full")
    return settings


@pytest.fixture
def district(instance: Settings, district_sis: tuple[Path, DemoSummary], tmp_path: Path) -> tuple[Settings, DemoSummary]:
    """The instance with the demo district synced into its replica."""
    return synced_district(instance, district_sis[0], tmp_path), district_sis[1]


@pytest.fixture
def pg_district(pg_instance: Settings, district_sis: tuple[Path, DemoSummary], tmp_path: Path) -> tuple[Settings, DemoSummary]:
    """The same district with the replica and the portal on PostgreSQL, as production runs."""
    return synced_district(pg_instance, district_sis[0], tmp_path), district_sis[1]


@pytest.fixture
def district_app(district: tuple[Settings, DemoSummary]) -> Flask:
    from web import create_app

    app = create_app(district[0])
    app.config.update(TESTING=True)
    return app


def portal_session(settings: Settings) -> Session:
    return Session(create_rw_engine(settings.portal.url))


def issue_code(settings: Settings, purpose: str, pupil: int, contact: int | None) -> str:
    with portal_session(settings) as session, Session(create_ro_engine(settings.replica.url)) as replica:
        issued = activation.issue(session, replica, settings, purpose, "sis", str(pupil), str(contact) if contact else None)
        session.commit()
        return issued.code


def historic_code(settings: Settings, pupil: int, contact: int) -> str:
    """A code issued back when the link was in force with portal access (the SIS has since
    changed it, so none could be issued today); written as ``activation.issue`` wrote it."""
    code = activation.new_code()
    with portal_session(settings) as session:
        session.add(ActivationCode(code_hash=activation.code_hash(code), purpose="guardian", source_system="sis",
                                   student_source_id=str(pupil), guardian_source_id=str(contact),
                                   expires_at=dt.datetime(2099, 1, 1, tzinfo=dt.timezone.utc)))
        session.commit()
    return code


def activated_in_2024(client: FlaskClient, settings: Settings, pupil: int, contact: int, username: str) -> Any:
    """A parent who redeemed a code in 2024, while the link was in force with portal access;
    the SIS has since ended it, so no code would redeem today. The account, the used code and
    the activation are written as redeeming wrote them then; the client signs in."""
    from gateway.portal.accounts import create_user

    code = historic_code(settings, pupil, contact)
    moment = dt.datetime(2024, 8, 1, 12, tzinfo=dt.timezone.utc)
    with portal_session(settings) as session:
        row = session.scalars(select(ActivationCode).where(ActivationCode.code_hash == activation.code_hash(code))).one()
        user = create_user(session, settings, username=username, password=PASSWORD, role="parent",
                           display_name=f"Parent {contact}", source_system="sis", guardian_source_id=str(contact))
        row.used_at, row.used_by_id = moment, user.id
        session.add(UserStudent(user_id=user.id, source_system="sis", student_source_id=str(pupil),
                                activation_code_id=row.id, activated_at=moment))
        session.commit()
    return login(client, username)


def csrf(client: FlaskClient, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"', page)
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


def activate(client: FlaskClient, code: str, username: str) -> Any:
    token = csrf(client, "/activate")
    return client.post("/activate", data={"csrf_token": token, "code": code, "username": username,
                                          "password": PASSWORD, "responsibilities": "y"})


def accept_guidelines(client: FlaskClient) -> None:
    token = csrf(client, "/guidelines")
    response = client.post("/guidelines", data={"csrf_token": token, "accept": "y"})
    assert response.status_code == 302


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    token = csrf(client, "/login")
    return client.post("/login", data={"csrf_token": token, "username": username, "password": password})


def set_activation_date(settings: Settings, username: str, when: dt.date) -> None:
    from gateway.portal.models import User

    with portal_session(settings) as session:
        user_id = session.scalars(select(User.id).where(User.username == username)).one()
        moment = dt.datetime.combine(when, dt.time(12), dt.timezone.utc)
        session.execute(update(UserStudent).where(UserStudent.user_id == user_id).values(activated_at=moment))
        session.commit()


@pytest.fixture
def parent_client(district_app: Flask, district: tuple[Settings, DemoSummary]) -> Callable[[str, str], FlaskClient]:
    """A signed-in parent (guidelines accepted) for a case's guardian, activated in 2024."""
    settings, summary = district

    def make(case: str, username: str) -> FlaskClient:
        info = summary.cases[case]
        client = district_app.test_client()
        response = activate(client, issue_code(settings, "guardian", info["pupil_id"], info["contact_id"]), username)
        assert response.status_code == 302, response.get_data(as_text=True)
        accept_guidelines(client)
        set_activation_date(settings, username, dt.date(2024, 8, 1))
        return client

    return make


def create_staff(settings: Settings, username: str, role: str) -> None:
    """A staff-role account with the test password; it enrols its second factor at first sign-in."""
    from gateway.portal.accounts import create_user

    with portal_session(settings) as session:
        create_user(session, settings, username=username, password=PASSWORD, role=role, display_name=f"Demo {role}")
        session.commit()


def staff_client(app: Flask, settings: Settings, username: str, role: str) -> tuple[FlaskClient, str]:
    """A staff-role account signed in with its second factor (enrolled on the way); returns its TOTP key."""
    import time

    from gateway.security import totp

    create_staff(settings, username, role)
    client = app.test_client()
    assert login(client, username).headers["Location"].startswith("/login/second-factor")
    page = client.get("/login/second-factor").get_data(as_text=True)
    secret = re.search(r"<code>([A-Z2-7]+)</code>", page)
    assert secret is not None, "no key shown for enrolment"
    token = csrf(client, "/login/second-factor")
    response = client.post("/login/second-factor", data={"csrf_token": token, "code": totp.code_at(secret.group(1), time.time())})
    assert "Your recovery codes" in response.get_data(as_text=True)
    accept_guidelines(client)
    return client, secret.group(1)

"""The app factory: public pages, health check, security headers, cookie settings."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.settings import Settings


def test_the_landing_page_names_the_district(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert b"Test Unified School District" in response.data


def test_healthz_reports_both_databases_without_personal_data(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "replica": "ok", "portal": "ok"}


def test_livez_answers_without_touching_a_database(instance: Settings) -> None:
    from web import create_app

    (instance.instance_dir / "replica.sqlite3").unlink()
    (instance.instance_dir / "portal.sqlite3").unlink()
    response = create_app(instance).test_client().get("/livez")
    assert response.status_code == 200 and response.get_data(as_text=True) == "ok\n"


def test_healthz_says_degraded_when_a_database_is_unreachable(instance: Settings) -> None:
    from web import create_app

    (instance.instance_dir / "replica.sqlite3").unlink()
    response = create_app(instance).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["replica"] == "unavailable"


def test_every_page_carries_the_security_headers(client: FlaskClient) -> None:
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in response.headers  # plain http in tests


def test_session_cookies_are_http_only_and_same_site(client: FlaskClient) -> None:
    config = client.application.config
    assert config["SESSION_COOKIE_HTTPONLY"] is True
    assert config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_https_deployments_get_secure_cookies_and_hsts(instance: Settings) -> None:
    import dataclasses

    from web import create_app

    secure = dataclasses.replace(instance, web=dataclasses.replace(instance.web, public_url="https://portal.example.org"))
    app = create_app(secure)
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_NAME"] == "__Host-session"
    assert "max-age=" in app.test_client().get("/").headers["Strict-Transport-Security"]


def test_two_workers_portal_transactions_on_sqlite_wait_for_each_other_instead_of_failing(app: Flask) -> None:
    """A request reads then writes; with a deferred BEGIN, the second writer failed at once
    with "database is locked" (seen in the soak: 7 of 10 simultaneous sign-ins got a 500)."""
    import threading
    import time

    from sqlalchemy import func, insert, select

    from gateway.replica.dbtypes import utcnow
    from gateway.portal.models import Throttle

    factory = app.extensions["gateway.db"]["portal"]
    first, second = factory(), factory()  # two connections, as two gunicorn workers have
    first.execute(select(Throttle.id)).all()  # the first request has read
    finished = threading.Event()

    def other_worker() -> None:
        second.execute(select(Throttle.id)).all()
        second.execute(insert(Throttle).values(scope="login_ip", key="10.0.0.2", failures=1, window_started_at=utcnow()))
        second.commit()
        finished.set()

    worker = threading.Thread(target=other_worker)
    worker.start()
    time.sleep(0.3)
    assert not finished.is_set()  # it waits for the first request's transaction
    first.execute(insert(Throttle).values(scope="login_ip", key="10.0.0.1", failures=1, window_started_at=utcnow()))
    first.commit()
    worker.join(timeout=10)
    assert finished.is_set()
    assert factory().scalar(select(func.count()).select_from(Throttle)) == 2


@contextlib.contextmanager
def read_only_file(path: Path) -> Iterator[None]:
    """chmod 0444; as root (which ignores modes) also the immutable flag, or a skip saying why."""
    path.chmod(0o444)
    immutable = os.geteuid() == 0
    if immutable and subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        path.chmod(0o600)
        pytest.skip("running as root without chattr: no way to make a file read-only")
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o600)


def test_healthz_fails_when_the_portal_database_cannot_take_a_write_and_livez_stays_ok(instance: Settings) -> None:
    from web import create_app

    portal = instance.instance_dir / "portal.sqlite3"
    with read_only_file(portal):  # every read still answers, no write can land
        client = create_app(instance).test_client()
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.get_json() == {"status": "degraded", "replica": "ok", "portal": "unavailable"}
        assert client.get("/livez").status_code == 200


def test_healthz_fails_when_the_postgres_portal_is_read_only(pg_instance: Settings) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from web import create_app

    database = make_url(pg_instance.portal.url).database
    owner = create_engine(pg_instance.portal.url, isolation_level="AUTOCOMMIT")
    with owner.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on'))
    owner.dispose()
    client = create_app(pg_instance).test_client()
    response = client.get("/healthz")
    assert response.status_code == 503 and response.get_json()["portal"] == "unavailable"
    assert client.get("/livez").status_code == 200

"""The app factory: public pages, health check, security headers, cookie settings."""

from __future__ import annotations

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

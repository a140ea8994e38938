"""The app factory: public pages, health check, security headers, cookie settings."""

from __future__ import annotations

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

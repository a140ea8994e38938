"""The web layer: server-rendered pages over the read-only replica and the portal DB.

``create_app(config=None)`` builds the app from ``Settings`` (read from the environment
when none are given). The scheduler never starts here: it is its own process.
"""

from __future__ import annotations

from flask import Flask
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway.security import passwords
from gateway.security.keys import load_keys
from gateway.settings import Settings, load_settings
from web import (admin_console, apply, audit_console, auth, consoles, db, errors, headers, i18n, inputs, it_console,
                 portal, public, recovery, report, staff_console, student)

csrf = CSRFProtect()


def create_app(config: Settings | None = None) -> Flask:
    """Build the app for one instance's settings."""
    settings = config or load_settings()
    app = Flask(__name__)
    _configure(app, settings)
    csrf.init_app(app)
    db.init_app(app, settings)
    headers.init_app(app)
    inputs.init_app(app)
    i18n.init_app(app, settings.district.timezone)
    login = LoginManager(app)
    auth.init_login(login)
    for blueprint in (public.bp, auth.bp, portal.bp, student.bp, report.bp, apply.bp, recovery.bp, consoles.bp,
                      staff_console.bp, it_console.bp, audit_console.bp, admin_console.bp, errors.bp):
        app.register_blueprint(blueprint)
    passwords.warm(settings)  # the unknown-name dummy hash, made before the first sign-in, not during it
    if settings.web.trusted_proxy_hops:
        hops = settings.web.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    return app


def _configure(app: Flask, settings: Settings) -> None:
    keys = load_keys(settings)
    app.extensions["gateway.security.keys"] = keys
    ring = keys.flask
    secure = settings.web.public_url.startswith("https://")
    app.config.update(
        GATEWAY_SETTINGS=settings,
        SECRET_KEY=ring.active_key,
        # Old keys still verify cookies signed before a rotation, until they expire.
        SECRET_KEY_FALLBACKS=[key for kid, key in ring.keys.items() if kid != ring.active],
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_NAME="__Host-session" if secure else "session",
        PERMANENT_SESSION_LIFETIME=settings.web.absolute_timeout_hours * 3600,
        PREFERRED_URL_SCHEME="https" if secure else "http",
        HSTS=secure,
        MAX_CONTENT_LENGTH=1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,  # the session's own lifetime bounds the token
    )

"""Public pages: the landing page and the load balancer's health check."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template
from flask.typing import ResponseReturnValue
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from web import db

bp = Blueprint("public", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    settings = current_app.config["GATEWAY_SETTINGS"]
    return render_template("index.html", district=settings.district.name)


@bp.get("/help")
def help() -> ResponseReturnValue:
    from gateway.portal import applications, guidelines

    version = guidelines.current(db.portal())
    return render_template("help.html", guidelines=version.body if version else guidelines.DEFAULT_GUIDELINES,
                           training=applications.upcoming_training(db.portal()))


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Both databases answer and the portal takes a write; no personal data, no counts."""
    from gateway.portal import health

    checks = {"replica": "ok" if _answers(db.replica()) else "unavailable",
              # Sign-ins, sessions and the audit trail all write: a portal that only reads is down.
              "portal": "ok" if _answers(db.portal()) and health.takes_writes(db.portal()) else "unavailable"}
    healthy = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if healthy else "degraded", **checks), 200 if healthy else 503


def _answers(session: Session) -> bool:
    try:
        session.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError:
        session.rollback()
        return False


@bp.get("/livez")
def livez() -> ResponseReturnValue:
    """The process answers (no database touched): for a liveness probe, and the framework's floor in benchmarks."""
    return "ok\n", 200, {"Content-Type": "text/plain; charset=utf-8"}

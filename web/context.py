"""What every page needs: the settings, the keys, today's date, the audit trail, the user."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask import current_app, request
from flask_login import UserMixin, current_user

from gateway.security import audit
from gateway.security.crypto import FieldCipher
from gateway.security.keys import Keys
from gateway.portal.models import User
from gateway.portal.schoolyear import local_today
from gateway.settings import Settings
from web import db


def settings() -> Settings:
    return current_app.config["GATEWAY_SETTINGS"]  # type: ignore[no-any-return]


def keys() -> Keys:
    return current_app.extensions["gateway.security.keys"]  # type: ignore[no-any-return]


def cipher() -> FieldCipher:
    return FieldCipher(keys().field)


def today() -> dt.date:
    """Today in the district's zone (demo and test instances may pin it)."""
    return local_today(settings().zone, settings().policy.today)


def client_ip() -> str:
    # ProxyFix has already applied the configured trusted hops to remote_addr.
    return request.remote_addr or "unknown"


@dataclass
class Account(UserMixin):  # type: ignore[misc]
    """The signed-in user and their live session, as Flask-Login sees them."""

    user: User
    session_id: int

    def get_id(self) -> str:
        return str(self.user.id)


def user() -> User:
    return current_user.user  # type: ignore[no-any-return]


def record(action: str, **fields: Any) -> None:
    """Append an audit entry for this request (after committing the request's own changes)."""
    db.portal().commit()
    actor = current_user.user if current_user.is_authenticated else None
    settings_ = settings()
    engine = db.portal().get_bind()
    audit.append(engine, keys().audit, settings_.audit.checkpoint_file, audit.Event(  # type: ignore[arg-type]
        action=action, actor_user_id=actor.id if actor else fields.pop("actor_user_id", None),
        actor_role=actor.role if actor else None, ip=client_ip(), target=request.path[:255],
        source_system=_clip(fields.pop("source_system", None), 64),
        student_source_id=_clip(fields.pop("student_source_id", None), 255), detail=fields))


def _clip(value: str | None, width: int) -> str | None:
    """Ids come from the URL: a probe with a huge one is still audited, cut to the column's width."""
    return value[:width] if value is not None else None

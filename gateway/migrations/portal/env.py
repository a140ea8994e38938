"""Alembic environment of the portal database (driven by ``gateway.migrate``)."""

from __future__ import annotations

from alembic import context

from gateway.migrate import run_migrations
from gateway.portal.models import PortalBase

run_migrations(context, PortalBase.metadata)

"""Alembic environment of the replica database (driven by ``gateway.migrate``)."""

from __future__ import annotations

from alembic import context

from gateway.migrate import run_migrations
from gateway.replica.tables import ReplicaBase

run_migrations(context, ReplicaBase.metadata)

"""Alembic environments: ``replica/`` and ``portal/``, one head each."""

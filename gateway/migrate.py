"""Schema migrations of both databases, through Alembic's API (no alembic.ini needed)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData

from gateway.errors import UnknownPlugin

DATABASES = ("replica", "portal")
# Created and owned by APScheduler's SQLAlchemy job store, not by these migrations.
FOREIGN_TABLES = frozenset({"apscheduler_jobs"})


def alembic_config(database: str, engine: Engine) -> Config:
    if database not in DATABASES:
        raise UnknownPlugin("database", database, DATABASES)
    config = Config()
    config.set_main_option("script_location", str(files("gateway.migrations") / database))
    config.attributes["engine"] = engine
    return config


def upgrade(database: str, engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(database, engine), revision)


def heads(database: str, engine: Engine) -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(alembic_config(database, engine)).get_heads())


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def run_migrations(context: Any, metadata: MetaData) -> None:
    """Body of each env.py: migrate the engine handed over in ``config.attributes``."""
    engine: Engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            include_object=_include_object,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


def _include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (type_ == "table" and name in FOREIGN_TABLES)

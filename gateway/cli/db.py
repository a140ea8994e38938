"""``gateway db``: migrations, the PostgreSQL grants of the web role, a SIS source's SELECT-only login."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from gateway import migrate
from gateway.errors import ConfigError
from gateway.security import grants, sourcelogin, sqltree
from gateway.cli import Context, emit, json_option, pass_context
from gateway.db import create_rw_engine
from gateway.settings import Settings


def register(group: click.Group) -> None:
    group.add_command(db)


def engines(settings: Settings) -> dict[str, Engine]:
    return {"replica": create_rw_engine(settings.replica.url), "portal": create_rw_engine(settings.portal.url)}


def upgrade_databases(settings: Settings) -> dict[str, str | None]:
    """Bring both databases to the newest schema; return their revisions."""
    revisions = {}
    for name, engine in engines(settings).items():
        migrate.upgrade(name, engine)
        revisions[name] = migrate.current(engine)
        engine.dispose()
    return revisions


@click.group()
def db() -> None:
    """Schema migrations and database grants."""


@db.command()
@json_option
@pass_context
def upgrade(ctx: Context, as_json: bool) -> None:
    """Apply every pending migration to the replica and the portal databases."""
    revisions = upgrade_databases(ctx.settings)
    emit(as_json, revisions, "\n".join(f"{name}: at {rev}" for name, rev in revisions.items()))


@db.command()
@json_option
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """Each database's current and newest schema revision."""
    report: dict[str, dict[str, Any]] = {}
    for name, engine in engines(ctx.settings).items():
        report[name] = {"current": migrate.current(engine), "head": migrate.heads(name, engine)[0]}
        report[name]["up_to_date"] = report[name]["current"] == report[name]["head"]
        engine.dispose()
    emit(as_json, report, "\n".join(
        f"{name}: at {r['current'] or 'nothing'}, newest {r['head']}{'' if r['up_to_date'] else '  (run gateway db upgrade)'}"
        for name, r in report.items()
    ))


@db.command("grants")
@click.option("--role", default="gateway_web", show_default=True, help="The web's login role.")
@click.option("--database", "which", type=click.Choice(["all", "replica", "portal"]), default="all", show_default=True)
@click.option("--create-role/--no-create-role", default=True, help="Begin with CREATE ROLE (with --database all).")
@pass_context
def grants_command(ctx: Context, role: str, which: str, create_role: bool) -> None:
    """Print the psql script giving the web role SELECT-only replica access.

    Run it as the tables' owner: psql -v ON_ERROR_STOP=1 -f grants.sql
    """
    settings = ctx.settings
    lines: list[str] = []
    if which == "all" and create_role:
        lines += grants.create_role_sql(role)
    for name, url, build in (("replica", settings.replica.url, grants.replica_grants),
                             ("portal", settings.portal.url, grants.portal_grants)):
        if which not in ("all", name):
            continue
        database = _postgres_database(name, url)
        if which == "all":
            lines.append(f"\\connect {grants.quote(database)}")
        lines += build(role, database)
    click.echo("\n".join(lines))


def _postgres_database(name: str, url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        raise ConfigError(f"{name}.url", "is not a PostgreSQL database", "grants are for PostgreSQL deployments")
    return parsed.database


@db.command("source-grants")
@click.argument("name")
@click.option("--login", default="gateway_reader", show_default=True, help="The SELECT-only login to create.")
@click.option("--dialect", type=click.Choice(sorted(sourcelogin.GRANT_DIALECTS)),
              help="The SIS database's kind (default: the connector URL's).")
@pass_context
def source_grants(ctx: Context, name: str, login: str, dialect: str | None) -> None:
    """Print the SQL creating a SELECT-only login for the tables SQL connector NAME reads.

    Run it as an administrator of the SIS database, choose the password, and put it in
    GATEWAY_SECRET_SOURCE_<NAME> or keys/source-<name>, never in the URL.
    """
    from connectors.mapping import load_mapping
    from connectors.sql import read_tables

    entry = ctx.settings.connector(name)
    if entry.kind != "sql" or "url" not in entry.options or "mapping" not in entry.options:
        raise ConfigError(f"connectors.{name}", "is not a sql connector with a url and a mapping",
                          "source grants are for SQL sources")
    url = make_url(str(entry.options["url"]))
    source = url.get_backend_name()
    if (dialect or source) == "sqlite":
        click.echo("-- SQLite has no logins: the gateway opens the file read-only (mode=ro).")
        return
    mapping = load_mapping(str(entry.options["mapping"]))
    glot = sqltree.sqlglot_dialect(source)
    trees = {q.spec.name: sqltree.parse_query(q.query, glot, f"mapping {mapping.name}: streams.{q.spec.name}.query")
             for q in mapping.streams}
    statements = sourcelogin.grant_statements(dialect or source, login, url.database or name, read_tables(mapping, trees))
    click.echo("\n".join(statements))

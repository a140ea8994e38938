"""``gateway audit``: verify the hash-chained trail against its checkpoint; export a period."""

from __future__ import annotations

import datetime as dt
import json

import click
from sqlalchemy import select

from gateway.security import audit
from gateway.cli import Context, audited, emit, json_option, pass_context
from gateway.db import create_rw_engine
from gateway.errors import GatewayError
from gateway.security.keys import load_keyring
from gateway.portal.models import AuditEntry


def register(group: click.Group) -> None:
    group.add_command(audit_group)


class TrailBroken(GatewayError):
    exit_code = 4


@click.group("audit")
def audit_group() -> None:
    """The audit trail: verification and export."""


@audit_group.command()
@json_option
@pass_context
def verify(ctx: Context, as_json: bool) -> None:
    """Check every entry and the checkpoint; exit 4 naming the first problem found."""
    settings = ctx.settings
    result = audit.verify(create_rw_engine(settings.portal.url), load_keyring(settings, "audit"),
                          settings.audit.checkpoint_file)
    emit(as_json, result.as_dict(), f"audit trail intact: {result.checked} entries" if result.ok
         else f"audit trail BROKEN after {result.checked} good entries: {result.problem}")
    if not result.ok:
        raise click.exceptions.Exit(TrailBroken.exit_code)


@audit_group.command("accept-head")
@json_option
@pass_context
def accept_head(ctx: Context, as_json: bool) -> None:
    """Move the checkpoint to the chain's head, once you have checked the entries past it."""
    settings = ctx.settings
    previous, chain = audit.accept_head(create_rw_engine(settings.portal.url), load_keyring(settings, "audit"),
                                        settings.audit.checkpoint_file)
    if not chain.ok:
        emit(as_json, chain.as_dict(), f"checkpoint NOT moved: the chain itself is broken: {chain.problem}")
        raise click.exceptions.Exit(TrailBroken.exit_code)
    audited(settings, "audit.head_accepted", previous_checkpoint=previous, head=chain.checked)
    emit(as_json, {"previous": previous, "head": chain.checked},
         f"checkpoint moved from entry {previous} to entry {chain.checked}")


@audit_group.command()
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), required=True, help="Inclusive (district dates).")
@pass_context
def export(ctx: Context, start: dt.datetime, end: dt.datetime) -> None:
    """Write the entries of a period as JSON lines, with their hashes, for outside checking."""
    settings = ctx.settings
    zone = settings.zone
    low = start.replace(tzinfo=zone)
    high = (end + dt.timedelta(days=1)).replace(tzinfo=zone)
    engine = create_rw_engine(settings.portal.url)
    with engine.connect() as connection:
        rows = connection.execute(select(AuditEntry.__table__).where(AuditEntry.at >= low, AuditEntry.at < high)
                                  .order_by(AuditEntry.id)).mappings()
        for row in rows:
            click.echo(json.dumps({key: (value.isoformat() if isinstance(value, dt.datetime) else value)
                                   for key, value in row.items()}, sort_keys=True))

"""``gateway sync``: run a connector now, and see runs, their counts and their rejects."""

from __future__ import annotations

import sys
from typing import Any

import click
from sqlalchemy import func, select

from gateway.cli import Context, emit, json_option, pass_context
from gateway.db import create_rw_engine
from gateway.errors import GatewayError
from gateway.replica.run_findings import finding_lines
from gateway.replica.tables import SyncReject, SyncRun

# unresolved: of the rejected, records whose required reference is not in the replica;
# null_cursor: records read with no modification time (read by every incremental run).
COUNT_KEYS = ("inserted", "updated", "deleted", "unchanged", "rejected", "unresolved", "null_cursor")


def register(group: click.Group) -> None:
    group.add_command(sync)


@click.group()
def sync() -> None:
    """Sync the replica from a connector; show runs and rejects."""


def _progress(stream: str, records: int, seconds: float) -> None:
    rate = records / seconds if seconds > 0 else 0.0
    end = "\n" if not sys.stderr.isatty() else "\r"
    click.echo(f"  {stream:<22} {records:>9} records  {rate:>9.0f}/s", err=True, nl=False)
    click.echo(end, err=True, nl=False)


@sync.command("run")
@click.argument("name")
@click.option("--full", is_flag=True, help="Read every stream in full (deletes what vanished).")
@click.option("--allow-shrink", is_flag=True, help="Let a full run delete more than the shrink limit.")
@json_option
@pass_context
def run_command(ctx: Context, name: str, full: bool, allow_shrink: bool, as_json: bool) -> None:
    """Run connector NAME now. Exits 75 if it is already running, 3 if a guard stopped it."""
    from sync.runner import run_sync

    result = run_sync(ctx.settings, name, full=full, allow_shrink=allow_shrink, progress=None if as_json else _progress)
    result.raise_error()
    emit(as_json, result.as_dict(), _summary_table(result.as_dict()))


def _summary_table(report: dict[str, Any]) -> str:
    lines = [f"run {report['run_id']} of {report['connector']} ({report['mode']}): {report['status']}",
             f"  {'table':<22}" + "".join(f"{k:>12}" for k in COUNT_KEYS)]
    for table, counts in report["counts"].items():
        lines.append(f"  {table:<22}" + "".join(f"{counts.get(k, 0):>12}" for k in COUNT_KEYS))
    lines.extend(f"WARNING: {warning}" for warning in report.get("warnings", []))
    warned = finding_lines(report.get("findings"))
    if warned:
        lines += ["warnings about the source:", *(f"  {line}" for line in warned)]
    return "\n".join(lines)


@sync.command()
@json_option
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """Each connector's last run."""
    settings = ctx.settings
    engine = create_rw_engine(settings.replica.url)
    report = {}
    with engine.connect() as connection:
        for entry in settings.connectors:
            run = connection.execute(select(SyncRun).where(SyncRun.connector == entry.name)
                                     .order_by(SyncRun.id.desc()).limit(1)).mappings().first()
            report[entry.name] = _run_dict(run) if run else None
    emit(as_json, report, "\n".join(
        f"{name}: " + (f"run {r['id']} {r['status']} at {r['finished_at'] or r['started_at']}" if r else "never run")
        for name, r in report.items()) or "no connectors configured")


@sync.command()
@click.argument("name", required=False)
@click.option("--limit", type=int, default=20, show_default=True)
@json_option
@pass_context
def history(ctx: Context, name: str | None, limit: int, as_json: bool) -> None:
    """Recent runs, newest first (of connector NAME, or of all)."""
    engine = create_rw_engine(ctx.settings.replica.url)
    query = select(SyncRun).order_by(SyncRun.id.desc()).limit(limit)
    if name:
        query = query.where(SyncRun.connector == name)
    with engine.connect() as connection:
        runs = [_run_dict(row) for row in connection.execute(query).mappings()]
    emit(as_json, {"runs": runs}, "\n".join(
        f"{r['id']:>6}  {r['connector']:<16} {r['mode']:<12} {r['status']:<10} {r['started_at']}  "
        f"{len(r['findings'] or {})} findings  {r['error'] or ''}" for r in runs) or "no runs yet")


@sync.command()
@click.argument("run_id", type=int)
@json_option
@pass_context
def rejects(ctx: Context, run_id: int, as_json: bool) -> None:
    """The records run RUN_ID set aside, with where they were and why."""
    engine = create_rw_engine(ctx.settings.replica.url)
    with engine.connect() as connection:
        if connection.execute(select(SyncRun.id).where(SyncRun.id == run_id)).first() is None:
            raise GatewayError(f"there is no run {run_id}; `gateway sync history` lists the runs")
        rows = [dict(row) for row in connection.execute(
            select(SyncReject.table_name, SyncReject.source_position, SyncReject.reason, SyncReject.payload_hash)
            .where(SyncReject.sync_run_id == run_id).order_by(SyncReject.id)).mappings()]
        total = connection.execute(select(func.count()).where(SyncReject.sync_run_id == run_id)).scalar_one()
    emit(as_json, {"run_id": run_id, "total": total, "rejects": rows}, "\n".join(
        f"{r['table_name']:<20} {r['source_position']:<40} {r['reason']}" for r in rows) or f"run {run_id} rejected nothing")


def _run_dict(row: Any) -> dict[str, Any]:
    keys = ("id", "connector", "mode", "status", "started_at", "finished_at", "error", "counts", "findings")
    return {key: row[key] for key in keys}

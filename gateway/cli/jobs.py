"""``gateway jobs`` and ``gateway scheduler``: define sync jobs; run the one scheduler process."""

from __future__ import annotations

import logging

import click
from sqlalchemy.orm import Session

from gateway.portal import jobs as job_service
from gateway.cli import Context, audited, cli_actor, emit, json_option, pass_context
from gateway.db import create_rw_engine, session_factory
from gateway.settings import Settings


def register(group: click.Group) -> None:
    group.add_command(jobs)
    group.add_command(scheduler)


def _session(settings: Settings) -> Session:
    return session_factory(create_rw_engine(settings.portal.url))()


@click.group()
def jobs() -> None:
    """Sync job definitions (the scheduler process picks changes up within seconds)."""


@jobs.command()
@click.argument("connector")
@click.option("--cron", help="A crontab expression in the district's time zone, e.g. '*/15 6-18 * * 1-5'.")
@click.option("--every", help="An interval: 30s, 15m, 2h or 1d.")
@click.option("--full", is_flag=True, help="Full runs (default: incremental).")
@click.option("--no-nightly", is_flag=True, help="Do not add the nightly full run with a connector's first job.")
@json_option
@pass_context
def add(ctx: Context, connector: str, cron: str | None, every: str | None, full: bool, no_nightly: bool, as_json: bool) -> None:
    """Add a job for CONNECTOR."""
    with _session(ctx.settings) as session:
        added = job_service.add_job(session, ctx.settings, connector, cron, every, full, nightly=not no_nightly)
    audited(ctx.settings, "job.added", jobs=[job.id for job in added])
    emit(as_json, {"added": [job.as_dict() for job in added]},
         "\n".join(f"added job {j.id}: {j.connector} {j.trigger} {j.expression!r}{' full' if j.full else ''}" for j in added))


@jobs.command("list")
@json_option
@pass_context
def list_command(ctx: Context, as_json: bool) -> None:
    """Every job definition."""
    with _session(ctx.settings) as session:
        found = job_service.list_jobs(session)
    emit(as_json, {"jobs": [job.as_dict() for job in found]}, "\n".join(
        f"{j.id:>4}  {j.connector:<16} {j.trigger:<8} {j.expression:<16} {'full' if j.full else 'incremental':<12}"
        f"{'paused' if j.paused else _next(j)}" for j in found) or "no jobs; add one with gateway jobs add")


def _next(job: job_service.JobView) -> str:
    return f"next {job.next_run_at:%Y-%m-%d %H:%M} UTC" if job.next_run_at else ""


def _change(ctx: Context, job_id: int, action: str, as_json: bool) -> None:
    with _session(ctx.settings) as session:
        if action == "remove":
            job_service.remove_job(session, job_id)
            audited(ctx.settings, "job.remove", job_id=job_id)
            emit(as_json, {"removed": job_id}, f"removed job {job_id}")
            return
        job = job_service.set_paused(session, job_id, action == "pause")
    audited(ctx.settings, f"job.{action}", job_id=job_id)
    emit(as_json, job.as_dict(), f"job {job_id} {'paused' if job.paused else 'resumed'}")


@jobs.command()
@click.argument("job_id", type=int)
@json_option
@pass_context
def remove(ctx: Context, job_id: int, as_json: bool) -> None:
    """Remove job JOB_ID."""
    _change(ctx, job_id, "remove", as_json)


@jobs.command()
@click.argument("job_id", type=int)
@json_option
@pass_context
def pause(ctx: Context, job_id: int, as_json: bool) -> None:
    """Pause job JOB_ID."""
    _change(ctx, job_id, "pause", as_json)


@jobs.command()
@click.argument("job_id", type=int)
@json_option
@pass_context
def resume(ctx: Context, job_id: int, as_json: bool) -> None:
    """Resume job JOB_ID."""
    _change(ctx, job_id, "resume", as_json)


@jobs.command("run-now")
@click.argument("connector")
@click.option("--full", is_flag=True)
@click.option("--allow-shrink", is_flag=True)
@json_option
@pass_context
def run_now(ctx: Context, connector: str, full: bool, allow_shrink: bool, as_json: bool) -> None:
    """Ask the scheduler to run CONNECTOR now."""
    with _session(ctx.settings) as session:
        request_id = job_service.request_run(session, ctx.settings, connector, full, cli_actor(), allow_shrink)
    audited(ctx.settings, "sync.run_requested", connector=connector, request_id=request_id, full=full,
            allow_shrink=allow_shrink)
    emit(as_json, {"request_id": request_id}, f"requested run of {connector} (request {request_id}); "
         "the scheduler starts it within seconds")


@click.command()
@pass_context
def scheduler(ctx: Context) -> None:
    """Run the scheduler process (exactly one per deployment; never inside the web app)."""
    from sync.scheduler import GatewayScheduler

    settings = ctx.settings  # its jobs refer to the config file: there must be one
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    GatewayScheduler(settings, str(settings.config_path)).run()

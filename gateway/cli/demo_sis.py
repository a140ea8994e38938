"""``gateway demo-sis``: write a demo SIS database to play the district's source."""

from __future__ import annotations

import datetime as dt

import click

from gateway.cli import Context, emit, json_option, pass_context
from gateway.db import create_rw_engine
from gateway.settings import SOURCE_DRIVERS


def register(group: click.Group) -> None:
    group.add_command(demo_sis)


@click.group("demo-sis")
def demo_sis() -> None:
    """The demo SIS (its own vendor-like schema, with the sensitive columns a real SIS has)."""


@demo_sis.command()
@click.option("--out", "url", required=True, help="SQLAlchemy URL of an empty database (sqlite:///PATH, PostgreSQL or mysql+pymysql://).")
@click.option("--students", type=click.IntRange(min=20), default=200, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--today", type=click.DateTime(["%Y-%m-%d"]), help="The district's today (default: the real one).")
@click.option("--attendance-days", type=click.IntRange(min=0), default=20, show_default=True)
@click.option("--assignments", type=click.IntRange(min=0), default=5, show_default=True, help="Per section.")
@json_option
@pass_context
def generate(ctx: Context, url: str, students: int, seed: int, today: dt.datetime | None,
             attendance_days: int, assignments: int, as_json: bool) -> None:
    """Generate a deterministic demo district (every case of POLICY-CASES.md included)."""
    from gateway.demo.sis import generate as write_district

    day = today.date() if today else dt.date.today()
    engine = create_rw_engine(url, drivers=SOURCE_DRIVERS)  # a SIS may be on MySQL/MariaDB
    summary = write_district(engine, students, seed, day, attendance_days, assignments)
    engine.dispose()
    report = {"students": summary.students, "contacts": summary.contacts, "rows": dict(summary.rows),
              "cases": summary.cases, "today": day.isoformat()}
    emit(as_json, report, f"demo SIS written: {summary.students} students, {summary.contacts} contacts, "
         f"{sum(summary.rows.values())} rows (today {day})")

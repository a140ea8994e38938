"""``gateway demo``: the whole product on embedded SQLite, on one command."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from gateway.cli import Context, pass_context
from gateway.instance import CONFIG_NAME, create_missing_keys, write_config
from gateway.settings import Settings, load_settings

DEMO_DISTRICT = "Riverbend Unified School District"
DEMO_TIMEZONE = "America/Chicago"
CONNECTOR = "riverbend-sis"
SIS_FILE = "demo-sis.sqlite3"


def register(group: click.Group) -> None:
    group.add_command(demo)


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("demo-instance"), show_default=True, help="Where the demo instance lives.")
@click.option("--students", type=click.IntRange(min=20), default=200, show_default=True,
              help="Size of the demo district (when its SIS is first generated).")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--no-serve", is_flag=True, help="Prepare the instance and print the logins, then exit.")
@pass_context
def demo(ctx: Context, directory: Path, students: int, seed: int, port: int, no_serve: bool) -> None:
    """Create a demo district, sync it, print demo logins and serve on 127.0.0.1."""
    from gateway.cli.db import upgrade_databases
    from gateway.cli.serve import run_server
    from sync.runner import run_sync

    settings = prepare_instance(directory, port)
    upgrade_databases(settings)
    sis = settings.instance_dir / SIS_FILE
    if not sis.exists():
        _generate_sis(sis, students, seed, settings.policy.today or dt.date.today())
    result = run_sync(settings, CONNECTOR, full=True)
    result.raise_error()
    rows = sum(c.inserted + c.updated + c.unchanged for c in result.counts.values())
    logins = _logins(settings, sis)
    _training(settings)
    click.echo(f"demo district: {DEMO_DISTRICT}, today pinned to {settings.policy.today}")
    click.echo(f"synced {rows} rows from the demo SIS into the replica (run {result.run_id})")
    _print_logins(logins)
    click.echo(f"logins written to {settings.instance_dir / 'demo-logins.json'}")
    if not no_serve:
        click.echo(f"serving on http://127.0.0.1:{port}/  (Ctrl-C stops)")
        run_server(settings, f"127.0.0.1:{port}", workers=2)


def prepare_instance(directory: Path, port: int = 8000) -> Settings:
    """The demo's config (a pinned today, the demo SIS as its connector, the address it serves) and keys."""
    folder = directory.resolve()
    if not (folder / CONFIG_NAME).exists():
        extra = (f'\n[policy]\n# The demo keeps the day it was made, so its dated cases stay as described.\n'
                 f'today = "{dt.datetime.now(ZoneInfo(DEMO_TIMEZONE)).date().isoformat()}"\n\n'
                 f'[[connectors]]\nname = "{CONNECTOR}"\nkind = "sql"\n'
                 f'url = "sqlite:///{folder / SIS_FILE}"\nmapping = "demo"\n')
        write_config(folder, "demo", DEMO_DISTRICT, DEMO_TIMEZONE, extra=extra)
    _serve_at(folder / CONFIG_NAME, port)
    settings = load_settings(folder / CONFIG_NAME)
    create_missing_keys(settings)
    return settings


def _serve_at(config: Path, port: int) -> None:
    """Keep the demo's own config at the address it serves, so mails and letters carry it
    (also the letters the CLI prints later with this config)."""
    text = config.read_text(encoding="utf-8")
    web = f'bind = "127.0.0.1:{port}"\npublic_url = "http://127.0.0.1:{port}"\n'
    if "\n[web]\n" not in text:
        text += f"\n[web]\n# Where the demo serves: `gateway demo --port` changes it.\n{web}"
    text = re.sub(r'^bind = "[^"\n]*"\npublic_url = "[^"\n]*"\n', web, text, flags=re.M)
    config.write_text(text, encoding="utf-8")


def _training(settings: Settings) -> None:
    from sqlalchemy.orm import Session

    from gateway.db import create_rw_engine
    from gateway.demo.accounts import ensure_training
    from gateway.replica.dbtypes import utcnow

    with Session(create_rw_engine(settings.portal.url)) as session:
        sessions = ensure_training(session, settings, utcnow())
        click.echo(f"{len(sessions)} upcoming training session(s), on /help, in letters and in application mails")


def _generate_sis(path: Path, students: int, seed: int, today: dt.date) -> None:
    from gateway.db import create_rw_engine
    from gateway.demo.sis import generate

    engine = create_rw_engine(f"sqlite:///{path}")
    summary = generate(engine, students, seed, today)
    engine.dispose()
    click.echo(f"generated the demo SIS: {summary.students} students, {summary.contacts} guardians")


def _logins(settings: Settings, sis: Path) -> list[dict[str, Any]]:
    """Create the demo accounts once; later runs reuse the logins written the first time."""
    from sqlalchemy.orm import Session

    from gateway.db import create_rw_engine
    from gateway.demo.accounts import create_demo_accounts, has_accounts

    path = settings.instance_dir / "demo-logins.json"
    with Session(create_rw_engine(settings.portal.url)) as session:
        if has_accounts(session) and path.exists():
            return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
        engine = create_rw_engine(f"sqlite:///{sis}")
        made = create_demo_accounts(session, settings, engine, CONNECTOR, settings.policy.today or dt.date.today())
        engine.dispose()
    logins = [login.as_dict() for login in made]
    write_logins(settings, logins)
    return logins


def _print_logins(logins: list[dict[str, Any]]) -> None:
    click.echo("demo logins (username / password):")
    for login in logins:
        what = login["case"] or login["role"]
        click.echo(f"  {login['role']:<8} {login['username']:<36} {login['password']:<26} {what}")


def write_logins(settings: Settings, logins: list[dict[str, Any]]) -> Path:
    path = settings.instance_dir / "demo-logins.json"
    path.write_text(json.dumps(logins, indent=2) + "\n", encoding="utf-8")
    return path

"""``gateway demo``: the whole product on embedded SQLite, on one command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from gateway.cli import Context, pass_context
from gateway.instance import create_missing_keys, write_config
from gateway.settings import Settings, load_settings

DEMO_DISTRICT = "Riverbend Unified School District"
DEMO_TIMEZONE = "America/Chicago"


def register(group: click.Group) -> None:
    group.add_command(demo)


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("demo-instance"), show_default=True, help="Where the demo instance lives.")
@click.option("--students", type=click.IntRange(min=20), default=200, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--no-serve", is_flag=True, help="Prepare the instance and print the logins, then exit.")
@pass_context
def demo(ctx: Context, directory: Path, students: int, seed: int, port: int, no_serve: bool) -> None:
    """Create a demo district, sync it, print demo logins and serve on 127.0.0.1."""
    from gateway.cli.db import upgrade_databases
    from gateway.cli.serve import run_server

    settings = prepare_instance(directory)
    upgrade_databases(settings)
    logins: list[dict[str, Any]] = []
    write_logins(settings, logins)
    click.echo(f"demo instance ready in {settings.instance_dir} ({students} students, seed {seed})")
    click.echo(f"logins: {settings.instance_dir / 'demo-logins.json'}")
    if not no_serve:
        click.echo(f"serving on http://127.0.0.1:{port}/  (Ctrl-C stops)")
        run_server(settings, f"127.0.0.1:{port}", workers=2)


def prepare_instance(directory: Path) -> Settings:
    config = write_config(directory, "demo", DEMO_DISTRICT, DEMO_TIMEZONE)
    settings = load_settings(config)
    create_missing_keys(settings)
    return settings


def write_logins(settings: Settings, logins: list[dict[str, Any]]) -> Path:
    path = settings.instance_dir / "demo-logins.json"
    path.write_text(json.dumps(logins, indent=2) + "\n", encoding="utf-8")
    return path

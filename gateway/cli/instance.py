"""``gateway init``: a new instance with fresh keys and migrated databases."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from gateway.cli import Context, emit, json_option, pass_context
from gateway.errors import ConfigError
from gateway.instance import create_missing_keys, write_config
from gateway.settings import load_settings


def register(group: click.Group) -> None:
    group.add_command(init)


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("instance"),
              show_default=True, help="Folder of the new instance (default with --config: the configured one).")
@click.option("--kind", type=click.Choice(["production", "demo", "test"]), default="production", show_default=True)
@click.option("--district", default="Example Unified School District", show_default=True)
@click.option("--timezone", default="America/Los_Angeles", show_default=True)
@json_option
@pass_context
def init(ctx: Context, directory: Path, kind: str, district: str, timezone: str, as_json: bool) -> None:
    """Create an instance: config file, keys (mode 0600), both databases at the newest schema."""
    from gateway.cli.db import upgrade_databases

    config = _chosen_config(ctx, directory, kind, district, timezone)
    settings = load_settings(config)
    created = create_missing_keys(settings)
    revisions = upgrade_databases(settings)
    report = {"config": str(config), "instance_dir": str(settings.instance_dir), "keys_created": created,
              "revisions": revisions}
    emit(as_json, report, (
        f"instance ready in {settings.instance_dir}\n"
        f"  keys created: {', '.join(created) or 'none (kept the existing ones)'}\n"
        f"  databases at: replica {revisions['replica']}, portal {revisions['portal']}\n"
        f"next: export GATEWAY_CONFIG={config}"
    ))


def _chosen_config(ctx: Context, directory: Path, kind: str, district: str, timezone: str) -> Path:
    """--dir wins over GATEWAY_CONFIG (a new instance is asked for); with --config it is refused."""
    dir_given = click.get_current_context().get_parameter_source("directory") is ParameterSource.COMMANDLINE
    if ctx.config is None or (dir_given and ctx.config_from_env):
        return write_config(directory, kind, district, timezone)
    if dir_given:
        raise ConfigError("file", f"--config {ctx.config} and --dir {directory} both given",
                          "give --dir for a new instance or --config to complete an existing one, not both")
    return ctx.config

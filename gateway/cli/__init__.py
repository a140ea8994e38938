"""The ``gateway`` command: the composition root that wires core, connectors, sync and web.

Core modules never import connectors, sync or web; commands here may, inside their
bodies, so importing the CLI stays cheap and the import contracts stay visible.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from pathlib import Path
from typing import Any

import click

from click.core import ParameterSource

from gateway.errors import ConfigError, GatewayError
from gateway.settings import Settings, load_settings

# Without a config, settings would default to SQLite files in the current folder, and the
# first command would quietly create databases there: every command but init and demo refuses.
NO_CONFIG_HINT = ("pass --config PATH or set GATEWAY_CONFIG; `gateway init --dir DIR` creates an instance, "
                  "`gateway demo` a demo one")


class Context:
    """What every command shares: the config path, and settings read once on demand."""

    def __init__(self, config: Path | None, config_from_env: bool = False) -> None:
        self.config = config
        self.config_from_env = config_from_env
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self.config is None:
            raise ConfigError("file", "none given", NO_CONFIG_HINT)
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings


class GatewayGroup(click.Group):
    """Turns a ``GatewayError`` into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        from sqlalchemy.exc import SQLAlchemyError

        # Click 8 keeps the subcommand's name apart from ctx.args (Click 9 will not).
        command = self._command_path(ctx, [*getattr(ctx, "_protected_args", []), *ctx.args])
        try:
            return super().invoke(ctx)
        except GatewayError as error:
            click.echo(f"gateway: {error}", err=True)
            ctx.exit(error.exit_code)
        except SQLAlchemyError as error:
            click.echo(_database_failure(ctx, command, error), err=True)
            ctx.exit(1)

    def _command_path(self, ctx: click.Context, words: list[str]) -> str:
        """The subcommand names at the front of the arguments, e.g. ``users unlock``."""
        names: list[str] = []
        group: click.Command | None = self
        for word in words:
            found = group.get_command(ctx, word) if isinstance(group, click.Group) else None
            if found is None:
                break
            names.append(word)
            group = found
        return " ".join(names) or "gateway"


def _database_failure(ctx: click.Context, command: str, error: Exception) -> str:
    """One line for the person (what failed, what to do); the traceback to the log file."""
    from gateway.db import describe_db_error

    log = _log_traceback(ctx.obj, error)
    where = f"; the details are in {log}" if log else ""
    return (f"gateway: {command} failed on the database ({describe_db_error(error)}); check that the database is "
            f"reachable and migrated (gateway db status, gateway db upgrade){where}")


def _log_traceback(context: Context | None, error: Exception) -> Path | None:
    """Append the traceback to <instance>/logs/gateway-cli.log (owner-only); None if there is no instance."""
    import traceback
    from datetime import datetime, timezone

    try:
        path = context.settings.instance_dir / "logs" / "gateway-cli.log" if context else None
    except GatewayError:
        return None
    if path is None:
        return None
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
        handle.write(f"{datetime.now(timezone.utc).isoformat()} {cli_actor()}\n")
        handle.write("".join(traceback.format_exception(error)))
    return path


pass_context = click.make_pass_decorator(Context)


def emit(as_json: bool, data: Any, text: str) -> None:
    """Print a status report as one JSON object, or as text for a person."""
    click.echo(json.dumps(data, sort_keys=True, default=str) if as_json else text)


def cli_actor() -> str:
    """Who ran the command: the operating-system user and host (the CLI has no portal account)."""
    return f"cli:{getpass.getuser()}@{socket.gethostname()}"


def audited(settings: Settings, action: str, **detail: Any) -> None:
    """Append the audit entry of a change made from the CLI, after the change is committed.

    Never pass a secret (a code, a password, a key): the trail is read by auditors.
    """
    from gateway.db import create_rw_engine
    from gateway.security import audit
    from gateway.security.keys import load_keyring

    engine = create_rw_engine(settings.portal.url)
    try:
        audit.append(engine, load_keyring(settings, "audit"), settings.audit.checkpoint_file, audit.Event(
            action, actor_role="cli", source_system=detail.pop("source_system", None),
            student_source_id=detail.pop("student_source_id", None), detail={"actor": cli_actor(), **detail}))
    finally:
        engine.dispose()


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


@click.group(cls=GatewayGroup)
@click.option(
    "--config", type=click.Path(dir_okay=False, path_type=Path), envvar="GATEWAY_CONFIG",
    help="The instance's TOML file (default: $GATEWAY_CONFIG).",
)
@click.pass_context
def main(ctx: click.Context, config: Path | None) -> None:
    """Read-only sync gateway over a school district's SIS."""
    # Databases, mail outbox and checkpoint may hold personal data: owner-only files.
    os.umask(0o077)
    ctx.obj = Context(config, ctx.get_parameter_source("config") is ParameterSource.ENVIRONMENT)


def _register() -> None:
    from gateway.cli import applications, audit, db, demo, demo_sis, instance, jobs, keys, serve, sync, users

    for module in (instance, db, keys, serve, demo, demo_sis, sync, jobs, users, applications, audit):
        module.register(main)


_register()

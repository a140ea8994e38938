"""``gateway serve``: the web app under gunicorn (never Flask's development server)."""

from __future__ import annotations

from typing import Any

import click
from gunicorn.app.base import BaseApplication

from gateway.cli import Context, pass_context
from gateway.settings import Settings


def register(group: click.Group) -> None:
    group.add_command(serve)


class GatewayServer(BaseApplication):  # type: ignore[misc]
    """gunicorn, configured from the settings rather than its own command line."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from web import create_app

        return create_app(self.settings)


def run_server(settings: Settings, bind: str, workers: int) -> None:
    options = {"bind": bind, "workers": workers, "accesslog": "-", "errorlog": "-",
               # Paths only: no query strings (a reset token) and no referrers in the log.
               "access_log_format": '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms',
               # The client address is only taken from headers of the configured proxies.
               "forwarded_allow_ips": "*" if settings.web.trusted_proxy_hops else "127.0.0.1",
               "proc_name": "gateway-web"}
    GatewayServer(settings, options).run()


@click.command()
@click.option("--bind", help="Address to listen on (default: [web] bind).")
@click.option("--workers", type=int, help="Worker processes (default: [web] workers).")
@pass_context
def serve(ctx: Context, bind: str | None, workers: int | None) -> None:
    """Serve the portal with gunicorn."""
    settings = ctx.settings
    run_server(settings, bind or settings.web.bind, workers or settings.web.workers)

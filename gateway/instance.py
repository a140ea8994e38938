"""Creating an instance: its folder, a config file, fresh keys (mode 0600), both databases."""

from __future__ import annotations

from pathlib import Path

from gateway.security.keys import KEY_KINDS, KeyRing, secret_path, write_keyring
from gateway.settings import Settings

CONFIG_NAME = "gateway.toml"

CONFIG_TEMPLATE = """\
# Configuration of this gateway instance. Every key, with its default and meaning, is
# documented in gateway.example.toml (shipped in the gateway.config package).
# Secrets are not written here: they are the files in keys/ (or GATEWAY_SECRET_* variables).

[instance]
dir = "."
kind = "{kind}"

[district]
name = "{district}"
timezone = "{timezone}"
"""


def write_config(directory: Path, kind: str, district: str, timezone: str, extra: str = "") -> Path:
    """Write ``DIR/gateway.toml`` unless it exists; return its path."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / CONFIG_NAME
    if not path.exists():
        body = CONFIG_TEMPLATE.format(kind=kind, district=district.replace('"', "'"), timezone=timezone)
        path.write_text(body + extra, encoding="utf-8")
    return path


def create_missing_keys(settings: Settings) -> list[str]:
    """Generate every key ring that has no file yet; never replace an existing key."""
    created = []
    for name in KEY_KINDS:
        if not secret_path(settings, name).exists():
            write_keyring(settings, KeyRing.generate(name))
            created.append(name)
    return created

"""Secrets and key rings, read only from the environment or key files in the instance dir.

A key ring is a small JSON document ``{"active": ID, "keys": {ID: base64}}``: the active
key writes, every key in the ring reads, so a rotation can keep an old key until the
data it protected has been rewritten. No secret has a default, and none is ever shown
by ``repr`` or ``str``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.errors import KeyringError, MissingSecret
from gateway.settings import Settings

KEY_KINDS = ("flask", "field", "blind_index", "row_hash", "audit")
KEY_BYTES = 32


class Secret:
    """A string secret that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class KeyRing:
    name: str
    active: str
    keys: Mapping[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise KeyringError(self.name, f"active key {self.active!r} is not in the ring")

    def __repr__(self) -> str:
        return f"KeyRing(name={self.name!r}, active={self.active!r}, ids={sorted(self.keys)})"

    @property
    def active_key(self) -> bytes:
        return self.keys[self.active]

    @classmethod
    def generate(cls, name: str) -> KeyRing:
        key_id = new_key_id()
        return cls(name, key_id, {key_id: secrets.token_bytes(KEY_BYTES)})

    def rotated(self) -> KeyRing:
        """A ring with a fresh active key; the old keys stay readable."""
        key_id = new_key_id()
        return KeyRing(self.name, key_id, {**self.keys, key_id: secrets.token_bytes(KEY_BYTES)})

    def pruned(self) -> KeyRing:
        """A ring holding only the active key (after everything was rewritten under it)."""
        return KeyRing(self.name, self.active, {self.active: self.active_key})

    def to_json(self) -> str:
        encoded = {kid: base64.urlsafe_b64encode(key).decode() for kid, key in self.keys.items()}
        return json.dumps({"active": self.active, "keys": encoded}, indent=2) + "\n"

    @classmethod
    def from_json(cls, name: str, text: str) -> KeyRing:
        try:
            data = json.loads(text)
            keys = {str(k): base64.urlsafe_b64decode(v) for k, v in data["keys"].items()}
            active = str(data["active"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeyringError(name, 'is not {"active": ID, "keys": {ID: base64}}; regenerate it') from None
        if any(len(key) != KEY_BYTES for key in keys.values()):
            raise KeyringError(name, f"every key must be {KEY_BYTES} bytes")
        return cls(name, active, keys)


def new_key_id() -> str:
    return secrets.token_hex(4)


def env_var(name: str) -> str:
    return "GATEWAY_SECRET_" + name.upper().replace("-", "_")


def secret_path(settings: Settings, name: str) -> Path:
    return settings.keys_dir / name


def load_secret(settings: Settings, name: str, env: Mapping[str, str] | None = None) -> Secret:
    """A secret from ``GATEWAY_SECRET_<NAME>``, else from ``<instance>/keys/<name>``."""
    env = os.environ if env is None else env
    variable = env_var(name)
    if env.get(variable):
        return Secret(env[variable])
    path = secret_path(settings, name)
    try:
        with path.open(encoding="utf-8") as handle:
            _check_owner_only(name, path, os.fstat(handle.fileno()).st_mode)
            return Secret(handle.read().strip())
    except FileNotFoundError:
        raise MissingSecret(name, variable, str(path)) from None
    except OSError as exc:
        raise KeyringError(name, f"cannot read {path}: {exc.strerror}") from None


def _check_owner_only(name: str, path: Path, mode: int) -> None:
    """Refuse a key file others may read: whoever can read it holds the key."""
    if mode & 0o077:
        raise KeyringError(name, f"{path} is readable by group or others (mode {mode & 0o777:o}); "
                                 f"run: chmod 600 {path}")


def load_keyring(settings: Settings, name: str, env: Mapping[str, str] | None = None) -> KeyRing:
    return KeyRing.from_json(name, load_secret(settings, name, env).reveal())


def write_secret_file(path: Path, text: str) -> None:
    """Write a secret readable by its owner only, replacing the old file atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def write_keyring(settings: Settings, ring: KeyRing) -> Path:
    path = secret_path(settings, ring.name)
    write_secret_file(path, ring.to_json())
    return path


@dataclass(frozen=True)
class Keys:
    """The five instance key rings, loaded together at start-up."""

    flask: KeyRing
    field: KeyRing
    blind_index: KeyRing
    row_hash: KeyRing
    audit: KeyRing

    def ring(self, name: str) -> KeyRing:
        return getattr(self, name)


def load_keys(settings: Settings, env: Mapping[str, str] | None = None) -> Keys:
    return Keys(**{name: load_keyring(settings, name, env) for name in KEY_KINDS})

"""The one error hierarchy of the gateway.

Every error keeps the inputs that caused it and its message says what to change, in
one line, so the CLI can print ``str(error)`` and exit with ``error.exit_code``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Disposition = Literal["fatal", "retriable", "skippable"]


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    exit_code = 1


class ConfigError(GatewayError):
    """A configuration key is missing, unknown or has a value that cannot be used."""

    exit_code = 2

    def __init__(self, key: str, problem: str, hint: str = "") -> None:
        self.key = key
        self.problem = problem
        self.hint = hint
        message = f"config {key}: {problem}"
        super().__init__(f"{message}; {hint}" if hint else message)


class MissingSecret(ConfigError):
    """A secret has neither an environment variable nor a key file."""

    def __init__(self, name: str, env_var: str, path: str) -> None:
        self.name = name
        self.env_var = env_var
        self.path = path
        super().__init__(
            f"secret {name}",
            "is not set",
            f"set {env_var} or create {path} (gateway init creates the instance keys)",
        )


class UnknownPlugin(GatewayError):
    """A plug-in (connector kind, mapping, key kind, ...) was asked for by an unknown name."""

    exit_code = 2

    def __init__(self, what: str, name: str, valid: Iterable[str]) -> None:
        self.what = what
        self.name = name
        self.valid = sorted(valid)
        super().__init__(
            f"unknown {what} {name!r}; valid names: {', '.join(self.valid) or '(none)'}"
        )


class ReadOnlyViolation(GatewayError):
    """A statement other than a read was about to be sent on a read-only connection."""

    def __init__(self, statement: str, reason: str) -> None:
        self.statement = statement
        self.reason = reason
        short = " ".join(statement.split())[:120]
        super().__init__(f"refused on a read-only connection ({reason}): {short}")


class WritableLogin(GatewayError):
    """A SIS login can write what a mapping reads, and the connector does not allow it."""

    exit_code = 2

    def __init__(self, connector: str, login: str, reasons: list[str], fix: list[str]) -> None:
        self.connector, self.login, self.reasons, self.fix = connector, login, reasons, fix
        super().__init__(
            f"connector {connector}: the SIS login {login} can write ({'; '.join(reasons)}); nothing was read. "
            "Give the gateway a SELECT-only login, e.g. (as an administrator of the SIS database):\n  "
            + "\n  ".join(fix)
            + f"\nor, knowing the risk, set allow_writable_login = true in the [[connectors]] entry {connector}")


class KeyringError(GatewayError):
    """A key file or key ring cannot be read or used."""

    exit_code = 2

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"key ring {name}: {problem}")


class DecryptionError(GatewayError):
    """A stored value cannot be decrypted: wrong key, unknown key id, or tampering."""

    def __init__(self, context: str, key_id: str | None) -> None:
        self.context = context
        self.key_id = key_id
        super().__init__(
            f"cannot decrypt {context} (key id {key_id!r}); restore the key file that "
            "holds that key id, or re-sync the replica from the source"
        )


class LockHeld(GatewayError):
    """Another process holds the lock (a sync run or a key rotation is under way)."""

    exit_code = 75  # EX_TEMPFAIL: try again later

    def __init__(self, name: str, holder: str) -> None:
        self.name = name
        self.holder = holder
        super().__init__(f"{name} is already running (held by {holder}); try again when it ends")


class SyncError(GatewayError):
    """A sync could not go on; ``disposition`` says what its caller does about it.

    Grouped as the Singer SDK groups its errors, by the caller's next step rather than by
    what broke: ``fatal`` (stop the run; a person must change the configuration or the
    source), ``retriable`` (the same run may well succeed if tried again shortly: a broken
    connection, a listing that changed mid-read) and ``skippable`` (one record cannot be
    used: set it aside and go on). A subclass whose disposition depends on what happened
    (a dropped connection against a syntax error) sets it per instance.
    """

    disposition: Disposition = "fatal"

    @property
    def retriable(self) -> bool:
        return self.disposition == "retriable"


class FatalSyncError(SyncError):
    """Retrying will not help: the run fails and says what to change."""

    disposition: Disposition = "fatal"


class RetriableSyncError(SyncError):
    """A later attempt may succeed: the engine retries with backoff before failing the run."""

    disposition: Disposition = "retriable"


class SkippableRecordError(SyncError):
    """One record cannot be used: it is set aside (a reject) and the run goes on."""

    disposition: Disposition = "skippable"


class SyncWriteError(FatalSyncError):
    """A record could not be written to the replica; the run applied nothing.

    ``cause`` is already safe to store and show (see ``gateway.db.describe_db_error``):
    a run's error never holds a row's values.
    """

    def __init__(self, table: str, source_id: str | None, cause: str) -> None:
        self.table, self.source_id, self.cause = table, source_id, cause
        where = f"{table} source id {source_id}" if source_id is not None else table
        super().__init__(f"could not write {where}: {cause}; the run applied nothing: "
                         "correct that record in the source (or the replica's schema) and run again")


class SyncRefused(FatalSyncError):
    """A run stopped on purpose and applied nothing (shrink guard, reject threshold)."""

    exit_code = 3

    def __init__(self, connector: str, reason: str, hint: str) -> None:
        self.connector, self.reason, self.hint = connector, reason, hint
        super().__init__(f"sync {connector} applied nothing: {reason}; {hint}")

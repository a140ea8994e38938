"""One way to start a sync: the CLI, the demo and the scheduler all come in through ``run_sync``.

It builds the named connector, runs the engine once and always closes the connector. A
source that cannot even be opened still leaves a failed run in the history, so IT sees
it where they see every other run. Whatever happens is returned as a ``RunResult``,
never as text to be parsed back: the scheduler decides from ``status`` whether to alert,
and the CLI raises ``error`` to exit with its code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.errors import GatewayError, LockHeld
from gateway.settings import Settings

from connectors import registry
from sync import engine
from sync.apply import TableCounts

RunStatus = Literal["succeeded", "failed", "busy"]


@dataclass(frozen=True)
class RunResult:
    """What one attempt to run a connector came to.

    ``busy``: another run of the connector holds its lease, so this one did not start and
    nothing was recorded. ``failed``: the run stopped and ``error`` says why; the run is
    in the history as failed (``run_id`` is known where the source could not be opened).
    """

    connector: str
    mode: str
    status: RunStatus
    run_id: int | None = None
    counts: Mapping[str, TableCounts] = field(default_factory=dict)
    error: GatewayError | None = None
    warnings: tuple[str, ...] = ()  # what the connector asks IT to know even when the run succeeded
    findings: Mapping[str, Any] = field(default_factory=dict)  # warnings about the source (sync.findings)

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def summary(self) -> str:
        """One line for a log or a run request's result."""
        if self.status == "succeeded":
            return f"run {self.run_id} succeeded"
        if self.status == "busy":
            return f"waiting: {self.error}"
        return f"failed: {self.error}"

    def raise_error(self) -> None:
        """Raise what stopped the run (the CLI turns it into one line and an exit code)."""
        if self.error is not None:
            raise self.error

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "connector": self.connector, "mode": self.mode, "status": self.status,
                "error": str(self.error) if self.error else None,
                "counts": {table: c.as_dict() for table, c in self.counts.items()}, "warnings": list(self.warnings),
                "findings": dict(self.findings)}


def run_sync(settings: Settings, connector_name: str, *, full: bool, allow_shrink: bool = False,
             progress: engine.Progress | None = None) -> RunResult:
    """Run connector ``connector_name`` once; errors the gateway raises on purpose come back in the result."""
    mode = "full" if full else "incremental"
    try:
        entry = settings.connector(connector_name)
    except GatewayError as error:  # not configured (any more): nothing to record a run against
        return RunResult(connector_name, mode, "failed", error=error)
    try:
        connector = registry.build(entry, settings)
    except GatewayError as error:  # the source cannot even be opened: still a failed run in the history
        run_id = engine.record_failed_attempt(settings, entry.name, entry.source_system, mode, str(error))
        return RunResult(connector_name, mode, "failed", run_id, error=error)
    try:
        done = engine.run_sync(settings, connector, mode, allow_shrink, progress)
    except LockHeld as held:
        return RunResult(connector_name, mode, "busy", error=held)
    except GatewayError as error:
        return RunResult(connector_name, mode, "failed", error=error)
    finally:
        connector.close()
    return RunResult(connector_name, mode, "succeeded", done.run_id, dict(done.counts), warnings=tuple(done.warnings),
                     findings=dict(done.findings))

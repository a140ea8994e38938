"""Nothing planted in any source reaches the replica, searched after decrypting every column."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gateway.demo.sis import SENSITIVE_MARKERS
from gateway.settings import ConnectorSettings, Settings

from connectors import registry
from sync.engine import run_sync

from .conftest import decrypted_replica

SHARED = Path(__file__).resolve().parents[3] / "shared" / "interop" / "oneroster"
SHARED_PASSWORDS = ("Password1-", "Batman.Ru1ez")


@pytest.mark.interop
def test_demo_sis_rosariosis_and_oneroster_samples_leave_no_secret_in_the_replica(
    instance: Settings, source: Path, request: pytest.FixtureRequest
) -> None:
    if not SHARED.is_dir():
        pytest.skip(f"the shared interop samples are not at {SHARED}")
    from tests.connectors.test_rosariosis import PLANTED_MEDICAL, PLANTED_SSNS

    rosario = request.getfixturevalue("rosario")
    entries = (
        ConnectorSettings("demo", "sql", "demo", {"url": f"sqlite:///{source}", "mapping": "demo"}),
        ConnectorSettings("rosario", "sql", "rosario", {"url": rosario, "mapping": "rosariosis"},
                          allow_writable_login=True),  # the test server's superuser
        ConnectorSettings("bulk", "oneroster-csv", "bulk", {"path": str(SHARED / "v1p1-bulk-minimal"), "guardian_portal_access": True}),
        ConnectorSettings("delta", "oneroster-csv", "delta", {"path": str(SHARED / "v1p2-delta-sample"), "guardian_portal_access": True}),
    )
    settings = dataclasses.replace(instance, connectors=entries)
    for entry in entries:
        result = run_sync(settings, registry.build(entry, settings), "full")
        assert result.status == "succeeded", entry.name
    replica = decrypted_replica(settings)
    assert "Bruce" in replica and "Default School" in replica and "@example.net" in replica  # all four arrived
    for planted in (*SENSITIVE_MARKERS, *PLANTED_SSNS, PLANTED_MEDICAL, *SHARED_PASSWORDS, "$6$", "$2y$"):
        assert planted not in replica, planted

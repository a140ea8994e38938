"""Nothing planted in any source reaches the replica, searched after decrypting every column."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.crypto import FieldCipher
from gateway.db import create_rw_engine
from gateway.demo_sis import SENSITIVE_MARKERS
from gateway.keys import load_keyring
from gateway.schema import canonical_tables, encryption_context
from gateway.settings import ConnectorSettings, Settings

from connectors import registry
from sync.engine import run_sync

SHARED = Path(__file__).resolve().parents[3] / "shared" / "interop" / "oneroster"
SHARED_PASSWORDS = ("Password1-", "Batman.Ru1ez")


def decrypted_replica(settings: Settings) -> str:
    cipher = FieldCipher(load_keyring(settings, "field"))
    engine = create_rw_engine(settings.replica.url)
    values = []
    with engine.connect() as connection:
        for table in canonical_tables().values():
            for row in connection.execute(select(table)).mappings():
                for name, value in row.items():
                    if value is not None and table.columns[name].info.get("storage") == "encrypted":
                        value = cipher.decrypt(value, encryption_context(table.name, name))
                    values.append(str(value))
    engine.dispose()
    return "\n".join(values)


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
        ConnectorSettings("rosario", "sql", "rosario", {"url": rosario, "mapping": "rosariosis"}),
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

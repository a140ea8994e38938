"""The contract every registered connector keeps: declared streams, typed records, no raw rows."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from gateway.errors import UnknownPlugin
from gateway.replica.records import RECORD_TYPES, Record, Reject, Tombstone
from gateway.security.keys import write_secret_file
from gateway.settings import ConnectorSettings, Settings
from gateway.demo.sis import DemoSummary

from connectors import registry
from connectors.base import Connector

from .edfi_provider import EdFiProvider
from .provider import Provider

# The sql kind once more, reading the same demo district from a live MariaDB server.
MARIADB = "sql-on-mariadb"
KINDS = [*registry.kinds(), pytest.param(MARIADB, marks=pytest.mark.mysql)]


def connector_for(kind: str, request: pytest.FixtureRequest, settings: Settings, provider: Provider) -> Connector:
    """One working configuration per registered kind."""
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "oneroster" / "district-1p1"
    demo_sis: tuple[str, DemoSummary] = request.getfixturevalue("mysql_demo_sis" if kind == MARIADB else "demo_sis")
    if kind == MARIADB:
        entry = ConnectorSettings(name=f"{kind}-test", kind="sql", source_system="contract",
                                  options={"url": demo_sis[0], "mapping": "demo"},
                                  allow_writable_login=True)  # root: the login check has tests of its own
        return registry.build(entry, settings)  # no key file: root over the socket has no password
    if kind == "edfi":
        edfi = EdFiProvider()
        request.addfinalizer(edfi.stop)
        write_secret_file(settings.keys_dir / f"source-{kind}-test", edfi.state.secret)
        entry = ConnectorSettings(name=f"{kind}-test", kind=kind, source_system="contract",
                                  options={"base_url": edfi.base_url, "client_id": edfi.state.client_id})
        return registry.build(entry, settings)
    write_secret_file(settings.keys_dir / f"source-{kind}-test", provider.state.secret)
    options = {"sql": {"url": demo_sis[0], "mapping": "demo"},
               "oneroster-csv": {"path": str(fixture), "guardian_portal_access": True},
               "oneroster-rest": {"base_url": provider.base_url, "version": "1.1", "auth": "oauth2",
                                  "client_id": provider.state.client_id, "token_url": provider.token_url,
                                  "guardian_portal_access": True}}
    entry = ConnectorSettings(name=f"{kind}-test", kind=kind, source_system="contract", options=options[kind])
    return registry.build(entry, settings)


@pytest.mark.parametrize("kind", KINDS)
def test_every_stream_yields_only_records_of_its_table_tombstones_or_rejects(
    kind: str, request: pytest.FixtureRequest, instance: Settings, provider: Provider
) -> None:
    connector = connector_for(kind, request, instance, provider)
    assert isinstance(connector, Connector)
    assert connector.streams, "a connector declares its streams"
    for spec in connector.streams:
        assert spec.table in RECORD_TYPES
        for item in connector.iter_records(spec.name, None):
            assert isinstance(item, Record | Tombstone | Reject)
            if isinstance(item, Record):
                assert type(item) is RECORD_TYPES[spec.table]
                assert dataclasses.is_dataclass(item) and item.source_id
    connector.close()


@pytest.mark.parametrize("kind", KINDS)
def test_unmapped_fields_are_reported_by_name_with_counts(
    kind: str, request: pytest.FixtureRequest, instance: Settings, provider: Provider
) -> None:
    connector = connector_for(kind, request, instance, provider)
    for spec in connector.streams:
        list(connector.iter_records(spec.name, None))
    unmapped = connector.unmapped_fields()
    for counter in unmapped.values():
        assert isinstance(counter, Counter)
        assert all(isinstance(name, str) and count > 0 for name, count in counter.items())
    names = {name for counter in unmapped.values() for name in counter}
    # Every kind's fixture carries a password or SSN column: it must show up, by name only.
    assert any(name.endswith(("password", "ssn", "password_hash")) for name in names), names
    connector.close()


def test_an_unknown_kind_names_the_valid_ones(instance: Settings) -> None:
    entry = ConnectorSettings(name="x", kind="csv-ish", source_system="x", options={})
    with pytest.raises(UnknownPlugin) as caught:
        registry.build(entry, instance)
    assert "sql" in str(caught.value) and "csv-ish" in str(caught.value)

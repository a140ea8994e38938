"""Connector kinds by name: the one place a ``kind`` in the configuration is resolved."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gateway.errors import UnknownPlugin
from gateway.settings import ConnectorSettings, Settings

from connectors.base import Connector

# A factory takes the connector's entry and the instance settings (for its secret).
Factory = Callable[[ConnectorSettings, Settings], Connector]


def _kinds() -> Mapping[str, Factory]:
    from connectors import edfi, oneroster_csv, oneroster_rest, sql

    return {"edfi": edfi.from_settings, "oneroster-csv": oneroster_csv.from_settings, "oneroster-rest": oneroster_rest.from_settings,
            "sql": sql.from_settings}


def kinds() -> list[str]:
    return sorted(_kinds())


def build(entry: ConnectorSettings, settings: Settings) -> Connector:
    """The connector an ``[[connectors]]`` entry describes; unknown kinds list the valid ones."""
    factories = _kinds()
    if entry.kind not in factories:
        raise UnknownPlugin("connector kind", entry.kind, factories)
    return factories[entry.kind](entry, settings)

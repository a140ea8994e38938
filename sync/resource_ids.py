"""The map from an API's server-assigned item ids to natural keys, kept with the published run.

A connector that needs it (``edfi``) exposes ``resource_ids``: a dict of (resource, server
id) -> source id. The engine fills it from the replica before reading and writes what the
run learned in the run's own transaction, so it moves exactly as the rows do.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select

from gateway.replica.tables import SourceResourceId

Known = dict[tuple[str, str], str]


def restore(connection: Connection, connector: Any) -> Known | None:
    """Fill the connector's map from the replica; returns what was loaded (None: it keeps none)."""
    known = getattr(connector, "resource_ids", None)
    if not isinstance(known, dict):
        return None
    t = SourceResourceId
    rows = connection.execute(select(t.resource, t.resource_id, t.source_id).where(t.connector == connector.name))
    loaded = {(resource, resource_id): source_id for resource, resource_id, source_id in rows}
    known.update({key: value for key, value in loaded.items() if key not in known})
    return dict(loaded)


def keep(connection: Connection, connector: Any, loaded: Known | None) -> None:
    """Write the entries the run added or changed."""
    if loaded is None:
        return
    t = SourceResourceId
    changed = {key: value for key, value in connector.resource_ids.items() if loaded.get(key) != value}
    for (resource, resource_id) in [key for key in changed if key in loaded]:
        connection.execute(delete(t).where(t.connector == connector.name, t.resource == resource,
                                           t.resource_id == resource_id))
    if changed:
        connection.execute(insert(t), [{"connector": connector.name, "resource": resource, "resource_id": resource_id[:64],
                                        "source_id": source_id} for (resource, resource_id), source_id in changed.items()])

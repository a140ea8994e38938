"""``gateway keys``: rotation of each key ring, as the README's key table describes."""

from __future__ import annotations

import click

from gateway.security import audit
from gateway.cli import Context, audited, cli_actor, emit, json_option, pass_context
from gateway.security.crypto import FieldCipher
from gateway.db import create_rw_engine
from gateway.errors import GatewayError
from gateway.security.keys import KEY_KINDS, KeyRing, load_keyring, write_keyring
from gateway.settings import Settings


def register(group: click.Group) -> None:
    group.add_command(keys)


@click.group()
def keys() -> None:
    """Show, rotate and prune the instance keys."""


@keys.command("status")
@json_option
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """Each key ring's active key id and how many keys it holds (never the keys)."""
    report = {}
    for name in KEY_KINDS:
        ring = load_keyring(ctx.settings, name)
        report[name] = {"active": ring.active, "ids": sorted(ring.keys)}
    emit(as_json, report, "\n".join(f"{n}: active {r['active']}, {len(r['ids'])} key(s)" for n, r in report.items()))


@keys.command()
@click.argument("kind", type=click.Choice(KEY_KINDS))
@json_option
@pass_context
def rotate(ctx: Context, kind: str, as_json: bool) -> None:
    """Make a new active key for KIND and rewrite what depends on it.

    \b
    field        re-encrypt every encrypted value (replica and portal)
    blind_index  recompute every blind index
    row_hash     recompute every row hash
    flask        old key kept as a fallback until sessions expire
    audit        a new chain segment, opened by an entry the old key signs
    """
    settings = ctx.settings
    new_ring = _rotate(settings, kind)
    audited(settings, "key.rotated", kind=kind, active=new_ring.active)
    report = {"kind": kind, "active": new_ring.active, "keys": len(new_ring.keys)}
    emit(as_json, report, f"{kind}: new active key {new_ring.active}; {_what_becomes_of_old_keys(kind)}")


def _what_becomes_of_old_keys(kind: str) -> str:
    if kind == "audit":  # never pruned: the old chain segments need them to verify
        return "old audit keys are kept for good, to verify the older chain segments"
    return f"old key(s) kept for reading — `gateway keys prune {kind}` removes them"


def _rotate(settings: Settings, kind: str) -> KeyRing:
    ring = load_keyring(settings, kind)
    if kind == "audit":
        new_ring = audit.rotate_key(create_rw_engine(settings.portal.url), ring, settings.audit.checkpoint_file,
                                    actor=cli_actor())
        write_keyring(settings, new_ring)
        return new_ring
    new_ring = ring.rotated()
    # Written first: a crash while rewriting then leaves every value readable.
    write_keyring(settings, new_ring)
    if kind in ("field", "blind_index", "row_hash"):
        _rewrite_replica(settings, kind)
    return new_ring


def _rewrite_replica(settings: Settings, kind: str) -> None:
    from sync import rekey

    replica, portal = create_rw_engine(settings.replica.url), create_rw_engine(settings.portal.url)
    cipher = FieldCipher(load_keyring(settings, "field"))
    names = [connector.name for connector in settings.connectors]
    with rekey.all_sync_leases(portal, names, settings.sync.lock_ttl_seconds):
        if kind == "field":
            rekey.reencrypt(rekey.replica_and_portal(replica, portal), cipher)
        elif kind == "blind_index":
            ring = load_keyring(settings, "blind_index")
            rekey.recompute_blind_indexes(rekey.replica_and_portal(replica, portal), cipher, ring)
        else:
            rekey.recompute_row_hashes(replica, cipher, load_keyring(settings, "row_hash"))


@keys.command()
@click.argument("kind", type=click.Choice([k for k in KEY_KINDS if k != "audit"]))
@json_option
@pass_context
def prune(ctx: Context, kind: str, as_json: bool) -> None:
    """Drop KIND's old keys once nothing needs them (audit keys are never pruned)."""
    settings = ctx.settings
    ring = load_keyring(settings, kind)
    if kind == "field":
        _check_nothing_left_under_old_keys(settings, ring)
    pruned = ring.pruned()
    write_keyring(settings, pruned)
    audited(settings, "key.pruned", kind=kind, removed=len(ring.keys) - 1, active=pruned.active)
    emit(as_json, {"kind": kind, "removed": len(ring.keys) - 1, "active": pruned.active},
         f"{kind}: removed {len(ring.keys) - 1} old key(s); active {pruned.active}")


def _check_nothing_left_under_old_keys(settings: Settings, ring: KeyRing) -> None:
    from sync import rekey

    replica, portal = create_rw_engine(settings.replica.url), create_rw_engine(settings.portal.url)
    stale = rekey.values_under_other_keys(rekey.replica_and_portal(replica, portal), FieldCipher(ring))
    if stale:
        raise GatewayError(f"{stale} value(s) are still under an old field key; run `gateway keys rotate field` first")

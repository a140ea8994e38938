"""``gateway applications``: review online applications against the SIS."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy.orm import Session

from gateway.portal import applications as service
from gateway.cli import Context, audited, emit, json_option, pass_context
from gateway.security.crypto import FieldCipher
from gateway.db import create_ro_engine, create_rw_engine
from gateway.security.keys import load_keyring
from gateway.portal.models import Application


def register(group: click.Group) -> None:
    group.add_command(applications)


@click.group()
def applications() -> None:
    """Online applications: list, approve (the code goes to the SIS's email), reject."""


def _load(session: Session, application_id: int) -> Application:
    row = session.get(Application, application_id)
    if row is None:
        raise service.ApplicationError(f"there is no application {application_id}")
    return row


@applications.command("list")
@json_option
@pass_context
def list_command(ctx: Context, as_json: bool) -> None:
    """Pending applications, each with the SIS guardians it could be approved for."""
    settings = ctx.settings
    cipher, ring = FieldCipher(load_keyring(settings, "field")), load_keyring(settings, "blind_index")
    with Session(create_rw_engine(settings.portal.url)) as portal, Session(create_ro_engine(settings.replica.url)) as replica:
        report: list[dict[str, Any]] = [{"id": a.id, "applicant": f"{a.given_name} {a.family_name}", "relationship": a.relationship,
                   "student_number": a.student_number, "denied": service.denial_of(portal, replica, ring, a) is not None,
                   "candidates": [c.__dict__ for c in service.with_denials(portal, replica, service.candidates(replica, cipher, a))]} for a in service.pending(portal)]
    emit(as_json, {"applications": report}, "\n".join(
        f"{a['id']:>4}  {a['applicant']:<28} {a['relationship']:<12} student {a['student_number']}: "
        + ("DENIED AS A SECURITY RISK, cannot be approved; " if a["denied"] else "")
        + (", ".join(f"{c['name']} (guardian {c['guardian_source_id']}{'' if c['portal_access'] else ', no portal access'}"
                     f"{', DENIED AS A SECURITY RISK' if c['denied'] else ''})"
                     for c in a["candidates"]) or "no match in the SIS") for a in report) or "no pending applications")


@applications.command()
@click.argument("application_id", type=int)
@click.option("--guardian", required=True, help="The SIS guardian id the application is approved for.")
@json_option
@pass_context
def approve(ctx: Context, application_id: int, guardian: str, as_json: bool) -> None:
    """Approve: a code is mailed to the email the SIS holds for that guardian."""
    settings = ctx.settings
    cipher = FieldCipher(load_keyring(settings, "field"))
    with Session(create_rw_engine(settings.portal.url)) as portal, Session(create_ro_engine(settings.replica.url)) as replica:
        approval = service.approve(portal, replica, settings, cipher, load_keyring(settings, "blind_index"),
                                   _load(portal, application_id), guardian)
        portal.commit()
    audited(settings, "application.approved", application_id=application_id, guardian_source_id=guardian,
            emailed=approval.emailed_to_sis_address)
    emitted: dict[str, Any] = {"application_id": application_id, "emailed": approval.emailed_to_sis_address}
    if not approval.emailed_to_sis_address:
        emitted["code_for_letter"] = approval.code
    emit(as_json, emitted, "approved; the code was sent to the email the SIS holds" if approval.emailed_to_sis_address
         else f"approved; the SIS has no email for this guardian: print a letter with code {approval.code}")


@applications.command()
@click.argument("application_id", type=int)
@click.option("--reason", required=True)
@pass_context
def reject(ctx: Context, application_id: int, reason: str) -> None:
    """Reject with a reason."""
    with Session(create_rw_engine(ctx.settings.portal.url)) as portal:
        service.reject(portal, _load(portal, application_id), reason)
        portal.commit()
    audited(ctx.settings, "application.rejected", application_id=application_id, reason=reason)
    click.echo(f"application {application_id} rejected")

"""Services for the people who run the portal: users, codes, denials, guidelines, paper requests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
from sqlalchemy.orm import Session

from gateway.portal import accounts, activation, guidelines, people
from gateway.cli import Context, audited, emit, json_option, pass_context
from gateway.security.crypto import FieldCipher
from gateway.db import create_ro_engine, create_rw_engine
from gateway.errors import ConfigError
from gateway.security.keys import load_keyring
from gateway.portal.models import ROLES
from gateway.settings import Settings

source_option = click.option("--source-system", help="The SIS's source system (default: the one whose students "
                                                    "include this id; for a guardian alone, the only connector's).")


def register(group: click.Group) -> None:
    for command in (users, codes, guidelines_group, terminations, letters):
        group.add_command(command)


def _portal(settings: Settings) -> Session:
    return Session(create_rw_engine(settings.portal.url))


def _replica(settings: Settings) -> Session:
    return Session(create_ro_engine(settings.replica.url))


def _source(settings: Settings, given: str | None) -> str:
    if given:
        return given
    systems = {entry.source_system for entry in settings.connectors}
    if len(systems) != 1:
        raise ConfigError("--source-system", "is needed", f"configured source systems: {', '.join(sorted(systems)) or 'none'}")
    return systems.pop()


@click.group()
def users() -> None:
    """Accounts: create (the first admin too), unlock, deny and restore."""


@users.command()
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--name", "display_name", required=True, help="The person's name, as shown in the portal.")
@click.option("--email")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the password from this file (otherwise it is asked for; never an argument).")
@json_option
@pass_context
def create(ctx: Context, username: str, role: str, display_name: str, email: str | None, password_file: Path | None,
           as_json: bool) -> None:
    """Create an account (e.g. the first admin: --role admin)."""
    settings = ctx.settings  # before asking for a password that could not be used
    password = (password_file.read_text(encoding="utf-8").strip() if password_file
                else click.prompt("Password", hide_input=True, confirmation_prompt=True))
    with _portal(settings) as session:
        user = accounts.create_user(session, settings, username=username, password=password, role=role,
                                    display_name=display_name, email=email)
        session.commit()
        audited(ctx.settings, "account.created", username=user.username, role=user.role)
        emit(as_json, {"id": user.id, "username": user.username, "role": user.role}, f"created {role} {user.username}")


@users.command()
@click.argument("username")
@pass_context
def unlock(ctx: Context, username: str) -> None:
    """Lift the temporary lockout after too many failed sign-ins."""
    with _portal(ctx.settings) as session:
        accounts.unlock(session, username)
        session.commit()
    audited(ctx.settings, "account.unlocked", username=username)
    click.echo(f"{username} can sign in again")


@users.command()
@click.option("--guardian", help="The SIS guardian id.")
@source_option
@click.option("--email")
@click.option("--username")
@click.option("--reason", required=True)
@json_option
@pass_context
def deny(ctx: Context, guardian: str | None, source_system: str | None, email: str | None, username: str | None,
         reason: str, as_json: bool) -> None:
    """Deny a person identified as a security risk (their sessions end at once)."""
    settings = ctx.settings
    with _portal(settings) as session:
        denial = people.deny(session, FieldCipher(load_keyring(settings, "field")), load_keyring(settings, "blind_index"),
                             reason, source_system=_source(settings, source_system) if guardian else None,
                             guardian_source_id=guardian, email=email, username=username)
        session.commit()
        audited(settings, "denial.added", denial_id=denial.id, by=_denied_by(guardian, email, username),
                source_system=denial.source_system, guardian_source_id=guardian, username=username, reason=reason)
        emit(as_json, {"denial_id": denial.id}, f"denied (denial {denial.id}); restore with gateway users restore {denial.id}")


@users.command()
@click.argument("denial_id", type=int)
@pass_context
def restore(ctx: Context, denial_id: int) -> None:
    """Lift a denial."""
    with _portal(ctx.settings) as session:
        people.restore(session, denial_id)
        session.commit()
    audited(ctx.settings, "denial.lifted", denial_id=denial_id)
    click.echo(f"denial {denial_id} lifted")


def _denied_by(guardian: str | None, email: str | None, username: str | None) -> list[str]:
    """What the denial names, never the email itself (the trail is not a contact list)."""
    return [name for name, given in (("guardian", guardian), ("email", email), ("username", username)) if given]


@click.group()
def codes() -> None:
    """Activation codes (the letters themselves come with the staff console)."""


@codes.command("issue")
@click.option("--student", required=True, help="The SIS student id.")
@click.option("--guardian", help="The SIS guardian id (omit for a Student Portal code).")
@source_option
@json_option
@pass_context
def issue_code(ctx: Context, student: str, guardian: str | None, source_system: str | None, as_json: bool) -> None:
    """Issue a single-use, expiring activation code for a guardian-student link the SIS has
    (in force, with portal access), or for a student; the link's earlier codes are revoked."""
    settings = ctx.settings
    with _portal(settings) as session, _replica(settings) as replica:
        system = people.resolve_student(replica, student, source_system)
        issued = activation.issue(session, replica, settings, "guardian" if guardian else "student", system, student, guardian)
        session.commit()
    audited(settings, "code.issued", source_system=system, student_source_id=student,
            guardian_source_id=guardian, purpose="guardian" if guardian else "student",
            expires_at=issued.expires_at.isoformat())
    emit(as_json, {"code": issued.code, "expires_at": issued.expires_at.isoformat()},
         f"{issued.code}  (expires {issued.expires_at:%Y-%m-%d})")


@click.group("guidelines")
def guidelines_group() -> None:
    """The user guidelines everyone accepts."""


@guidelines_group.command()
@click.argument("text_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
@pass_context
def publish(ctx: Context, text_file: Path, as_json: bool) -> None:
    """Publish TEXT_FILE as the new version: every user accepts it at their next request."""
    with _portal(ctx.settings) as session:
        version = guidelines.publish(session, text_file.read_text(encoding="utf-8"))
        session.commit()
        audited(ctx.settings, "guidelines.published", version=version.version)
        emit(as_json, {"version": version.version}, f"published version {version.version} of the user guidelines")


@click.group()
def terminations() -> None:
    """Students' written requests ending parents' access (policy II.E)."""


@terminations.command()
@click.option("--student", required=True)
@source_option
@click.option("--recorded", type=click.DateTime(["%Y-%m-%d"]), required=True, help="The day staff record it.")
@click.option("--effective", type=click.DateTime(["%Y-%m-%d"]), help="A later date written in the request.")
@click.option("--guardian", "guardians", multiple=True, help="A parent it names (default: all parents).")
@json_option
@pass_context
def record(ctx: Context, student: str, source_system: str | None, recorded: dt.datetime, effective: dt.datetime | None,
           guardians: tuple[str, ...], as_json: bool) -> None:
    """Record a request received on paper."""
    settings = ctx.settings
    with _portal(settings) as session, _replica(settings) as replica:
        request = people.record_paper_request(session, people.resolve_student(replica, student, source_system), student,
                                              recorded.date(),
                                              effective.date() if effective else None, list(guardians))
        session.commit()
        audited(settings, "termination.recorded", source_system=request.source_system, student_source_id=student,
                request_id=request.id, guardians=list(guardians))
        emit(as_json, {"request_id": request.id, "effective_date": request.effective_date.isoformat()},
             f"recorded request {request.id}, in force from {request.effective_date}")


@click.command()
@click.option("--school", help="The SIS school id.")
@click.option("--grade")
@click.option("--student", "students", multiple=True, help="A SIS student id (repeatable).")
@click.option("--include-students", is_flag=True, help="Also a Student Portal letter for each student.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@json_option
@pass_context
def letters(ctx: Context, school: str | None, grade: str | None, students: tuple[str, ...], include_students: bool,
            out_dir: Path, as_json: bool) -> None:
    """Print activation letters (one page per guardian-student link) to an HTML file in OUT."""
    from gateway.portal.applications import upcoming_training
    from gateway.portal.letters import issue_letters, select_students
    from web.letters import render

    settings = ctx.settings
    if not (school or grade or students):
        raise ConfigError("letters", "need --school, --grade or --student", "say which students' families to write to")
    with _portal(settings) as portal, Session(create_ro_engine(settings.replica.url)) as replica:
        chosen = select_students(replica, school, grade, list(students))
        batch = issue_letters(portal, replica, settings, chosen, include_students)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"letters-{school or 'all'}{'-' + grade if grade else ''}-{dt.date.today():%Y%m%d}.html"
        training = upcoming_training(portal)
        path.write_text(render(batch, settings, training, standalone=True), encoding="utf-8")
        portal.commit()  # the codes exist only once the letters are written
    audited(settings, "codes.issued_by_letter", letters=len(batch), school=school, grade=grade, students=list(students))
    emit(as_json, {"letters": len(batch), "file": str(path)}, f"{len(batch)} letters written to {path}")

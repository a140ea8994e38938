"""The portal database: accounts, sessions, the policy's paperwork, audit trail, jobs, locks.

Replica rows are referred to by ``(source_system, source_id)``, never by the replica's
integer ids, so the replica can be rebuilt from the source at any time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gateway.replica.dbtypes import UtcDateTime, blind_index, encrypted, utcnow
from gateway.replica.tables import NAMING

ROLES = ("parent", "student", "staff", "it", "auditor", "admin")
STAFF_ROLES = ("staff", "it", "auditor", "admin")


class PortalBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _fk(table: str, nullable: bool = True) -> Any:
    return mapped_column(ForeignKey(f"{table}.id"), nullable=nullable, index=True)


def _created() -> Any:
    return mapped_column(UtcDateTime, default=utcnow)


class User(PortalBase):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)  # as the person chose it, for display
    # The one form every lookup, throttle and uniqueness check uses (accounts.normalize_username).
    username_key: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    display_name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    password_hash: Mapped[str] = mapped_column(String(255))
    password_changed_at: Mapped[dt.datetime] = _created()
    preferred_language: Mapped[str | None] = mapped_column(String(16))
    # A parent account is one SIS guardian; a student account is one SIS student.
    source_system: Mapped[str | None] = mapped_column(String(64))
    guardian_source_id: Mapped[str | None] = mapped_column(String(255), index=True)
    student_source_id: Mapped[str | None] = mapped_column(String(255), index=True)
    totp_secret: Mapped[str | None] = encrypted()
    totp_last_step: Mapped[int | None] = mapped_column()
    created_at: Mapped[dt.datetime] = _created()
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class UserSession(PortalBase):
    """A live sign-in, kept server-side so logout and revocation hold across workers."""

    __tablename__ = "user_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = _fk("users", nullable=False)
    created_at: Mapped[dt.datetime] = _created()
    last_seen_at: Mapped[dt.datetime] = _created()
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    ended_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(32))


class SecondFactorChallenge(PortalBase):
    """A password accepted, a second-factor code awaited: kept here, so the cookie holds only a token.

    Single use (``ended_at`` is set once, by a conditional update), expiring, and bound to the
    browser that holds the token (stored only hashed). An account enrolling keeps its new
    TOTP key here, encrypted, until the first code confirms it.
    """

    __tablename__ = "second_factor_challenges"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = _fk("users", nullable=False)
    created_at: Mapped[dt.datetime] = _created()
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    ip: Mapped[str | None] = mapped_column(String(64))
    enrol_secret: Mapped[str | None] = encrypted()
    ended_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(32))  # signed_in, locked, superseded


class UserStudent(PortalBase):
    """A student this account activated, with when: the age-18 rule depends on it."""

    __tablename__ = "user_students"
    __table_args__ = (UniqueConstraint("user_id", "source_system", "student_source_id", name="uq_user_students_link"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = _fk("users", nullable=False)
    source_system: Mapped[str] = mapped_column(String(64))
    student_source_id: Mapped[str] = mapped_column(String(255), index=True)
    activated_at: Mapped[dt.datetime] = _created()
    activation_code_id: Mapped[int | None] = _fk("activation_codes")


class Application(PortalBase):
    __tablename__ = "applications"
    id: Mapped[int] = mapped_column(primary_key=True)
    given_name: Mapped[str] = mapped_column(String(255))
    family_name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(255))  # as typed: never used to send a link
    relationship: Mapped[str] = mapped_column(String(32))
    student_number: Mapped[str] = mapped_column(String(64))
    student_birth_date: Mapped[str | None] = encrypted()
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, approved, rejected
    created_at: Mapped[dt.datetime] = _created()
    ip: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[int | None] = _fk("users")  # an existing account adding a child
    source_system: Mapped[str | None] = mapped_column(String(64))
    guardian_source_id: Mapped[str | None] = mapped_column(String(255))
    student_source_id: Mapped[str | None] = mapped_column(String(255))
    reviewed_by_id: Mapped[int | None] = _fk("users")
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)


class ActivationCode(PortalBase):
    """A single-use, expiring code tied to one guardian-student link or one student."""

    __tablename__ = "activation_codes"
    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))  # guardian or student
    source_system: Mapped[str] = mapped_column(String(64))
    student_source_id: Mapped[str] = mapped_column(String(255))
    guardian_source_id: Mapped[str | None] = mapped_column(String(255))
    application_id: Mapped[int | None] = _fk("applications")
    created_at: Mapped[dt.datetime] = _created()
    created_by_id: Mapped[int | None] = _fk("users")
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    used_by_id: Mapped[int | None] = _fk("users")
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class GuidelineVersion(PortalBase):
    __tablename__ = "guideline_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(unique=True)
    body: Mapped[str] = mapped_column(Text)
    published_at: Mapped[dt.datetime] = _created()
    published_by_id: Mapped[int | None] = _fk("users")


class GuidelineAcceptance(PortalBase):
    __tablename__ = "guideline_acceptances"
    __table_args__ = (UniqueConstraint("user_id", "version_id", name="uq_guideline_acceptances_pair"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = _fk("users", nullable=False)
    version_id: Mapped[int] = _fk("guideline_versions", nullable=False)
    accepted_at: Mapped[dt.datetime] = _created()


class TrainingSession(PortalBase):
    __tablename__ = "training_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(255))
    starts_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    location: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = _created()
    retired_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class SecurityReport(PortalBase):
    __tablename__ = "security_reports"
    id: Mapped[int] = mapped_column(primary_key=True)
    reporter_id: Mapped[int] = _fk("users", nullable=False)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="new")  # new, in_progress, resolved
    staff_notes: Mapped[str | None] = mapped_column(Text)
    resolution: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()


class TerminationRequest(PortalBase):
    """A student's written request ending parent access after turning 18 (policy II.E)."""

    __tablename__ = "termination_requests"
    id: Mapped[int] = mapped_column(primary_key=True)
    source_system: Mapped[str] = mapped_column(String(64))
    student_source_id: Mapped[str] = mapped_column(String(255), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # online or paper
    covers_all: Mapped[bool] = mapped_column(default=True)  # includes parents linked later
    filed_by_id: Mapped[int | None] = _fk("users")
    recorded_by_id: Mapped[int | None] = _fk("users")
    recorded_at: Mapped[dt.datetime] = _created()
    effective_date: Mapped[dt.date] = mapped_column()
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class TerminationRequestGuardian(PortalBase):
    __tablename__ = "termination_request_guardians"
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = _fk("termination_requests", nullable=False)
    guardian_source_id: Mapped[str] = mapped_column(String(255))


class Denial(PortalBase):
    """A person identified as a security risk, by guardian identity, email, or account."""

    __tablename__ = "denials"
    id: Mapped[int] = mapped_column(primary_key=True)
    source_system: Mapped[str | None] = mapped_column(String(64))
    guardian_source_id: Mapped[str | None] = mapped_column(String(255), index=True)
    email: Mapped[str | None] = encrypted()
    email_index: Mapped[str | None] = blind_index(of="email")
    user_id: Mapped[int | None] = _fk("users")
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _created()
    created_by_id: Mapped[int | None] = _fk("users")
    lifted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    lifted_by_id: Mapped[int | None] = _fk("users")


class AuditEntry(PortalBase):
    """One link of the append-only, hash-chained audit trail."""

    __tablename__ = "audit_log"
    # The chain starts at 1: a row below it could never be reached by verification's walk.
    __table_args__ = (CheckConstraint("id >= 1", name="chained_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    action: Mapped[str] = mapped_column(String(64), index=True)
    actor_user_id: Mapped[int | None] = mapped_column(index=True)
    actor_role: Mapped[str | None] = mapped_column(String(16))
    source_system: Mapped[str | None] = mapped_column(String(64))
    student_source_id: Mapped[str | None] = mapped_column(String(255), index=True)
    target: Mapped[str | None] = mapped_column(String(255))
    ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    key_id: Mapped[str] = mapped_column(String(16))
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


class SyncJob(PortalBase):
    """A sync job definition; the scheduler process reconciles its jobs from these rows."""

    __tablename__ = "sync_jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    connector: Mapped[str] = mapped_column(String(64), index=True)
    trigger: Mapped[str] = mapped_column(String(16))  # cron or interval
    expression: Mapped[str] = mapped_column(String(64))
    full: Mapped[bool] = mapped_column(default=False)
    paused: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()
    # Written by the scheduler process (empty while paused or before it first saw the job),
    # so pages show it without reading the scheduler's own store.
    next_run_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class SchedulerHeartbeat(PortalBase):
    """A scheduler process as it last reported itself: it writes ``last_poll_at`` at every poll."""

    __tablename__ = "scheduler_heartbeats"
    holder: Mapped[str] = mapped_column(String(255), primary_key=True)  # host:pid:token
    started_at: Mapped[dt.datetime] = _created()
    last_poll_at: Mapped[dt.datetime] = _created()
    stopped_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class SyncRunRequest(PortalBase):
    """A run-now request written by the CLI or the IT console, claimed by the scheduler."""

    __tablename__ = "sync_run_requests"
    id: Mapped[int] = mapped_column(primary_key=True)
    connector: Mapped[str] = mapped_column(String(64))
    full: Mapped[bool] = mapped_column(default=False)
    allow_shrink: Mapped[bool] = mapped_column(default=False)
    requested_at: Mapped[dt.datetime] = _created()
    requested_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    result: Mapped[str | None] = mapped_column(String(255))


class Lock(PortalBase):
    """A lease: held until ``expires_at`` unless its holder renews or releases it."""

    __tablename__ = "locks"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class Throttle(PortalBase):
    """Failure counts per scope and key (account, IP, student), shared by every worker."""

    __tablename__ = "throttles"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_throttles_scope_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(255))
    failures: Mapped[int] = mapped_column(default=0)
    window_started_at: Mapped[dt.datetime] = _created()
    locked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class Alert(PortalBase):
    """Something IT or staff must look at (failed syncs, stale data, repeated refusals)."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(primary_key=True)
    audience: Mapped[str] = mapped_column(String(16))  # it or staff
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))  # what it is about: a connector, a user id
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _created()
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class RecoveryToken(PortalBase):
    """A single-use, expiring password-reset link (stored only as a hash)."""

    __tablename__ = "recovery_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = _fk("users", nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = _created()
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)  # a newer link, or a completed reset


class RecoveryCode(PortalBase):
    """A single-use second-factor recovery code of a staff account (stored only as a hash)."""

    __tablename__ = "totp_recovery_codes"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = _fk("users", nullable=False)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = _created()
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class HealthProbe(PortalBase):
    """Never holds a row: /healthz inserts one in a transaction it rolls back, to prove writes land."""

    __tablename__ = "health_probes"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

"""People who use Pagecast: users, their API tokens and sign-in sessions, sign-in attempts, the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy import true as sa_true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pagecast.models.base import (
    Base,
    Role,
    stored_enum,
    utcnow,
)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(stored_enum(Role))
    # An admin can take the send permission away from a manager: editing without sending.
    can_send: Mapped[bool] = mapped_column(Boolean, default=True)
    # Issue 22: an admin can take the approve permission (campaigns:approve) away too.
    can_approve: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The IANA zone the dashboard shows times in and reads the schedule field in (timezones.py).
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


class LoginSession(Base):
    """A signed-in browser or API client: the cookie holds `<id>.<secret>`, the row the secret's
    SHA-256. Logout, a password change or an admin ends it (`revoked_at`)."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    user_agent: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


class LoginAttempt(Base):
    """Login attempts counted per key (client address or email) in a fixed window: the login
    limit's store when no Redis is configured (web/login_limit.py)."""

    __tablename__ = "login_attempts"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    window_ends_at: Mapped[datetime]


class AuditLog(Base):
    __tablename__ = "audit_log"
    # Each ends in `id`: a filter's newest entries are read in order (migration 0030).
    __table_args__ = (
        Index("ix_audit_log_action_id", "action", "id"),
        Index("ix_audit_log_actor_id", "actor", "id"),
        Index("ix_audit_log_actor_user_id", "actor_id", "id"),
        Index("ix_audit_log_object_id", "object_type", "object_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any] | None]


class FacebookLogin(Base):
    """One run of "Connect with Facebook" from a dashboard session (services/facebook_connect).

    The row holds the `state` sent to the Login dialog (its SHA-256), bound to the session that
    started it; the callback uses it once (`called_back_at`) and keeps the long-lived user token,
    encrypted, until the person has picked their Pages (`finished_at`) or the row expires.
    """

    __tablename__ = "facebook_logins"

    id: Mapped[int] = mapped_column(primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("login_sessions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    called_back_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    user_token_encrypted: Mapped[str | None] = mapped_column(Text)
    # {"granted": [...], "declined": [...]} as /me/permissions answered at the callback.
    permissions: Mapped[dict[str, Any] | None]

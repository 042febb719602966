"""SQLAlchemy 2 models and the status enums. Migrations in `migrations/` must match them."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "ApiToken",
    "AuditLog",
    "Base",
    "Campaign",
    "CampaignStatus",
    "Contact",
    "ContactImport",
    "Delivery",
    "DeliveryStatus",
    "ImportState",
    "LoginAttempt",
    "LoginSession",
    "MessagingType",
    "Page",
    "PageStatus",
    "PageSync",
    "Priority",
    "Role",
    "SyncState",
    "Tag",
    "Template",
    "User",
    "WebhookEvent",
    "contact_tags",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column; use utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Role(enum.StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    VIEWER = "viewer"


class PageStatus(enum.StrEnum):
    ACTIVE = "active"
    TOKEN_INVALID = "token_invalid"
    RESTRICTED = "restricted"
    DISCONNECTED = "disconnected"


class CampaignStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class SyncState(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    # The process running it stopped (its heartbeat went stale, or it shut down).
    INTERRUPTED = "interrupted"


class ImportState(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    # The file could not be read to its end, or the database refused a batch.
    FAILED = "failed"
    # The process running it stopped (shut down, or its heartbeat went stale).
    INTERRUPTED = "interrupted"


class MessagingType(enum.StrEnum):
    UPDATE = "UPDATE"
    RESPONSE = "RESPONSE"
    MESSAGE_TAG = "MESSAGE_TAG"


class Priority(enum.StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


def _enum(cls: type[enum.StrEnum]) -> Enum:
    # Stored as plain strings (no native enum type, no CHECK): adding a state later is a
    # code change, not a migration that rewrites a PostgreSQL type.
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda members: [member.value for member in members],
    )


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}  # noqa: RUF012


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_enum(Role))
    # An admin can take the send permission away from a manager: editing without sending.
    can_send: Mapped[bool] = mapped_column(Boolean, default=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
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


class Page(Base):
    __tablename__ = "pages"

    id: Mapped[int] = mapped_column(primary_key=True)
    fb_page_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    access_token_encrypted: Mapped[str] = mapped_column(Text)
    app_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    status: Mapped[PageStatus] = mapped_column(_enum(PageStatus), default=PageStatus.ACTIVE)
    status_reason: Mapped[str | None] = mapped_column(Text)
    send_rate: Mapped[float] = mapped_column(Float)
    opt_out_keywords: Mapped[list[str] | None] = mapped_column(JSON)
    # The latest claim time (our clock) of a delivery of this Page that an echo confirmed: the
    # Page's echo stream is proven live for every attempt made before it.
    echo_seen_at: Mapped[datetime | None]
    # Facebook's messaging policy enforcement (services/policy.py): the reason of the block
    # in force (None when not blocked), Facebook's time of the newest block or unblock
    # applied (an older event arriving late changes nothing), and the newest warning.
    policy_block: Mapped[str | None] = mapped_column(Text)
    policy_at: Mapped[datetime | None]
    policy_warning: Mapped[str | None] = mapped_column(Text)
    policy_warning_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


contact_tags = Table(
    "contact_tags",
    Base.metadata,
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("page_id", "psid"),
        Index("ix_contacts_page_id_last_inbound_at", "page_id", "last_inbound_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"))
    psid: Mapped[str] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    locale: Mapped[str | None] = mapped_column(String(32))
    timezone: Mapped[float | None] = mapped_column(Float)
    profile_pic_url: Mapped[str | None] = mapped_column(Text)
    last_inbound_at: Mapped[datetime | None]
    opted_out_at: Mapped[datetime | None]
    unreachable_at: Mapped[datetime | None]
    # The newest delivery and read receipt watermarks seen (Facebook's clock): an echo that
    # arrives after its receipt still moves its delivery forward.
    delivered_watermark_at: Mapped[datetime | None]
    read_watermark_at: Mapped[datetime | None]
    # When the last opt-out or opt-in keyword was written (the message's time): an older
    # keyword arriving late does not undo a newer one.
    consent_changed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    tags: Mapped[list[Tag]] = relationship(
        secondary=contact_tags, lazy="selectin", order_by=Tag.name
    )


class Template(Base):
    __tablename__ = "templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    content: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="RESTRICT"), index=True)
    content: Mapped[dict[str, Any] | None]
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("templates.id", ondelete="RESTRICT"), index=True
    )
    messaging_type: Mapped[MessagingType] = mapped_column(
        _enum(MessagingType), default=MessagingType.UPDATE
    )
    tag: Mapped[str | None] = mapped_column(String(64))
    audience: Mapped[dict[str, Any]]
    scheduled_at: Mapped[datetime | None]
    priority: Mapped[Priority] = mapped_column(_enum(Priority), default=Priority.NORMAL)
    send_rate: Mapped[float | None] = mapped_column(Float)
    expires_at: Mapped[datetime | None]
    status: Mapped[CampaignStatus] = mapped_column(
        _enum(CampaignStatus), default=CampaignStatus.DRAFT, index=True
    )
    status_reason: Mapped[str | None] = mapped_column(Text)
    # A schedule that passed more than max_schedule_lateness ago: it never fires by surprise.
    missed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Paused by its Page's stop (services.sending.stop_page), not by a person: a policy
    # unblock resumes it (services/policy.py).
    paused_by_page: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Consecutive bad_request outcomes, for the circuit breaker.
    bad_streak: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Deliveries by status, kept up to date with every status change so progress is O(1).
    n_total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_pending: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_sending: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_delivered: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_read: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_skipped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_unknown: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_cancelled: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_expired: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]


def _partial(name: str, *columns: str, where: str) -> Index:
    """An index of the rows where `where` holds, on both backends."""
    return Index(name, *columns, sqlite_where=text(where), postgresql_where=text(where))


class Delivery(Base):
    """One message of a campaign to one contact.

    Neither `campaign_id` nor `contact_id` has a foreign key: the snapshot's INSERT … SELECT
    reads each contact of the campaign in the same statement, and each key's check (a
    trigger per row that locks the referenced row `FOR KEY SHARE`) cost more than the insert
    itself on 1,000,000 rows. `services.campaigns.delete` and `services.contacts.delete`
    delete the deliveries themselves, and a snapshot slice locks its campaign once
    (docs/architecture.md, "Deliveries without foreign keys").
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id"),
        Index("ix_deliveries_campaign_id_status", "campaign_id", "status"),
        # Partial: a new delivery has neither a sent_at nor a message_id, and a btree would
        # otherwise index every NULL the snapshot writes. The queries that use them
        # (recent_rate, the receipts' lookup by mids) always compare the column to a value.
        _partial(
            "ix_deliveries_campaign_id_sent_at",
            "campaign_id",
            "sent_at",
            where="sent_at IS NOT NULL",
        ),
        _partial("ix_deliveries_message_id", "message_id", where="message_id IS NOT NULL"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer)
    contact_id: Mapped[int] = mapped_column(Integer, index=True)
    status: Mapped[DeliveryStatus] = mapped_column(
        _enum(DeliveryStatus), default=DeliveryStatus.PENDING
    )
    reason: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(255))
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_subcode: Mapped[int | None] = mapped_column(Integer)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    fbtrace_id: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    # When it became `unknown` (its attempt happened at or before this time), and when
    # reconciliation proved it never arrived and queued its one resend.
    unknown_since: Mapped[datetime | None]
    resent_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookEvent(Base):
    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Identifies a redelivered event (Meta retries and duplicates deliveries).
    event_key: Mapped[str] = mapped_column(String(255), unique=True)
    fb_page_id: Mapped[str | None] = mapped_column(String(64), index=True)
    psid: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # NULL until processed; the worker's sweep retries these.
    processed_at: Mapped[datetime | None] = mapped_column(index=True)
    error: Mapped[str | None] = mapped_column(Text)


class PageSync(Base):
    """One audience sync of a Page from the Conversations API, with its progress."""

    __tablename__ = "page_syncs"
    __table_args__ = (
        # At most one running sync per Page, whatever process tries to start another.
        Index(
            "ux_page_syncs_running_page_id",
            "page_id",
            unique=True,
            sqlite_where=text("state = 'running'"),
            postgresql_where=text("state = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"), index=True)
    state: Mapped[SyncState] = mapped_column(_enum(SyncState), default=SyncState.RUNNING)
    started_by: Mapped[str] = mapped_column(String(254))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The running process writes it every few seconds; a stale one means that process died.
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    calls: Mapped[int] = mapped_column(Integer, default=0)
    threads_seen: Mapped[int] = mapped_column(Integer, default=0)
    contacts_created: Mapped[int] = mapped_column(Integer, default=0)
    contacts_updated: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class ContactImport(Base):
    """One CSV import of contacts into a Page: a background job, its progress and report."""

    __tablename__ = "contact_imports"
    __table_args__ = (
        # At most one running import per Page, whatever process tries to start another.
        Index(
            "ux_contact_imports_running_page_id",
            "page_id",
            unique=True,
            sqlite_where=text("state = 'running'"),
            postgresql_where=text("state = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"), index=True)
    state: Mapped[ImportState] = mapped_column(_enum(ImportState), default=ImportState.RUNNING)
    started_by: Mapped[str] = mapped_column(String(254))
    file_name: Mapped[str] = mapped_column(String(255))
    file_bytes: Mapped[int] = mapped_column(BigInteger)
    bytes_read: Mapped[int] = mapped_column(BigInteger, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Written with every batch; a stale one means the process running it died.
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    rows: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    # The first refused rows with their reasons ({"row", "column", "reason"}), and the
    # header's columns that were not imported.
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    ignored_columns: Mapped[list[Any]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any] | None]

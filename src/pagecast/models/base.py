"""The declarative base, the UTC datetime column type and the status enums every table uses."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Enum,
    MetaData,
    Table,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase


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
    # Issue 22: started or scheduled, waiting for a second person's approval
    # (services/approvals.py); nothing is snapshotted or enqueued until then.
    AWAITING_APPROVAL = "awaiting_approval"
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


def stored_enum(cls: type[enum.StrEnum]) -> Enum:
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
    # Every model here is mapped to a table (no mapping to joins or selects), so Core
    # statements may take `Model.__table__` as the Table it is.
    __table__: ClassVar[Table]
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

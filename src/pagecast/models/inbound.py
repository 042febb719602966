"""What comes in from outside: webhook events, audience syncs of a Page, contact imports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from pagecast.models.base import (
    Base,
    ImportState,
    SyncState,
    stored_enum,
    utcnow,
)


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


def _one_running_per_page(table: str) -> Index:
    """At most one running job of the table per Page, whatever process tries to start
    another (a partial unique index on both backends)."""
    running = "state = 'running'"
    return Index(
        f"ux_{table}_running_page_id",
        "page_id",
        unique=True,
        sqlite_where=text(running),
        postgresql_where=text(running),
    )


class PageSync(Base):
    """One audience sync of a Page from the Conversations API, with its progress."""

    __tablename__ = "page_syncs"
    __table_args__ = (_one_running_per_page("page_syncs"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"), index=True)
    state: Mapped[SyncState] = mapped_column(stored_enum(SyncState), default=SyncState.RUNNING)
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
    __table_args__ = (_one_running_per_page("contact_imports"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"), index=True)
    state: Mapped[ImportState] = mapped_column(
        stored_enum(ImportState), default=ImportState.RUNNING
    )
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

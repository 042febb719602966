"""Facebook Pages and the people they can message: contacts and their tags."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pagecast.models.base import (
    Base,
    PageStatus,
    stored_enum,
    utcnow,
)


class Page(Base):
    __tablename__ = "pages"

    id: Mapped[int] = mapped_column(primary_key=True)
    fb_page_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    access_token_encrypted: Mapped[str] = mapped_column(Text)
    app_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    status: Mapped[PageStatus] = mapped_column(stored_enum(PageStatus), default=PageStatus.ACTIVE)
    status_reason: Mapped[str | None] = mapped_column(Text)
    send_rate: Mapped[float] = mapped_column(Float)
    opt_out_keywords: Mapped[list[str] | None] = mapped_column(JSON)
    # The Page's default IANA zone (its audience's local time): shown beside a campaign's
    # schedule so a time in the user's zone can be checked against the Page's (timezones.py).
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    # Issue 20: {"start": "21:00", "end": "08:00"} in each recipient's local time, or NULL
    # (no quiet hours): a delivery due in them waits for their end (services/due_times.py).
    quiet_hours: Mapped[dict[str, str] | None] = mapped_column(JSON(none_as_null=True))
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
    # At most `messages` campaign messages per person in `days` days, across the Page's
    # campaigns ({"messages": N, "days": D}); None: no cap (services/frequency_cap.py).
    frequency_cap: Mapped[dict[str, int] | None] = mapped_column(JSON)
    # Issue 22: a campaign to more than this many people needs a second person's approval
    # (0: every campaign; None: none) (services/approvals.py).
    approval_threshold: Mapped[int | None] = mapped_column(Integer)
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


# Indexes of `contacts` that migration 0025 creates on PostgreSQL only (descending sorts
# with NULLS LAST, which SQLite's indexes cannot say, and the pg_trgm name search); they are
# not in the model, so the migrations' environment leaves them out of its comparison.
POSTGRESQL_ONLY_INDEXES = frozenset(
    {
        "ix_contacts_page_id_first_name_desc",
        "ix_contacts_page_id_last_inbound_at_desc",
        "ix_contacts_page_id_created_at_desc",
        "ix_contacts_full_name_trgm",
    }
)


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("page_id", "psid"),
        # The contacts list's sorts, keyset on (key, id) (migration 0025; PostgreSQL also
        # has each descending with NULLS LAST and the name search's trigram index, which
        # are POSTGRESQL_ONLY_INDEXES below).
        Index("ix_contacts_page_id_first_name_id", "page_id", "first_name", "id"),
        Index("ix_contacts_page_id_last_inbound_at_id", "page_id", "last_inbound_at", "id"),
        Index("ix_contacts_page_id_created_at_id", "page_id", "created_at", "id"),
        # A Page's testers (the "Send test" form): few rows, so only theirs are indexed.
        Index(
            "ix_contacts_page_id_testers",
            "page_id",
            sqlite_where=text("is_tester = 1"),
            postgresql_where=text("is_tester"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"))
    psid: Mapped[str] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    locale: Mapped[str | None] = mapped_column(String(32))
    # The person's IANA zone (CSV import, the API, the dashboard), and the UTC offset the
    # Messenger profile gave when that is all there is; neither: the Page's zone
    # (services/due_times.py).
    timezone: Mapped[str | None] = mapped_column(String(64))
    utc_offset_minutes: Mapped[int | None] = mapped_column(Integer)
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
    # A test recipient of the Page (one of its admins, say): "Send test" sends to these only.
    is_tester: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    tags: Mapped[list[Tag]] = relationship(
        secondary=contact_tags, lazy="selectin", order_by=Tag.name
    )


class MessageAttachment(Base):
    """Media uploaded once through the Attachment Upload API, reused by `attachment_id`:
    one row per Page and (type, URL), so the same URL is not uploaded twice."""

    __tablename__ = "message_attachments"
    __table_args__ = (UniqueConstraint("page_id", "type", "url_sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text)
    # The URL's SHA-256: a unique key of a fixed width whatever the URL's length.
    url_sha256: Mapped[str] = mapped_column(String(64))
    attachment_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

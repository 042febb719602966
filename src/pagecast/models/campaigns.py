"""Campaigns, their message templates and their deliveries (one per contact)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from pagecast.models.base import (
    Base,
    CampaignStatus,
    DeliveryStatus,
    MessagingType,
    Priority,
    stored_enum,
    utcnow,
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
    # Issue 20: one campaign per run of a series, even with two workers.
    __table_args__ = (
        UniqueConstraint("series_id", "run_at"),
        # Issue 21: the campaign list reads the newest campaigns not archived (0027).
        Index("ix_campaigns_archived_at_id", "archived_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="RESTRICT"), index=True)
    content: Mapped[dict[str, Any] | None]
    # A sequence (issue 19): every message in the order each person gets them, 2 or 3 of
    # them; `content` is then the first. NULL for a single message (`content` or a template).
    messages: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True))
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("templates.id", ondelete="RESTRICT"), index=True
    )
    # Issue 20, A/B tests (services/variants.py, services/experiments.py): 2 to 5 variants
    # [{key, content, weight}] (`content` is then variant A's), the experiment's settings
    # {test_percent, holdout_percent, winner_metric, decide_after_seconds, auto_winner,
    # confidence}, the seed of each person's assignment, and the decision: its state
    # (testing, deciding, decided), the winner's key, the reason in words and when.
    variants: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True))
    experiment: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    variant_seed: Mapped[int | None] = mapped_column(Integer)
    experiment_state: Mapped[str | None] = mapped_column(String(16))
    winner: Mapped[str | None] = mapped_column(String(8))
    experiment_reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None]
    messaging_type: Mapped[MessagingType] = mapped_column(
        stored_enum(MessagingType), default=MessagingType.UPDATE
    )
    tag: Mapped[str | None] = mapped_column(String(64))
    audience: Mapped[dict[str, Any]]
    scheduled_at: Mapped[datetime | None]
    priority: Mapped[Priority] = mapped_column(stored_enum(Priority), default=Priority.NORMAL)
    send_rate: Mapped[float | None] = mapped_column(Float)
    expires_at: Mapped[datetime | None]
    # Issue 20: a wall-clock time (naive) each person gets it at in their own zone; the
    # days and hours each person may get it in ({"days": ["mon", …], "start": "09:00",
    # "end": "18:00"}, their zone); the latest due time its snapshot gave (NULL: all at
    # once), so progress counts the people still waiting only while some are
    # (services/due_times.py).
    local_send_at: Mapped[datetime | None] = mapped_column(DateTime)
    send_window: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    last_due_at: Mapped[datetime | None]
    status: Mapped[CampaignStatus] = mapped_column(
        stored_enum(CampaignStatus), default=CampaignStatus.DRAFT, index=True
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
    # Issue 21: when a finished campaign left the default list (NULL: it is listed).
    archived_at: Mapped[datetime | None]
    # Issue 20: the series this campaign is a run of, and that run's time (NULL otherwise).
    series_id: Mapped[int | None] = mapped_column(
        ForeignKey("series.id", ondelete="SET NULL"), index=True
    )
    run_at: Mapped[datetime | None]
    # Issue 22, two-person approval (services/approvals.py): the state (pending, approved,
    # rejected, withdrawn; NULL: never asked), what was asked (start, schedule) and for how
    # many people, who asked and when (the author, who may not approve it), who decided and
    # when, and the decision's comment. Names are kept as they were, beside the user ids.
    approval_state: Mapped[str | None] = mapped_column(String(16))
    approval_ask: Mapped[str | None] = mapped_column(String(16))
    approval_people: Mapped[int | None] = mapped_column(Integer)
    approval_requested_by_id: Mapped[int | None] = mapped_column(Integer)
    approval_requested_by: Mapped[str | None] = mapped_column(String(254))
    approval_requested_at: Mapped[datetime | None]
    approval_decided_by_id: Mapped[int | None] = mapped_column(Integer)
    approval_decided_by: Mapped[str | None] = mapped_column(String(254))
    approval_decided_at: Mapped[datetime | None]
    approval_comment: Mapped[str | None] = mapped_column(Text)


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
        # With `id` last, a campaign's deliveries of one status come in id order from the
        # index: the listing's keyset pages (services/delivery_list.py, migration 0023).
        Index("ix_deliveries_campaign_id_status_id", "campaign_id", "status", "id"),
        # Partial: a new delivery has neither a sent_at nor a message_id, and a btree would
        # otherwise index every NULL the snapshot writes. The queries that use them
        # (campaigns.send_rate, the receipts' lookup by mids) always compare the column to a value.
        _partial(
            "ix_deliveries_campaign_id_sent_at",
            "campaign_id",
            "sent_at",
            where="sent_at IS NOT NULL",
        ),
        _partial("ix_deliveries_message_id", "message_id", where="message_id IS NOT NULL"),
        # Issue 20 (engagement, frequency cap): a person's recent sends, and a campaign's
        # clicked and replied counts (services/engagement.py, services/frequency_cap.py).
        _partial(
            "ix_deliveries_contact_id_sent_at",
            "contact_id",
            "sent_at",
            where="sent_at IS NOT NULL",
        ),
        _partial(
            "ix_deliveries_campaign_id_clicked", "campaign_id", where="clicked_at IS NOT NULL"
        ),
        _partial(
            "ix_deliveries_campaign_id_replied", "campaign_id", where="replied_at IS NOT NULL"
        ),
        # Issue 20: pending deliveries that do not wait for an experiment's winner (the stall
        # check and the plan; services/variants.py `not_waiting` and deliveries._due write
        # the same predicate with the same literals, so PostgreSQL can use it: 0024).
        _partial(
            "ix_deliveries_campaign_id_due_pending",
            "campaign_id",
            "id",
            where="status = 'pending' AND (variant IS NULL OR variant <> '*')",
        ),
        # The listing's filters by error code and by reason: only rows that have one.
        _partial(
            "ix_deliveries_campaign_id_error_code",
            "campaign_id",
            "error_code",
            "id",
            where="error_code IS NOT NULL",
        ),
        _partial(
            "ix_deliveries_campaign_id_reason",
            "campaign_id",
            "reason",
            "id",
            where="reason IS NOT NULL",
        ),
        # Issue 20: the next due time of a campaign's waiting deliveries, and how many wait.
        _partial(
            "ix_deliveries_campaign_id_due_at",
            "campaign_id",
            "due_at",
            where="status = 'pending' AND due_at IS NOT NULL",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer)
    contact_id: Mapped[int] = mapped_column(Integer, index=True)
    status: Mapped[DeliveryStatus] = mapped_column(
        stored_enum(DeliveryStatus), default=DeliveryStatus.PENDING
    )
    reason: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(255))
    # How many messages of the campaign's sequence Facebook accepted (a retry or a resend
    # starts after them); 1 for a sent single message.
    parts_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
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
    # Issue 20. The key of the campaign's variant this person gets (NULL: the campaign has
    # one content, or the person is in an experiment's holdout; `*`: the person waits for
    # the experiment's winner, services/experiments.py); not before when it may
    # be sent (each person's local time, quiet hours, send windows; NULL: at once); and the
    # first click (a button's postback or a quick reply) and reply (an inbound message)
    # seen from the person after it was sent.
    variant: Mapped[str | None] = mapped_column(String(8))
    due_at: Mapped[datetime | None]
    clicked_at: Mapped[datetime | None]
    replied_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

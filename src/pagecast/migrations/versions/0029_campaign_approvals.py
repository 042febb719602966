"""campaign_approvals: two-person approval of large campaigns

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 09:20:00.000000

Issue 22. A Page's `approval_threshold` (NULL: no approval; 0: every campaign; N: campaigns to
more than N people); a user's `can_approve` (true for everyone already there: the role still
decides, as with `can_send`); a campaign's approval request and decision. The history of
requests and decisions is the audit log (services/approvals.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
_CAMPAIGN_COLUMNS = (
    ("approval_state", sa.String(length=16)),
    ("approval_ask", sa.String(length=16)),
    ("approval_people", sa.Integer()),
    ("approval_requested_by_id", sa.Integer()),
    ("approval_requested_by", sa.String(length=254)),
    ("approval_requested_at", TZ),
    ("approval_decided_by_id", sa.Integer()),
    ("approval_decided_by", sa.String(length=254)),
    ("approval_decided_at", TZ),
    ("approval_comment", sa.Text()),
)


def upgrade() -> None:
    with op.batch_alter_table("pages") as batch_op:
        batch_op.add_column(sa.Column("approval_threshold", sa.Integer(), nullable=True))
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(
            sa.Column("can_approve", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table("campaigns") as batch_op:
        for name, type_ in _CAMPAIGN_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+), not a batch table copy, as 0010 does:
    # `pages`, `users` and `campaigns` are referenced by other tables' foreign keys, and SQLite
    # refuses to drop a referenced table that still has rows pointing at it.
    for name, _ in reversed(_CAMPAIGN_COLUMNS):
        op.drop_column("campaigns", name)
    op.drop_column("users", "can_approve")
    op.drop_column("pages", "approval_threshold")

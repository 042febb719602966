"""message_sequences: a campaign's sequence of up to 3 messages, and how many of them each
delivery has had accepted

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-05 23:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch table copy): deliveries can hold millions of rows, and a
    # nullable column or one with a server default is added in place on both backends.
    op.add_column("campaigns", sa.Column("messages", sa.JSON(), nullable=True))
    op.add_column(
        "deliveries",
        sa.Column("parts_sent", sa.Integer(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("deliveries", "parts_sent")
    op.drop_column("campaigns", "messages")

"""campaign_variants: a campaign's A/B variants, its experiment and the experiment's decision

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 02:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_COLUMNS = (
    "variants",
    "experiment",
    "variant_seed",
    "experiment_state",
    "winner",
    "experiment_reason",
    "decided_at",
)


def upgrade() -> None:
    # All NULL on the campaigns that exist: one content, no experiment. ADD COLUMN only.
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("variants", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("experiment", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("variant_seed", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("experiment_state", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("winner", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("experiment_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for column in reversed(_COLUMNS):
        op.drop_column("campaigns", column)

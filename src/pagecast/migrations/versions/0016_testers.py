"""testers: a contact can be a test recipient of its Page ("Send test" sends to these only)

Revision ID: 0016
Revises: 0013
Create Date: 2026-12-05 23:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nobody is a tester until someone marks them: the server default fills existing rows.
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_tester", sa.Boolean(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    # Plain DROP COLUMN, not a batch table copy: contacts are referenced by contact_tags.
    op.drop_column("contacts", "is_tester")

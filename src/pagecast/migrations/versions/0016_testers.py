"""testers: a contact can be a test recipient of its Page ("Send test" sends to these only)

Revision ID: 0016
Revises: 0013
Create Date: 2026-12-05 23:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nobody is a tester until someone marks them: the server default fills existing rows.
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_tester", sa.Boolean(), server_default="0", nullable=False)
        )
    # A Page's testers: a partial index holds the few tester rows only (both backends).
    op.create_index(
        "ix_contacts_page_id_testers",
        "contacts",
        ["page_id"],
        unique=False,
        sqlite_where=sa.text("is_tester = 1"),
        postgresql_where=sa.text("is_tester"),
    )


def downgrade() -> None:
    # IF EXISTS: a database upgraded by 0016 before it had the index goes down too.
    op.drop_index("ix_contacts_page_id_testers", table_name="contacts", if_exists=True)
    # Plain DROP COLUMN, not a batch table copy: contacts are referenced by contact_tags.
    op.drop_column("contacts", "is_tester")

"""deliveries: no foreign key to contacts, partial sent_at and message_id indexes (a faster
audience snapshot)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 05:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_CONTACT_FK = "fk_deliveries_contact_id_contacts"
_INDEXES = {
    "ix_deliveries_campaign_id_sent_at": (["campaign_id", "sent_at"], "sent_at IS NOT NULL"),
    "ix_deliveries_message_id": (["message_id"], "message_id IS NOT NULL"),
}


def _drop_indexes() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="deliveries")


def upgrade() -> None:
    # The two indexes go first and come back after the batch: SQLite's batch mode copies
    # `deliveries` (the only way to drop a foreign key there) and rebuilds its indexes from
    # reflection. Nothing references `deliveries`, so dropping the old copy trips no key.
    _drop_indexes()
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(_CONTACT_FK, type_="foreignkey")
    for name, (columns, where) in _INDEXES.items():
        op.create_index(
            name,
            "deliveries",
            columns,
            unique=False,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    # The key cannot come back over deliveries whose contact is gone (a contact deleted while
    # a snapshot was inserting it): delete them, as the old cascade would have, and take
    # them off their campaign's counters.
    bind = op.get_bind()
    orphans = "FROM deliveries WHERE NOT EXISTS (SELECT 1 FROM contacts WHERE contacts.id = deliveries.contact_id)"
    groups = bind.execute(
        sa.text(f"SELECT campaign_id, status, count(*) {orphans} GROUP BY campaign_id, status")
    ).all()
    for campaign_id, status, count in groups:
        column = f"n_{status}"
        bind.execute(
            sa.text(
                f"UPDATE campaigns SET n_total = n_total - :n, {column} = {column} - :n "
                "WHERE id = :id"
            ),
            {"n": count, "id": campaign_id},
        )
    bind.execute(sa.text(f"DELETE {orphans}"))
    _drop_indexes()
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_foreign_key(
            _CONTACT_FK, "contacts", ["contact_id"], ["id"], ondelete="CASCADE"
        )
    for name, (columns, _) in _INDEXES.items():
        op.create_index(name, "deliveries", columns, unique=False)

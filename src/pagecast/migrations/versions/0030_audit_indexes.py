"""audit_indexes: the audit log's filters read their newest entries from an index

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-06 09:40:00.000000

Issue 22. `GET /api/audit` lists the entries a filter matches newest first, by id (keyset).
Each filter that picks few entries gets an index that ends in `id`, so the newest of them
are read in order and the read stops after a page: by action, by actor name, by actor's
user id, and by object (which replaces the index on (object_type, object_id) alone). The
times on 200,000 entries are in docs/performance.md (P12).
"""

from __future__ import annotations

from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_audit_log_action_id": ["action", "id"],
    "ix_audit_log_actor_id": ["actor", "id"],
    "ix_audit_log_actor_user_id": ["actor_id", "id"],
    "ix_audit_log_object_id": ["object_type", "object_id", "id"],
}


def upgrade() -> None:
    op.drop_index("ix_audit_log_object", table_name="audit_log")
    for name, columns in INDEXES.items():
        op.create_index(name, "audit_log", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="audit_log")
    op.create_index("ix_audit_log_object", "audit_log", ["object_type", "object_id"])

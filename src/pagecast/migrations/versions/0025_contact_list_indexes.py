"""contact_list_indexes: the contacts list's sorts and name search on a Page of 1,000,000

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 06:45:00.000000

A page of the contacts list is keyset on (sort key, id) with empty keys last
(services/contact_list.py). Without an index in that order, a page sorted by name, last
inbound or creation sorted every match (about 600 ms on 1,000,000 contacts, P10). Each sort
gets `(page_id, key, id)`, which PostgreSQL reads forwards for the ascending sort (its
ascending order puts NULLs last) and backwards for Previous; `(page_id, last_inbound_at, id)`
replaces `(page_id, last_inbound_at)`, whose every use it serves. On PostgreSQL only:

- `(page_id, key DESC NULLS LAST, id DESC)` for each descending sort (an ascending index
  read backwards puts the NULLs first; SQLite's indexes cannot say NULLS LAST, and SQLite
  sorts its matches as before);
- a `pg_trgm` GIN index on the full name as `contact_filter._search` writes it
  (`coalesce(first_name, '') || ' ' || coalesce(last_name, '')`), so a search of part of a
  name reads the index instead of every row. `pg_trgm` is a trusted extension: the
  database's owner may create it.

Locks: `CREATE INDEX` inside the migration's transaction takes a SHARE lock on `contacts`
for as long as each index builds: reads go on, but webhooks (last inbound, opt-outs),
imports and bulk actions wait. On 1,000,000 contacts the migration took 7.4 s on the
development machine (2 cores, load 1.6). `CREATE INDEX CONCURRENTLY` would not block writes, but
cannot run inside a transaction, and `pagecast db upgrade` runs every migration in one; a
Page that large should upgrade in a quiet hour (docs/operations.md, upgrades), or an
operator may create the same indexes CONCURRENTLY by hand beforehand under these names
(`IF NOT EXISTS` below then leaves them alone on PostgreSQL).

Each index is written on every contact update that changes its key; webhooks already
change `last_inbound_at`, an indexed column, so those updates were never HOT and now write
a few more index entries each.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

# (name, key column) of the indexes on both backends.
BOTH = (
    ("ix_contacts_page_id_first_name_id", "first_name"),
    ("ix_contacts_page_id_last_inbound_at_id", "last_inbound_at"),
    ("ix_contacts_page_id_created_at_id", "created_at"),
)
# Also in pagecast.models.pages.POSTGRESQL_ONLY_INDEXES (alembic check leaves them out).
POSTGRESQL_ONLY = {
    "ix_contacts_page_id_first_name_desc": ("(page_id, first_name DESC NULLS LAST, id DESC)"),
    "ix_contacts_page_id_last_inbound_at_desc": (
        "(page_id, last_inbound_at DESC NULLS LAST, id DESC)"
    ),
    "ix_contacts_page_id_created_at_desc": "(page_id, created_at DESC NULLS LAST, id DESC)",
    "ix_contacts_full_name_trgm": (
        "USING gin ((coalesce(first_name, '') || ' ' || coalesce(last_name, '')) gin_trgm_ops)"
    ),
}


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, column in BOTH:
        op.create_index(name, "contacts", ["page_id", column, "id"], if_not_exists=True)
    op.drop_index("ix_contacts_page_id_last_inbound_at", table_name="contacts")
    if postgresql:
        op.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        for name, definition in POSTGRESQL_ONLY.items():
            op.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {name} ON contacts {definition}"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in POSTGRESQL_ONLY:
            op.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))
    op.create_index(
        "ix_contacts_page_id_last_inbound_at", "contacts", ["page_id", "last_inbound_at"]
    )
    for name, _column in BOTH:
        op.drop_index(name, table_name="contacts")

"""Alembic environment: migrations run on a connection handed in by `pagecast.db`."""

from __future__ import annotations

from alembic import context

from pagecast.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "Run migrations with `pagecast db upgrade` (it hands Alembic a connection); "
        "the plain `alembic` command is not configured for Pagecast."
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

"""Alembic environment: migrations run on a connection handed in by `pagecast.db`."""

from __future__ import annotations

from typing import Any

from alembic import context

from pagecast.models import Base
from pagecast.models.pages import POSTGRESQL_ONLY_INDEXES

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "Run migrations with `pagecast db upgrade` (it hands Alembic a connection); "
        "the plain `alembic` command is not configured for Pagecast."
    )


def _include_object(
    _object: Any, name: str | None, type_: str, reflected: bool, _compare_to: Any
) -> bool:
    """Everything but the PostgreSQL-only indexes of migration 0025 (not in the model)."""
    return not (type_ == "index" and reflected and name in POSTGRESQL_ONLY_INDEXES)


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_object=_include_object,
)
with context.begin_transaction():
    context.run_migrations()

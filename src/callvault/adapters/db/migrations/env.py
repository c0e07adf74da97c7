"""Alembic environment: always runs on a connection handed in by the vault."""

from __future__ import annotations

from alembic import context

from callvault.adapters.db.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("migrations run only through callvault (see adapters/db/migrate.py)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

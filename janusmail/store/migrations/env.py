"""Alembic environment: runs on the connection the store hands over (config.attributes['connection'])."""

from __future__ import annotations

from alembic import context

from janusmail.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only for `alembic` run by hand
    raise SystemExit("run migrations through janusmail.store.db.migrate()")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

"""Alembic environment: migrations always run on a connection the catalog passes in
(``config.attributes["connection"]``), inside the caller's transaction and lock."""

from __future__ import annotations

from alembic import context

from pipelines.catalog.models import Base, catalog_tables_only

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by the alembic command line
    raise RuntimeError(
        "run catalog migrations through pipelines.catalog (they open the database themselves)"
    )


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    include_name=catalog_tables_only,
    render_as_batch=True,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()

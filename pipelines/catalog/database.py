"""Connecting to the catalog database and bringing its tables up to date.

SQLite (a file, the default) and PostgreSQL (for teams, through psycopg 3) behave the
same to the rest of the catalog because of two rules set here:

- Every SQLite transaction starts with ``BEGIN IMMEDIATE``: it takes the database's
  write lock at its first statement, so read-check-write sequences (the next version
  number, the budget left) are serialised across processes instead of failing late
  with "database is locked". PostgreSQL gets the same guarantee from row locks and
  advisory locks taken by the callers.
- Alembic migrations run on first use and on upgrade, inside one transaction that
  holds that lock (an advisory lock on PostgreSQL), so eight processes opening a new
  catalog at once create the tables exactly once.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from synthgen.errors import ConfigError

#: Used when neither ``--catalog`` nor ``SYNTHGEN_CATALOG_URL`` is given.
DEFAULT_URL = "sqlite:///synthgen.db"
MIGRATIONS = Path(__file__).parent / "migrations"
#: Key of the PostgreSQL advisory lock held while migrating.
MIGRATION_LOCK = 0x5347_0001


class CatalogError(ConfigError):
    """The catalog cannot be opened or is in a state this version cannot use."""


def resolve_url(url: str | None = None) -> str:
    """The catalog URL: the argument, else ``SYNTHGEN_CATALOG_URL``, else ./synthgen.db."""
    chosen = url or os.environ.get("SYNTHGEN_CATALOG_URL") or DEFAULT_URL
    try:
        parsed = make_url(chosen)
    except ArgumentError as exc:
        raise CatalogError(
            f"catalog URL {chosen!r} is not a database URL; use sqlite:///path/to/synthgen.db "
            "or postgresql+psycopg://user@host/dbname"
        ) from exc
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise CatalogError(
            f"catalog URL {chosen!r} names database {backend!r}; the catalog runs on sqlite "
            "or postgresql"
        )
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise CatalogError(
                "an in-memory SQLite catalog would vanish with the process; give a file: "
                "sqlite:///synthgen.db"
            )
        folder = Path(database).expanduser().resolve().parent
        if not folder.is_dir():
            raise CatalogError(
                f"catalog database folder {folder} does not exist; create it or choose another path"
            )
    return parsed.render_as_string(hide_password=False)


def _serialise_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@cache
def _head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head() or ""


def _alembic_config(connection: Connection):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: Engine) -> None:
    """Create or upgrade the tables to this version's head, once, under a lock."""
    from alembic import command
    from alembic.script import ScriptDirectory

    head = _head_revision()
    with engine.connect() as probe:
        revision = current_revision(probe)
        probe.rollback()
    if revision == head:
        return
    known = {s.revision for s in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}
    if revision is not None and revision not in known:
        raise CatalogError(
            f"the catalog database is at schema revision {revision!r}, which this synthgen "
            "does not know (a newer version created it); upgrade synthgen"
        )
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        command.upgrade(_alembic_config(connection), "head")


def open_engine(url: str | None = None, *, upgrade: bool = True) -> Engine:
    """An engine on the catalog database, its tables migrated to the current head."""
    resolved = resolve_url(url)
    kwargs: dict = {"future": True}
    if resolved.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 60}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(resolved, **kwargs)
    if engine.dialect.name == "sqlite":
        _serialise_sqlite(engine)
    try:
        if upgrade:
            migrate(engine)
        else:
            with engine.connect() as probe:
                probe.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        reason = " ".join(str(exc.orig).split())[:300]
        raise CatalogError(
            f"cannot open the catalog at {make_url(resolved).render_as_string()}: {reason}; "
            "check the URL (SYNTHGEN_CATALOG_URL or --catalog) and that the server is running"
        ) from exc
    return engine

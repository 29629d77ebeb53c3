"""Shared fixtures: small real data, a frame holding every column kind, and an empty
catalog database on each backend the catalog supports (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("SYNTHGEN_NO_PROGRESS", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def adult() -> pd.DataFrame:
    import synthgen as sg

    return sg.datasets.load("adult")


@pytest.fixture(scope="session")
def adult_small(adult: pd.DataFrame) -> pd.DataFrame:
    return adult.sample(2000, random_state=0).reset_index(drop=True)


@pytest.fixture()
def mixed_frame() -> pd.DataFrame:
    """One column of every kind, with nulls where a kind allows them."""
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "user_id": np.arange(1000, 1000 + n),
            "age": rng.integers(18, 90, n),
            "income": np.round(rng.lognormal(10, 1, n), 2),
            "score": np.where(rng.random(n) < 0.1, np.nan, rng.normal(0, 1, n)),
            "city": rng.choice(["Paris", "Lyon", "Nice", None], n, p=[0.5, 0.3, 0.15, 0.05]),
            "member": rng.random(n) < 0.3,
            "joined": pd.to_datetime("2020-01-01")
            + pd.to_timedelta(rng.integers(0, 1000, n), unit="D"),
        }
    )
    return frame


POSTGRES_URL_ENV = "SYNTHGEN_TEST_POSTGRES_URL"


def _running_in_ci() -> bool:
    """CI sets CI=true; there a missing server is a broken setup, not a reason to skip."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def _fresh_postgres_database(base_url: str) -> Iterator[str]:
    """Create an empty database on the server at ``base_url``, yield its URL, drop it.

    One database per test keeps tests independent without a server per test;
    ``WITH (FORCE)`` drops it even when a test leaked a connection.
    """
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(base_url)
    except ArgumentError as exc:
        pytest.fail(
            f"{POSTGRES_URL_ENV}={base_url!r} is not an SQLAlchemy URL ({exc}); use the "
            "line scripts/start-postgres.sh prints, e.g. "
            "postgresql+psycopg://synthgen@127.0.0.1:54329/synthgen",
            pytrace=False,
        )
    # psycopg takes a libpq URL: the same URL without SQLAlchemy's "+psycopg" driver part.
    admin_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"sg_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"{POSTGRES_URL_ENV}={url.render_as_string()} but its server does not answer "
            f"({exc}); start it with scripts/start-postgres.sh",
            pytrace=False,
        )
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLAlchemy URL of an empty database for one test, on SQLite and on PostgreSQL.

    The catalog must behave the same on both. PostgreSQL comes from
    $SYNTHGEN_TEST_POSTGRES_URL (printed by scripts/start-postgres.sh): without it the
    case is skipped locally but fails in CI, so CI can never pass on SQLite alone.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/catalog.db"
        return
    base_url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if not base_url:
        hint = (
            f"{POSTGRES_URL_ENV} is not set; start a server with "
            f'export {POSTGRES_URL_ENV}="$(bash scripts/start-postgres.sh | tail -n 1)"'
        )
        if _running_in_ci():
            pytest.fail(
                f"{hint}. In CI, .ci/run must start it (scripts/start-postgres.sh) and "
                f"export {POSTGRES_URL_ENV} before running pytest",
                pytrace=False,
            )
        pytest.skip(hint)
    yield from _fresh_postgres_database(base_url)

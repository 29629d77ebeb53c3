"""The catalog_url fixture gives each test an empty, working database on both backends.

The catalog tests rely on this: a database that is shared between tests, or a PostgreSQL
case that silently runs on SQLite, would let backend-specific bugs through.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

# Names of the PostgreSQL databases earlier tests in this module were given.
_postgres_databases_seen: list[str] = []

_probe = sa.Table(
    "probe",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50), nullable=False),
)


def _backend(url: str) -> str:
    return sa.engine.make_url(url).get_backend_name()


def _use_database(url: str) -> None:
    """Check the database is empty, then create, fill and read a table in it."""
    engine = sa.create_engine(url)
    try:
        assert sa.inspect(engine).get_table_names() == []
        _probe.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(_probe.insert(), [{"id": 1, "name": "first"}, {"id": 2, "name": "é"}])
        with engine.connect() as conn:
            rows = conn.execute(sa.select(_probe.c.id, _probe.c.name).order_by("id")).all()
        assert [tuple(row) for row in rows] == [(1, "first"), (2, "é")]
    finally:
        engine.dispose()


def test_backend_matches_the_case_id(request: pytest.FixtureRequest, catalog_url: str) -> None:
    case = request.node.callspec.id
    assert _backend(catalog_url) == case
    if case == "postgresql":
        assert sa.engine.make_url(catalog_url).drivername == "postgresql+psycopg"


def test_first_test_gets_an_empty_working_database(catalog_url: str) -> None:
    _use_database(catalog_url)
    if _backend(catalog_url) == "postgresql":
        _postgres_databases_seen.append(sa.engine.make_url(catalog_url).database or "")


def test_second_test_gets_another_empty_database(catalog_url: str) -> None:
    # The first test left a "probe" table behind; _use_database fails if we see it.
    _use_database(catalog_url)
    if _backend(catalog_url) == "postgresql":
        name = sa.engine.make_url(catalog_url).database or ""
        assert name.startswith("sg_")
        assert name not in _postgres_databases_seen
        _postgres_databases_seen.append(name)


@pytest.mark.parametrize("catalog_url", ["postgresql"], indirect=True)
def test_databases_of_finished_tests_were_dropped(catalog_url: str) -> None:
    if not _postgres_databases_seen:
        pytest.skip("run with the earlier tests of this module to check their clean-up")
    engine = sa.create_engine(catalog_url)
    try:
        with engine.connect() as conn:
            left = conn.execute(
                sa.text("SELECT datname FROM pg_database WHERE datname = ANY(:names)"),
                {"names": _postgres_databases_seen},
            ).all()
    finally:
        engine.dispose()
    assert left == []


def _run_fixture_alone(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    """Run a one-test suite using this conftest in a fresh pytest, without a server URL."""
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_url.py").write_text("def test_url(catalog_url):\n    assert catalog_url\n")
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "SYNTHGEN_TEST_POSTGRES_URL"}}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_server_url_skips_locally_and_fails_in_ci(tmp_path: Path) -> None:
    local = _run_fixture_alone(tmp_path, ci=None)
    assert local.returncode == 0, local.stdout + local.stderr
    assert "1 passed, 1 skipped" in local.stdout
    assert "SYNTHGEN_TEST_POSTGRES_URL is not set" in local.stdout

    ci = _run_fixture_alone(tmp_path, ci="true")
    assert ci.returncode == 1, ci.stdout + ci.stderr
    assert "1 passed, 1 error" in ci.stdout
    assert ".ci/run must start it (scripts/start-postgres.sh)" in ci.stdout

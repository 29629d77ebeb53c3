"""Crash safety and concurrency of the catalog, on SQLite and PostgreSQL (issue 13, item 8).

An export is only worth something if a writer killed at any instant leaves the catalog
whole: no version without its data, no gap in the version numbers, nothing reported as
committed lost, and crash leftovers that gc (and only gc) removes. The kills are real
SIGKILLs of a child process aimed at each phase of an export; the races are eight real
processes released together by a barrier. The worker code and the audit live in
``benchmarks/catalog_faults.py``, which also runs the longer recorded campaign.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text

# ``benchmarks`` is a folder of the repository, not part of the installed distribution.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.catalog_faults import (  # noqa: E402
    KILL_NAME,
    RACE_DISTINCT,
    RACE_IDENTICAL,
    RACE_KEY,
    RACE_SOURCE,
    ChildLog,
    KillCampaign,
    KillPlan,
    frame_digest,
    make_frame,
    plan_kills,
    run_race,
)
from pipelines.catalog import Catalog  # noqa: E402
from pipelines.catalog import catalog as catalog_module  # noqa: E402
from pipelines.catalog.catalog import GC_MIN_AGE_SECONDS  # noqa: E402
from pipelines.catalog.database import open_engine  # noqa: E402
from pipelines.catalog.storage import encode_table  # noqa: E402

KILLS = 20
SEED = 13
PROCESSES = 8


# ---------------------------------------------------------------------- kills
@pytest.mark.slow  # 20 child processes per database: about a second each
def test_sigkill_at_any_point_of_an_export_leaves_the_catalog_whole(
    catalog_url: str, tmp_path: Path
) -> None:
    with KillCampaign(catalog_url, tmp_path / "store", full_read_every=1) as campaign:
        reports = campaign.run(plan_kills(KILLS, seed=SEED))
        versions = len(campaign.known)
    problems = [f"kill {r.run} ({r.phase_label}): {p}" for r in reports for p in r.problems]
    assert problems == []
    assert len(reports) == KILLS
    # The kills really landed in different phases, some between the file and the commit
    # (so gc had leftovers to find), and the children really committed versions.
    phases = Counter(r.phase for r in reports)
    assert len(phases) >= 3, phases
    assert phases["stored"] + phases["write"] + phases["commit"] >= 1, phases
    assert sum(r.orphan_files + r.tmp_files for r in reports) >= 1
    assert versions >= KILLS // 2
    assert versions == sum(len(r.new_versions) for r in reports)


def test_the_audit_reports_damaged_versions_lost_commits_and_missing_leftovers(
    tmp_path: Path,
) -> None:
    """The kill test can fail: each kind of breakage it looks for is reported."""
    plan = KillPlan("idle", 1, 0.0)
    with KillCampaign(f"sqlite:///{tmp_path}/c.db", tmp_path / "store") as campaign:
        campaign.expect_run(1)
        catalog = campaign.catalog
        first = catalog.export(make_frame(1001), KILL_NAME).dataset
        honest = ChildLog(
            ["ready", "phase prepare 1", f"committed 1 {first.digest} 1001"], -9, True
        )
        assert campaign.audit(1, plan, honest).problems == []

        # The file of version 1 replaced by another (valid) table; a child that claims a
        # commit the catalog does not have, then dies "after the rename" leaving no file.
        make_frame(1002).to_parquet(catalog.storage.path_of(first.uri), index=False)
        lying = ChildLog(
            ["ready", "phase prepare 1", f"committed 2 {'0' * 64} 1002", "phase prepare 2"]
            + ["phase write", "phase stored"],
            -9,
            True,
        )
        report = campaign.audit(2, plan, lying)
        crashed = campaign.audit(3, plan, ChildLog(["Traceback", "DataError: boom"], 1, False))
    assert any("does not match its digest" in p for p in report.partial), report.partial
    assert report.lost == [f"{KILL_NAME}@2: printed as committed, not in catalog"]
    assert any("phase 'stored'; expected one of [(1, 0)]" in p for p in report.other), report
    assert crashed.other[0] == (
        "child was not killed as planned (exit 1): Traceback | DataError: boom"
    )


def test_kill_plans_are_seeded_and_aim_at_every_phase() -> None:
    plans = plan_kills(10, seed=SEED)
    assert plans == plan_kills(10, seed=SEED)
    assert plans != plan_kills(10, seed=SEED + 1)
    assert {p.target for p in plans} == {"prepare", "write", "stored", "commit", "idle"}
    assert plans[0].fires_on(f"phase prepare {plans[0].export}", plans[0].export)
    assert not plans[0].fires_on(f"phase prepare {plans[0].export}", plans[0].export + 1)


# ---------------------------------------------------------------------- races
@pytest.mark.slow  # 8 child processes per database
def test_eight_processes_export_and_reserve_at_the_same_instant(
    catalog_url: str, tmp_path: Path
) -> None:
    storage = tmp_path / "store"
    with Catalog(catalog_url, storage=storage) as catalog:  # created before the race
        catalog.export(make_frame(1), RACE_SOURCE)
        catalog.set_budget(RACE_SOURCE, 5.0, 1e-6)
    results = run_race(catalog_url, storage, processes=PROCESSES)
    assert [r["index"] for r in results] == list(range(PROCESSES))

    with Catalog(catalog_url, storage=storage) as catalog:
        # Distinct content to one name: versions 1..8, one per process, each digest once.
        distinct = [r["distinct"] for r in results]
        assert [r.get("error") for r in distinct] == [None] * PROCESSES, distinct
        assert sorted(r["version"] for r in distinct) == list(range(1, PROCESSES + 1))
        for i, r in enumerate(distinct):
            assert r["digest"] == frame_digest(RACE_KEY + i) and r["created"]
        stored = catalog.list(RACE_DISTINCT)
        assert [d.version for d in stored] == list(range(1, PROCESSES + 1))
        assert sorted(d.digest for d in stored) == sorted(r["digest"] for r in distinct)
        for d in stored:
            assert len(catalog.read(d.ref)) == d.row_count == len(make_frame(0))

        # Identical content: one version, created once, returned to all eight.
        identical = [r["identical"] for r in results]
        assert [r.get("error") for r in identical] == [None] * PROCESSES, identical
        assert sum(r["created"] for r in identical) == 1
        assert {(r["version"], r["digest"]) for r in identical} == {(1, frame_digest(RACE_KEY))}
        assert [d.version for d in catalog.list(RACE_IDENTICAL)] == [1]
        assert catalog.read(f"{RACE_IDENTICAL}@1").equals(make_frame(RACE_KEY))
        # Racing writers of one content-addressed file leave no temporary file behind.
        assert catalog.gc(min_age=0, dry_run=True) == []

        # Eight reservations of epsilon 1 against a budget of 5: five fit, three refused.
        reserve = [r["reserve"] for r in results]
        granted = {i: r["charge"] for i, r in enumerate(reserve) if "charge" in r}
        refused = [r for r in reserve if "charge" not in r]
        assert len(granted) == 5 and len(refused) == 3, reserve
        for r in refused:
            assert r["error"] == "BudgetExceededError", r
            assert "but only epsilon=0, delta=" in r["message"], r
            assert "remain of the total epsilon=5, delta=1e-06" in r["message"], r
        budget = catalog.budget(RACE_SOURCE)
        assert sorted(c["id"] for c in budget["charges"]) == sorted(granted.values())
        assert {c["label"] for c in budget["charges"]} == {f"race job {i}" for i in granted}
        assert {c["status"] for c in budget["charges"]} == {"reserved"}
        assert budget["spent_epsilon"] == pytest.approx(5.0)
        assert budget["remaining_epsilon"] == 0.0


# ------------------------------------------------------ bugs this suite found (fixed)
@pytest.mark.parametrize("catalog_url", ["postgresql"], indirect=True)
def test_two_processes_creating_one_postgres_catalog_both_open_it(
    catalog_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """database.py promises that processes opening a new catalog at once all succeed."""
    open_engine(catalog_url).dispose()  # the tables exist, the catalog is not created yet
    storage = tmp_path / "store"
    paused, release = threading.Event(), threading.Event()
    real_open_engine = catalog_module.open_engine

    def open_engine_paused_at_commit(url: str):  # type: ignore[no-untyped-def]
        engine = real_open_engine(url)

        @event.listens_for(engine, "commit")
        def hold(_connection: Any) -> None:
            if not release.is_set():  # its storage_root row is inserted, not committed
                paused.set()
                release.wait(30)

        return engine

    opened: dict[str, Any] = {}

    def open_catalog(who: str) -> None:
        try:
            opened[who] = Catalog(catalog_url, storage=storage)
        except Exception as exc:  # re-raised in the test thread below
            opened[who] = exc

    monkeypatch.setattr(catalog_module, "open_engine", open_engine_paused_at_commit)
    first = threading.Thread(target=open_catalog, args=("first",))
    first.start()
    second = threading.Thread(target=open_catalog, args=("second",))
    try:
        assert paused.wait(30), "the first process never reached its commit"
        monkeypatch.setattr(catalog_module, "open_engine", real_open_engine)
        second.start()
        _wait_for_a_lock_wait(catalog_url)  # the second waits on the first's transaction
    finally:
        release.set()
        first.join(60)
        if second.ident is not None:
            second.join(60)
    for who in ("first", "second"):
        if isinstance(opened.get(who), Exception):
            raise opened[who]
    assert opened["first"].storage.url == opened["second"].storage.url
    for catalog in opened.values():
        catalog.close()


def _wait_for_a_lock_wait(url: str, timeout: float = 10.0) -> None:
    """Until a session of this database waits on a lock (or ``timeout`` passes)."""
    engine = create_engine(url)
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                if connection.execute(query).scalar():
                    return
            time.sleep(0.01)
    finally:
        engine.dispose()


def test_gc_during_a_retried_export_keeps_the_leftover_file_it_reuses(
    catalog_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = Catalog(catalog_url, storage=tmp_path / "store")
    other_process = Catalog(catalog_url)  # its gc keeps the default min_age
    try:
        frame = make_frame(7)
        # An export that died after writing its file, long ago: a leftover gc may remove.
        encoded, _, digest = encode_table(frame)
        leftover = catalog.storage.put_table(encoded, digest)
        long_ago = time.time() - 2 * GC_MIN_AGE_SECONDS
        os.utime(catalog.storage.path_of(leftover.uri), (long_ago, long_ago))
        put_table = catalog.storage.put_table

        def put_table_then_gc(data, digest):  # type: ignore[no-untyped-def]
            stored = put_table(data, digest)
            other_process.gc()  # lands between the retried export's file write and commit
            return stored

        monkeypatch.setattr(catalog.storage, "put_table", put_table_then_gc)
        info = catalog.export(frame, "retried").dataset
        assert catalog.storage.exists(info.uri), f"{info.ref} points at a deleted file"
        assert catalog.read(info.ref).equals(frame)
    finally:
        catalog.close()
        other_process.close()

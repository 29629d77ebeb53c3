"""The scheduler: schedules stored in the catalog database, cron semantics, and due jobs
run in subprocesses (a fake runner here) with their outcomes recorded in the catalog."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from pipelines import scheduler
from pipelines.catalog import Catalog
from synthgen.errors import ConfigError

#: Stands in for ``synthgen run SPEC --catalog URL``; what it does is set by the spec's
#: ``fake`` field, so each scheduled job can succeed, fail a gate, crash or be slow.
FAKE_RUNNER = textwrap.dedent(
    """
    import os, sys, time
    import yaml

    args = sys.argv[1:]
    spec_path = args[0]
    url = args[args.index("--catalog") + 1] if "--catalog" in args else os.environ[
        "SYNTHGEN_CATALOG_URL"]
    try:
        spec = yaml.safe_load(open(spec_path))
    except FileNotFoundError:
        print(f"error: job spec {spec_path!r} does not exist; check the path", file=sys.stderr)
        sys.exit(2)
    mode = spec.get("fake", "succeed")
    log = spec.get("log")
    if log:
        with open(log, "a") as f:
            f.write(f"start {os.getpid()}\\n")
    time.sleep(spec.get("sleep", 0))
    if mode != "noop":
        from pipelines.catalog import Catalog

        with Catalog(url) as catalog:
            run = catalog.start_run(spec["name"], spec)
            if mode == "crash":
                print("boom: out of memory", file=sys.stderr)
                os._exit(3)
            status = "succeeded" if mode == "succeed" else "gate_failed"
            catalog.finish_run(run, status, stages={"fake": {"status": "ok"}})
    if log:
        with open(log, "a") as f:
            f.write(f"end {os.getpid()}\\n")
    sys.exit(1 if mode == "gate_fail" else 0)
    """
)


@pytest.fixture
def env(catalog_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The catalog URL, with the fake runner in place of ``synthgen run``."""
    monkeypatch.setenv("SYNTHGEN_STORAGE", str(tmp_path / "store"))
    monkeypatch.delenv("SYNTHGEN_CATALOG_URL", raising=False)
    runner = tmp_path / "fake_runner.py"
    runner.write_text(FAKE_RUNNER)
    monkeypatch.setattr(scheduler, "RUN_COMMAND", [sys.executable, str(runner)])
    return catalog_url


def write_spec(folder: Path, name: str, **fields: object) -> Path:
    """A valid job spec (the fake runner's directives ``fake``/``sleep``/``log`` make it
    one only the fake runner reads: schedule those with ``validate=False``)."""
    path = folder / f"{name}.yaml"
    fields = {"source": {"bundled": "adult"}, "export": {"name": f"{name}_out"}, **fields}
    lines = [f"name: {name}"] + [f"{key}: {json.dumps(value)}" for key, value in fields.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def runs_by_name(url: str) -> dict[str, list[dict]]:
    with Catalog(url) as catalog:
        runs = catalog.runs(limit=500)
    grouped: dict[str, list[dict]] = {}
    for run in runs:
        grouped.setdefault(run["name"], []).append(run)
    return grouped


# ---------------------------------------------------------------------- schedules
def test_add_list_remove_persist_in_the_catalog_database(env: str, tmp_path: Path) -> None:
    nightly = write_spec(tmp_path, "nightly", schedule={"cron": "0 2 * * *"})
    hourly = write_spec(tmp_path, "hourly")

    added = scheduler.add_schedule(nightly, catalog_url=env, timezone="Europe/Paris")
    assert added["id"] == "nightly"  # the spec's name
    assert added["cron"] == "0 2 * * *"  # taken from the spec's schedule.cron
    assert added["spec"] == str(nightly.resolve())
    assert added["timezone"] == "Europe/Paris"
    next_run = datetime.fromisoformat(added["next_run_time"])
    assert (next_run.hour, next_run.minute) == (2, 0) and next_run.utcoffset() is not None
    scheduler.add_schedule(hourly, "0 * * * *", catalog_url=env, job_id="every-hour")

    # Every call opens a new scheduler: what it sees was read back from the database.
    listed = scheduler.list_schedules(env)
    assert {s["id"]: s["cron"] for s in listed} == {
        "nightly": "0 2 * * *",
        "every-hour": "0 * * * *",
    }
    times = [datetime.fromisoformat(s["next_run_time"]) for s in listed]
    assert times == sorted(times)  # soonest first
    engine = create_engine(env)
    try:
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT id FROM apscheduler_jobs")).scalars().all()
    finally:
        engine.dispose()
    assert sorted(stored) == ["every-hour", "nightly"]

    # The stored job is plain data: the job function by import path, absolute spec, URL.
    with scheduler._job_store(env) as store:
        job = store.get_job("nightly")
        assert job.func_ref == "pipelines.scheduler:run_scheduled"
        assert job.args[0] == str(nightly.resolve())
        assert (job.coalesce, job.max_instances) == (True, 1)
        assert job.misfire_grace_time == scheduler.MISFIRE_GRACE_SECONDS

    replaced = scheduler.add_schedule(
        nightly, "30 3 * * 1-5", catalog_url=env, replace=True, timezone="UTC"
    )
    assert replaced["cron"] == "30 3 * * 1-5"
    assert datetime.fromisoformat(replaced["next_run_time"]).weekday() < 5  # Monday-Friday

    removed = scheduler.remove_schedule("nightly", env)
    assert removed["cron"] == "30 3 * * 1-5"
    assert [s["id"] for s in scheduler.list_schedules(env)] == ["every-hour"]


def test_bad_schedules_are_refused_with_the_fix(env: str, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "job")
    with pytest.raises(
        ConfigError, match=r"cron line '61 2 \* \* \*' is not valid.*'0 2 \* \* \*'"
    ):
        scheduler.add_schedule(spec, "61 2 * * *", catalog_url=env)
    with pytest.raises(ConfigError, match=r"cron line '0 2 \* \*' is not valid: it has 4 fields"):
        scheduler.add_schedule(spec, "0 2 * *", catalog_url=env)
    with pytest.raises(ConfigError, match=r"has no schedule.cron; give --cron"):
        scheduler.add_schedule(spec, catalog_url=env)
    with pytest.raises(ConfigError, match=r"job spec .*missing.yaml' does not exist"):
        scheduler.add_schedule(tmp_path / "missing.yaml", "0 2 * * *", catalog_url=env)
    with pytest.raises(ConfigError, match=r"time zone 'Mars/Olympus' is not known"):
        scheduler.add_schedule(spec, "0 2 * * *", catalog_url=env, timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match=r"schedule id 'bad id' is not valid"):
        scheduler.add_schedule(spec, "0 2 * * *", catalog_url=env, job_id="bad id")

    scheduler.add_schedule(spec, "0 2 * * *", catalog_url=env)
    with pytest.raises(ConfigError, match=r"schedule 'job' already exists .*pass --replace"):
        scheduler.add_schedule(spec, "0 3 * * *", catalog_url=env)
    assert [s["cron"] for s in scheduler.list_schedules(env)] == ["0 2 * * *"]  # unchanged

    with pytest.raises(ConfigError, match=r"no schedule 'nope'; known ids: job"):
        scheduler.remove_schedule("nope", env)


def test_cron_lines_mean_what_they_mean_to_cron() -> None:
    wednesday = datetime(2024, 1, 3, 12, 0, tzinfo=UTC)

    def next_day(line: str) -> str:
        fire = scheduler.parse_cron(line, "UTC").get_next_fire_time(None, wednesday)
        return fire.strftime("%a %d")

    assert next_day("0 0 * * 0") == "Sun 07"  # 0 is Sunday (APScheduler 3 alone: Monday)
    assert next_day("0 0 * * 7") == "Sun 07"
    assert next_day("0 0 * * 1-5") == "Thu 04"
    assert next_day("0 0 * * */2") == "Thu 04"  # Sun, Tue, Thu, Sat
    assert next_day("0 0 * * fri-sun") == "Fri 05"
    assert next_day("0 0 13 * 6") == "Sat 06"  # day-of-month OR day-of-week
    assert next_day("0 0 13 * *") == "Sat 13"
    assert next_day("@weekly") == "Sun 07"
    every_second = scheduler.parse_cron("* * * * * *", "UTC")  # optional leading seconds
    assert every_second.get_next_fire_time(None, wednesday + timedelta(seconds=1.5)) == (
        wednesday + timedelta(seconds=2)
    )
    with pytest.raises(ConfigError, match=r"'\* \* \* \* 8' is not valid: day of week '8'"):
        scheduler.parse_cron("* * * * 8", "UTC")
    with pytest.raises(ConfigError, match=r"range '5-1' runs backwards"):
        scheduler.parse_cron("0 0 * * 5-1", "UTC")


# ---------------------------------------------------------------------- running
def test_due_jobs_run_and_every_outcome_is_recorded(
    env: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pipelines.scheduler")
    every_second = "* * * * * *"
    log = tmp_path / "slow.log"
    specs = {
        "ok": write_spec(tmp_path, "ok"),
        "gate": write_spec(tmp_path, "gate", fake="gate_fail"),
        "crash": write_spec(tmp_path, "crash", fake="crash"),
        "gone": write_spec(tmp_path, "gone"),
        "slow": write_spec(tmp_path, "slow", fake="noop", sleep=1.5, log=str(log)),
    }
    for spec in specs.values():
        scheduler.add_schedule(spec, every_second, catalog_url=env, validate=False)
    specs["gone"].unlink()  # deleted after scheduling: the runner fails before recording

    scheduler.start(env, run_for=6)

    runs = runs_by_name(env)
    assert runs["ok"] and {r["status"] for r in runs["ok"]} == {"succeeded"}
    assert runs["ok"][0]["stages"] == {"fake": {"status": "ok"}}
    # A failed gate is recorded by the runner only: no second, scheduler-made run.
    assert runs["gate"] and {r["status"] for r in runs["gate"]} == {"gate_failed"}
    # Killed mid-run: the run it left "running" is marked failed, with the exit and stderr.
    assert runs["crash"] and {r["status"] for r in runs["crash"]} == {"failed"}
    assert all("exited with code 3" in r["error"] for r in runs["crash"])
    assert "boom: out of memory" in runs["crash"][0]["error"]
    assert all(r["finished_at"] for name in runs for r in runs[name])
    # The spec is gone, so the runner recorded nothing: the scheduler did, under its name.
    assert runs["gone"] and {r["status"] for r in runs["gone"]} == {"failed"}
    assert "exited with code 2" in runs["gone"][0]["error"]
    assert "does not exist" in runs["gone"][0]["error"]
    assert "slow" not in runs  # exit 0 without a run: nothing to add

    # max_instances=1: the slow job (1.5 s, due every second) never overlaps itself ...
    events = log.read_text().split()[::2]
    assert events and events.count("start") >= 1
    assert events[: 2 * (len(events) // 2)] == ["start", "end"] * (len(events) // 2)
    # ... because the runs due while it was busy were skipped, and said so.
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("job slow: still running; skipped") for m in messages)
    assert any(m.startswith("job ok: succeeded (run #") for m in messages)
    assert any(m.startswith("job gone: failed before recording a run") for m in messages)


def test_missed_runs_coalesce_into_one_within_the_grace_time(env: str, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    recent, old = now - timedelta(minutes=20), now - timedelta(hours=3)
    late = write_spec(tmp_path, "late")
    too_late = write_spec(tmp_path, "too_late")
    scheduler.add_schedule(late, f"{recent.minute} {recent.hour} * * *", catalog_url=env,
                           timezone="UTC")  # fmt: skip
    scheduler.add_schedule(too_late, f"{old.minute} {old.hour} * * *", catalog_url=env,
                           timezone="UTC")  # fmt: skip
    with scheduler._job_store(env) as store:  # as if the scheduler had been down for days
        store.modify_job("late", next_run_time=recent - timedelta(days=3))
        store.modify_job("too_late", next_run_time=old - timedelta(days=2))

    scheduler.start(env, run_for=1)

    runs = runs_by_name(env)
    assert len(runs["late"]) == 1  # four missed daily runs, the last 20 min ago: one run
    assert "too_late" not in runs  # the last missed run is 3 h late: beyond the grace time
    after = {
        s["id"]: datetime.fromisoformat(s["next_run_time"]) for s in scheduler.list_schedules(env)
    }
    assert after["late"] > now and after["too_late"] > now  # next: tomorrow, not a backlog


def test_one_scheduler_per_catalog(env: str) -> None:
    url = scheduler.resolve_catalog_url(env)
    busy = pytest.raises(ConfigError, match="another 'synthgen scheduler start' is already")
    with scheduler._only_scheduler(url), busy:
        scheduler.start(env, run_for=0)
    scheduler.start(env, run_for=0)  # released: starts (and stops) normally


# ---------------------------------------------------------------------- CLI
def test_cli(env: str, tmp_path: Path) -> None:
    from pipelines.cli import OneLineErrors

    app = typer.Typer(cls=OneLineErrors, no_args_is_help=True, pretty_exceptions_enable=False)
    scheduler.register(app)
    runner = CliRunner()
    spec = write_spec(tmp_path, "adult_nightly", schedule={"cron": "0 2 * * *"})

    added = runner.invoke(app, ["schedule", "add", str(spec), "--catalog", env])
    assert added.exit_code == 0, added.output
    assert "scheduled adult_nightly: '0 2 * * *'" in added.stdout
    listed = runner.invoke(app, ["schedule", "list", "--json", "--catalog", env])
    assert listed.exit_code == 0, listed.output
    [entry] = json.loads(listed.stdout)
    assert (entry["id"], entry["cron"], entry["spec"]) == (
        "adult_nightly", "0 2 * * *", str(spec.resolve())
    )  # fmt: skip

    again = runner.invoke(app, ["schedule", "add", str(spec), "--catalog", env])
    assert again.exit_code == 2
    assert again.stderr.count("\n") == 1 and "already exists" in again.stderr
    bad = runner.invoke(app, ["schedule", "add", str(spec), "--cron", "every day", "--id", "x",
                              "--catalog", env])  # fmt: skip
    assert bad.exit_code == 2 and bad.stderr.startswith("error: cron line 'every day'")

    unknown = runner.invoke(app, ["schedule", "remove", "nope", "--catalog", env])
    assert unknown.exit_code == 2
    assert unknown.stderr == (
        "error: no schedule 'nope'; known ids: adult_nightly (see synthgen schedule list)\n"
    )
    removed = runner.invoke(app, ["schedule", "remove", "adult_nightly", "--catalog", env])
    assert removed.exit_code == 0 and "removed schedule adult_nightly" in removed.stdout
    started = runner.invoke(app, ["scheduler", "start", "--run-for", "0", "--catalog", env])
    assert started.exit_code == 0, started.output


def test_a_broken_spec_is_refused_when_scheduled(env: str, tmp_path: Path) -> None:
    broken = write_spec(tmp_path, "broken", model={"backend": "nope"})
    with pytest.raises(ConfigError, match="model.backend: unknown backend 'nope'"):
        scheduler.add_schedule(broken, "0 2 * * *", catalog_url=env)
    assert scheduler.list_schedules(env) == []

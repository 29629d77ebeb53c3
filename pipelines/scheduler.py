"""Cron schedules for batch jobs: ``synthgen schedule add|list|remove`` and
``synthgen scheduler start``.

Schedules live in the catalog database itself (APScheduler 3's ``SQLAlchemyJobStore``,
table ``apscheduler_jobs``, which the catalog's migrations leave alone), so every
machine that can reach the catalog sees the same schedules and a restarted scheduler
picks up where it stopped. A stored job holds only plain data: the import path of
``run_scheduled``, the absolute spec path, the catalog URL and a ``CrontabTrigger``
whose state is the cron line and its time zone.

Each due job runs ``synthgen run SPEC`` in a subprocess, so a crashing or leaking job
cannot take the scheduler down. Overlaps and misfires follow one policy:

- ``max_instances=1``: a run still going when the next one is due makes the scheduler
  skip that run (logged), never start a second copy;
- ``coalesce=True`` with ``misfire_grace_time`` (an hour): the runs missed while the
  scheduler was down become one run, if the last of them is less than an hour late,
  else none (logged as missed);
- one scheduler per catalog: ``start`` takes a lock (a PostgreSQL advisory lock, or a
  lock file beside the SQLite file), because two schedulers would each run every job.

Cron lines mean what they mean to cron (0 or 7 is Sunday; when both day-of-month and
day-of-week are restricted a day matching either runs), which APScheduler 3's own
``CronTrigger.from_crontab`` does not do; an optional sixth, leading field gives seconds.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import text
from sqlalchemy.engine import make_url

from synthgen.errors import ConfigError

log = logging.getLogger(__name__)

#: Table of the job store, in the catalog database (ignored by the catalog's migrations).
TABLE = "apscheduler_jobs"
#: The function every stored job calls, by import path (the job store keeps only this).
JOB_FUNC = "pipelines.scheduler:run_scheduled"
#: A missed run still happens if the scheduler gets to it within this many seconds.
MISFIRE_GRACE_SECONDS = 3600
#: The running scheduler re-reads the job store this often, to see schedules added,
#: replaced or removed by other processes (APScheduler only wakes for its own changes).
POLL_SECONDS = 10.0
#: The runner command (the spec path and ``--catalog URL`` follow). ``-c`` rather than
#: ``-m pipelines.cli`` so it works whether or not that module has a ``__main__`` guard.
#: Tests replace it with a fake runner.
RUN_COMMAND: list[str] = [sys.executable, "-c", "from pipelines.cli import main; main()", "run"]
#: Characters of the runner's stderr kept in a failed run's error.
ERROR_TAIL_CHARS = 2000
#: Key of the PostgreSQL advisory lock held by the one running scheduler of a catalog.
SCHEDULER_LOCK = 0x5347_0002

CRON_EXAMPLE = (
    "give 5 fields 'minute hour day-of-month month day-of-week' (e.g. '0 2 * * *' for "
    "02:00 every day, '30 6 * * 1-5' for 06:30 Monday to Friday), optionally a leading "
    "seconds field, or @hourly, @daily, @weekly, @monthly, @yearly"
)
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
#: Cron numbers days from Sunday = 0 (7 is Sunday too); APScheduler 3 from Monday = 0,
#: so day-of-week fields are translated to names, which mean the same to both.
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


# ---------------------------------------------------------------------- cron lines
def _day_number(token: str) -> int:
    if token.isdigit() and int(token) <= 7:
        return int(token)
    if token in _DAYS:
        return _DAYS.index(token)
    raise ValueError(f"day of week {token!r} is not 0-7 or sun..sat")


def _cron_days(field: str) -> str:
    """A cron day-of-week field as APScheduler day names ('1-5' -> 'mon,tue,...')."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.lower().split(","):
        base, slash, step_text = item.partition("/")
        step = int(step_text) if step_text.isdigit() else 0
        if slash and step < 1:
            raise ValueError(
                f"step {step_text!r} in day of week {item!r} must be a positive number"
            )
        if base == "*":
            low, high = 0, 6
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _day_number(first), _day_number(last)
            if high == 0 < low:  # 'fri-sun'
                high = 7
            if low > high:
                raise ValueError(f"day-of-week range {base!r} runs backwards")
        else:
            low = _day_number(base)
            high = 7 if slash else low  # '1/2': from Monday on, every other day
        days.update(day % 7 for day in range(low, high + 1, step or 1))
    return ",".join(_DAYS[day] for day in sorted(days))


def _build_trigger(expr: str, zone: tzinfo) -> BaseTrigger:
    """APScheduler trigger(s) with cron's meaning of ``expr`` (see the module docstring)."""
    fields = _ALIASES.get(expr.lower(), expr).split()
    if len(fields) not in (5, 6):
        raise ValueError(f"it has {len(fields)} fields")
    second = fields[0] if len(fields) == 6 else "0"
    minute, hour, day, month, weekday = fields[-5:]
    common: dict[str, Any] = dict(
        second=second, minute=minute, hour=hour, month=month, timezone=zone
    )
    days = _cron_days(weekday)
    if not day.startswith("*") and not weekday.startswith("*"):
        # cron: a day matching either field runs; CronTrigger alone would need both.
        return OrTrigger(
            [
                CronTrigger(day=day, day_of_week="*", **common),
                CronTrigger(day="*", day_of_week=days, **common),
            ]
        )
    return CronTrigger(day=day, day_of_week=days, **common)


def _zone(name: str) -> tzinfo:
    from apscheduler.util import astimezone

    try:
        return astimezone(name)
    except (KeyError, ValueError) as exc:
        raise ConfigError(
            f"time zone {name!r} is not known ({exc}); use an IANA name such as "
            "'Europe/Paris' or 'UTC'"
        ) from None


def local_timezone() -> str:
    """The machine's IANA time zone name (cron runs in local time), else UTC."""
    from tzlocal import get_localzone_name

    try:
        return get_localzone_name() or "UTC"
    except Exception:  # tzlocal raises its own errors for odd /etc/localtime setups
        return "UTC"


class CrontabTrigger(BaseTrigger):
    """A cron line as a trigger that is stored as the line itself.

    Its pickled state (in the job store) is ``{"version", "expr", "timezone"}``, so a
    stored schedule stays readable (``list`` shows the line the user gave) and does not
    depend on APScheduler's internal field classes.
    """

    __slots__ = ("expr", "timezone", "_trigger")

    def __init__(self, expr: str, timezone: str | None = None) -> None:
        if not isinstance(expr, str) or not expr.strip():
            raise ConfigError(f"cron line {expr!r} is empty; {CRON_EXAMPLE}")
        self.expr = " ".join(expr.split())
        self.timezone = timezone or local_timezone()
        try:
            self._trigger = _build_trigger(self.expr, _zone(self.timezone))
        except ValueError as exc:
            raise ConfigError(
                f"cron line {self.expr!r} is not valid: {exc}; {CRON_EXAMPLE}"
            ) from None

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        return self._trigger.get_next_fire_time(previous_fire_time, now)

    def __getstate__(self) -> dict[str, Any]:
        return {"version": 1, "expr": self.expr, "timezone": self.timezone}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("version", 1) > 1:
            raise ValueError(f"CrontabTrigger state version {state['version']} is newer than 1")
        self.expr, self.timezone = state["expr"], state["timezone"]
        self._trigger = _build_trigger(self.expr, _zone(self.timezone))

    def __str__(self) -> str:
        return f"cron[{self.expr}]"

    def __repr__(self) -> str:
        return f"<CrontabTrigger {self.expr!r} ({self.timezone})>"


def parse_cron(expr: str, timezone: str | None = None) -> CrontabTrigger:
    """Check a cron line; a bad one raises ConfigError naming it, with an example."""
    return CrontabTrigger(expr, timezone)


# ---------------------------------------------------------------------- job store
def resolve_catalog_url(url: str | None = None) -> str:
    """The resolved catalog URL with an absolute SQLite path: the scheduler and its jobs
    may run from another working directory than ``schedule add``."""
    from pipelines.catalog import resolve_url

    parsed = make_url(resolve_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        parsed = parsed.set(database=str(Path(parsed.database).expanduser().resolve()))
    return parsed.render_as_string(hide_password=False)


class _Scheduler(BackgroundScheduler):
    """APScheduler 3's loop runs one more pass over the due jobs after ``shutdown``: it
    submits them to the stopped executor (which fails) and still moves their next run
    time on, so a run due then, or every missed run when a ``schedule list`` closes its
    store, would be lost. This scheduler makes no pass once stopped, nor ever when it is
    only used to read and write the job store."""

    store_only = False

    def _process_jobs(self) -> float | None:
        if self.store_only or self.state == STATE_STOPPED:
            return None
        return super()._process_jobs()


def _scheduler(url: str, *, store_only: bool = False) -> _Scheduler:
    """A scheduler on the catalog database (created or migrated first by ``Catalog``).

    The job store uses the catalog's engine, so it inherits the catalog's connection
    rules (SQLite: WAL, a 60 s busy timeout, serialised writes; PostgreSQL: pre-ping).
    """
    from pipelines.catalog import Catalog

    catalog = Catalog(url)
    store = SQLAlchemyJobStore(engine=catalog.engine, tablename=TABLE)
    scheduler = _Scheduler(
        jobstores={"default": store},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": MISFIRE_GRACE_SECONDS,
        },
        timezone="UTC",
    )
    scheduler.store_only = store_only
    return scheduler


@contextmanager
def _job_store(url: str) -> Iterator[_Scheduler]:
    """A started but paused scheduler: reads and writes the job store, runs nothing."""
    scheduler = _scheduler(url, store_only=True)
    scheduler.start(paused=True)
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)


def describe(job: Job) -> dict[str, Any]:
    """A stored job as plain data (what ``schedule list --json`` prints)."""
    trigger = job.trigger
    next_run = getattr(job, "next_run_time", None)
    return {
        "id": job.id,
        "spec": job.args[0] if job.args else None,
        "cron": trigger.expr if isinstance(trigger, CrontabTrigger) else str(trigger),
        "timezone": getattr(trigger, "timezone", None),
        "next_run_time": next_run.isoformat() if next_run is not None else None,
    }


# ---------------------------------------------------------------------- specs
def _read_spec(path: Path, *, validate: bool = True) -> dict[str, Any]:
    """The spec file as a dict. ``validate`` runs the runner's own checks first, so a
    broken spec is refused when it is scheduled, not at 2 am."""
    import yaml

    if validate:
        from pipelines.jobs.spec import load_spec

        load_spec(path)
    if not path.is_file():
        raise ConfigError(f"job spec {str(path)!r} does not exist; check the path")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"job spec {str(path)!r}{line} is not valid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"job spec {str(path)!r} must be a YAML mapping (name, source, ...)")
    return data


def _spec_cron(spec: dict[str, Any], path: Path) -> str:
    schedule = spec.get("schedule")
    cron = schedule.get("cron") if isinstance(schedule, dict) else None
    if schedule is not None and not isinstance(schedule, dict):
        raise ConfigError(
            f"job spec {str(path)!r}: 'schedule' must be a mapping like "
            'schedule: {cron: "0 2 * * *"}'
        )
    if not isinstance(cron, str):
        raise ConfigError(
            f'job spec {str(path)!r} has no schedule.cron; give --cron "0 2 * * *" or add '
            'schedule: {cron: "0 2 * * *"} to the spec'
        )
    return cron


def _spec_name(spec_path: str, fallback: str | None = None) -> str:
    """The name the runner records the job's runs under (the spec's ``name``)."""
    try:
        name = _read_spec(Path(spec_path), validate=False).get("name")
    except (ConfigError, OSError):
        name = None
    return name if isinstance(name, str) and name else fallback or Path(spec_path).stem


# ---------------------------------------------------------------------- schedules
def add_schedule(
    spec_path: str | os.PathLike,
    cron: str | None = None,
    *,
    catalog_url: str | None = None,
    job_id: str | None = None,
    replace: bool = False,
    timezone: str | None = None,
    validate: bool = True,
) -> dict[str, Any]:
    """Schedule ``synthgen run SPEC`` on a cron line (default: the spec's schedule.cron).

    The id defaults to the spec's ``name`` (else the file stem); an id already scheduled
    is refused unless ``replace``. ``timezone`` (IANA name) defaults to this machine's.
    """
    from pipelines.catalog.catalog import check_name

    path = Path(spec_path).expanduser().resolve()
    spec = _read_spec(path, validate=validate)
    trigger = parse_cron(cron if cron is not None else _spec_cron(spec, path), timezone)
    name = spec.get("name") if isinstance(spec.get("name"), str) else None
    job_id = check_name(job_id or name or path.stem, "schedule id")
    url = resolve_catalog_url(catalog_url)
    with _job_store(url) as scheduler:
        existing = scheduler.get_job(job_id)
        if existing is not None and not replace:
            raise _duplicate(existing)
        try:
            job = scheduler.add_job(
                JOB_FUNC,
                trigger=trigger,
                args=[str(path), url],
                kwargs={"name": name or job_id},
                id=job_id,
                name=job_id,
                replace_existing=replace,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=MISFIRE_GRACE_SECONDS,
            )
        except ConflictingIdError:
            raise _duplicate(scheduler.get_job(job_id)) from None
        return describe(scheduler.get_job(job.id) or job)


def _duplicate(job: Job | None) -> ConfigError:
    what = f" ({describe(job)['cron']!r}, {describe(job)['spec']})" if job is not None else ""
    job_id = job.id if job is not None else "?"
    return ConfigError(
        f"schedule {job_id!r} already exists{what}; pass --replace to replace it or "
        "--id to add another schedule"
    )


def list_schedules(catalog_url: str | None = None) -> list[dict[str, Any]]:
    """Every stored schedule, soonest first (a paused one, next_run_time None, last)."""
    with _job_store(resolve_catalog_url(catalog_url)) as scheduler:
        return [describe(job) for job in scheduler.get_jobs()]


def remove_schedule(job_id: str, catalog_url: str | None = None) -> dict[str, Any]:
    """Delete a schedule; returns what it was. An unknown id lists the known ones."""
    with _job_store(resolve_catalog_url(catalog_url)) as scheduler:
        job = scheduler.get_job(job_id)
        try:
            if job is None:
                raise JobLookupError(job_id)
            scheduler.remove_job(job_id)
        except JobLookupError:
            known = ", ".join(sorted(j.id for j in scheduler.get_jobs())) or "none"
            raise ConfigError(
                f"no schedule {job_id!r}; known ids: {known} (see synthgen schedule list)"
            ) from None
        return describe(job)


# ---------------------------------------------------------------------- one run
def _command(spec_path: str, url: str) -> tuple[list[str], dict[str, str]]:
    """The runner's argv and environment. The URL goes in the environment always and on
    the command line only without a password (argv is visible to every local user)."""
    env = {**os.environ, "SYNTHGEN_CATALOG_URL": url}
    command = [*RUN_COMMAND, spec_path]
    if make_url(url).password is None:
        command += ["--catalog", url]
    return command, env


def _tail(text_: str) -> str:
    text_ = text_.strip()
    return text_ if len(text_) <= ERROR_TAIL_CHARS else "..." + text_[-ERROR_TAIL_CHARS:]


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _runs_of(url: str, name: str, after: int) -> list[dict[str, Any]]:
    from pipelines.catalog import Catalog

    with Catalog(url) as catalog:
        return [r for r in catalog.runs(limit=500) if r["id"] > after and r["name"] == name]


def _last_run_id(url: str) -> int:
    from pipelines.catalog import Catalog

    with Catalog(url) as catalog:
        runs = catalog.runs(limit=1)
    return runs[0]["id"] if runs else 0


def run_scheduled(spec_path: str, catalog_url: str, name: str | None = None) -> dict[str, Any]:
    """Run one scheduled job in a subprocess and make sure its outcome is in the catalog.

    The runner records its own run (exit 0: succeeded, 1: gate failed). When it fails
    without one (exit 2 on a deleted or broken spec, a crash at import), a failed run is
    recorded here with its stderr; a run it left "running" (killed mid-way) is marked
    failed. Never raises: the outcome is returned and logged.
    """
    run_name = _spec_name(spec_path, name)
    outcome: dict[str, Any] = {"name": run_name, "spec": spec_path, "run_id": None}
    log.info("job %s: starting (synthgen run %s)", run_name, spec_path)
    started = time.monotonic()
    try:
        before = _last_run_id(catalog_url)
    except Exception as exc:  # the catalog is down: the runner will fail and say why
        log.warning("job %s: cannot read the catalog before the run: %s", run_name, exc)
        before = None
    command, env = _command(spec_path, catalog_url)
    try:
        proc = subprocess.run(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
        )
        code, stderr = proc.returncode, proc.stderr or proc.stdout
    except OSError as exc:
        code, stderr = 127, f"cannot start the runner {command[0]!r}: {exc}"
    outcome.update(exit_code=code, seconds=round(time.monotonic() - started, 3))
    try:
        runs = _runs_of(catalog_url, run_name, before) if before is not None else []
    except Exception as exc:
        log.error(
            "job %s: %s; cannot read the catalog after the run: %s", run_name, _exit_text(code), exc
        )
        outcome["status"] = "succeeded" if code == 0 else "failed"
        return outcome
    run = runs[-1] if runs else None  # runs() is newest first: the oldest new one is ours
    detail = f"{_exit_text(code)}: {_tail(stderr)}" if stderr.strip() else _exit_text(code)
    try:
        run = _reconcile(catalog_url, run_name, spec_path, code, detail, run)
    except Exception as exc:
        log.error("job %s: %s; cannot record the outcome in the catalog: %s", run_name, detail, exc)
    if run is not None and code == 0:
        log.info(
            "job %s: %s (run #%s) in %.1fs", run_name, run["status"], run["id"], outcome["seconds"]
        )
    elif code == 0:
        log.info(
            "job %s: exited with code 0 in %.1fs (no run recorded)", run_name, outcome["seconds"]
        )
    outcome["run_id"] = run["id"] if run else None
    outcome["status"] = run["status"] if run else ("succeeded" if code == 0 else "failed")
    return outcome


def _reconcile(
    url: str, name: str, spec_path: str, code: int, detail: str, run: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Make a failed runner's outcome visible in the catalog; returns the run (or None).

    No run recorded and a non-zero exit: record a failed one. A run left "running" and a
    non-zero exit (killed mid-way): mark it failed, keeping its stages. A run the runner
    finished (gate failed, failed with its own message) is left as it is.
    """
    from pipelines.catalog import Catalog

    error = detail[: ERROR_TAIL_CHARS + 200]
    if run is None and code != 0:
        with Catalog(url) as catalog:
            run_id = catalog.start_run(name, {"spec_path": spec_path, "scheduled": True})
            catalog.finish_run(run_id, "failed", error=f"scheduled run {error}")
        log.error(
            "job %s: failed before recording a run (%s); recorded failed run #%s",
            name,
            detail.splitlines()[0],
            run_id,
        )
        return {"id": run_id, "status": "failed"}
    if run is not None and code != 0 and run["status"] == "running":
        with Catalog(url) as catalog:
            catalog.finish_run(run["id"], "failed", stages=run["stages"], error=f"runner {error}")
        log.error(
            "job %s: the runner %s mid-run; marked run #%s failed",
            name,
            detail.splitlines()[0],
            run["id"],
        )
        return {**run, "status": "failed"}
    if run is not None and code != 0:
        log.warning(
            "job %s: %s (run #%s, runner %s)", name, run["status"], run["id"], _exit_text(code)
        )
    return run


# ---------------------------------------------------------------------- the scheduler
@contextmanager
def _only_scheduler(url: str) -> Iterator[None]:
    """Hold the catalog's scheduler lock, or refuse: two schedulers would both run every
    job (``max_instances`` only counts runs inside one process)."""
    parsed = make_url(url)
    busy = ConfigError(
        f"another 'synthgen scheduler start' is already running on the catalog "
        f"{parsed.render_as_string()}; run one scheduler per catalog (stop the other first)"
    )
    if parsed.get_backend_name() == "postgresql":
        from pipelines.catalog.database import open_engine

        engine = open_engine(url)
        connection = engine.connect()
        try:
            got = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": SCHEDULER_LOCK})
            if not got.scalar():
                raise busy
            connection.commit()
            yield
        finally:
            connection.close()  # ends the session, which releases the lock
            engine.dispose()
        return
    import fcntl

    with open(f"{parsed.database}.scheduler.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        try:
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _log_event(event: JobEvent) -> None:
    if event.code == EVENT_JOB_MAX_INSTANCES:
        log.warning(
            "job %s: still running; skipped the run due %s",
            event.job_id,
            ", ".join(t.isoformat() for t in event.scheduled_run_times),
        )
    elif event.code == EVENT_JOB_MISSED:
        log.warning(
            "job %s: skipped the run due %s: more than %ds late (scheduler down?)",
            event.job_id,
            event.scheduled_run_time.isoformat(),
            MISFIRE_GRACE_SECONDS,
        )
    elif event.code == EVENT_JOB_ERROR:
        log.error("job %s: the scheduler's job function failed: %s", event.job_id, event.exception)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM ask for a clean stop (running jobs finish); a second one quits now."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.info(
            "%s: stopping after the running jobs finish (again to quit now)",
            signal.Signals(signum).name,
        )
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def start(
    catalog_url: str | None = None,
    *,
    run_for: float | None = None,
    poll_seconds: float = POLL_SECONDS,
) -> None:
    """Run due jobs until Ctrl+C / SIGTERM (or for ``run_for`` seconds), then wait for the
    running ones to finish. Refuses to start while another scheduler runs on the catalog."""
    url = resolve_catalog_url(catalog_url)
    with _only_scheduler(url):
        scheduler = _scheduler(url)
        scheduler.add_listener(
            _log_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED | EVENT_JOB_ERROR
        )
        stop = threading.Event()
        deadline = None if run_for is None else time.monotonic() + run_for
        with _stop_on_signals(stop):
            scheduler.start()
            count = len(scheduler.get_jobs())
            log.info(
                "scheduler started on %s with %d schedule(s)",
                make_url(url).render_as_string(),
                count,
            )
            try:
                while True:
                    wait = poll_seconds
                    if deadline is not None:
                        wait = min(wait, deadline - time.monotonic())
                    if wait <= 0 or stop.wait(wait):
                        break
                    scheduler.wakeup()  # see schedules changed by other processes
            finally:
                log.info("scheduler stopping; waiting for running jobs")
                scheduler.shutdown(wait=True)
                log.info("scheduler stopped")


# ---------------------------------------------------------------------- CLI
def register(app: Any) -> None:
    """Add ``synthgen schedule add|list|remove`` and ``synthgen scheduler start``."""
    import json

    import typer
    from rich.console import Console
    from rich.table import Table

    from pipelines.cli import friendly_errors  # here: pipelines.cli imports this module

    out = Console(soft_wrap=True)
    catalog_help = "Catalog database URL (default: SYNTHGEN_CATALOG_URL or sqlite:///synthgen.db)"
    schedule_app = typer.Typer(
        help="Cron schedules for batch jobs, stored in the catalog database.",
        no_args_is_help=True,
    )
    scheduler_app = typer.Typer(help="Run the jobs that are due.", no_args_is_help=True)
    app.add_typer(schedule_app, name="schedule")
    app.add_typer(scheduler_app, name="scheduler")

    @schedule_app.command("add")
    @friendly_errors
    def add_command(
        spec: Path = typer.Argument(..., help="Job spec (YAML) to run on the schedule."),
        cron: str | None = typer.Option(
            None, "--cron", help="Cron line, e.g. '0 2 * * *' (default: the spec's schedule.cron)."
        ),
        job_id: str | None = typer.Option(
            None, "--id", help="Schedule id (default: the spec's name)."
        ),
        replace: bool = typer.Option(False, "--replace", help="Replace a schedule of this id."),
        timezone: str | None = typer.Option(
            None, "--timezone", help="IANA time zone of the cron line (default: this machine's)."
        ),
        catalog: str | None = typer.Option(None, "--catalog", help=catalog_help),
    ) -> None:
        """Schedule 'synthgen run SPEC' (runs while 'synthgen scheduler start' is running)."""
        info = add_schedule(
            spec, cron, catalog_url=catalog, job_id=job_id, replace=replace, timezone=timezone
        )
        out.print(
            f"scheduled {info['id']}: '{info['cron']}' ({info['timezone']}), next run "
            f"{info['next_run_time']} -> {info['spec']}"
        )

    @schedule_app.command("list")
    @friendly_errors
    def list_command(
        as_json: bool = typer.Option(False, "--json", help="Print one JSON array."),
        catalog: str | None = typer.Option(None, "--catalog", help=catalog_help),
    ) -> None:
        """List the schedules, soonest first."""
        schedules = list_schedules(catalog)
        if as_json:
            sys.stdout.write(json.dumps(schedules, indent=2) + "\n")
            return
        table = Table(title=f"{len(schedules)} schedule(s)")
        for column in ("id", "cron", "timezone", "next run", "spec"):
            table.add_column(column)
        for s in schedules:
            table.add_row(
                s["id"], s["cron"], s["timezone"] or "", s["next_run_time"] or "paused", s["spec"]
            )
        out.print(table)

    @schedule_app.command("remove")
    @friendly_errors
    def remove_command(
        job_id: str = typer.Argument(..., help="Schedule id (see 'synthgen schedule list')."),
        catalog: str | None = typer.Option(None, "--catalog", help=catalog_help),
    ) -> None:
        """Delete a schedule (a run in progress finishes)."""
        info = remove_schedule(job_id, catalog)
        out.print(f"removed schedule {info['id']} ('{info['cron']}' -> {info['spec']})")

    @scheduler_app.command("start")
    @friendly_errors
    def start_command(
        catalog: str | None = typer.Option(None, "--catalog", help=catalog_help),
        run_for: float | None = typer.Option(
            None, "--run-for", min=0, help="Stop after this many seconds (default: until Ctrl+C)."
        ),
    ) -> None:
        """Run due jobs until Ctrl+C or SIGTERM; one scheduler per catalog."""
        with _log_to_stderr():
            start(catalog, run_for=run_for)


@contextmanager
def _log_to_stderr() -> Iterator[None]:
    """Show the scheduler's log lines (each run's start and outcome) on stderr while
    ``scheduler start`` runs; APScheduler's own lines repeat them, so only its errors."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    aps = logging.getLogger("apscheduler")
    levels = (log.level, aps.level)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    aps.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(levels[0])
        aps.setLevel(levels[1])

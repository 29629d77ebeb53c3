"""Crash safety and concurrency of catalog exports, checked from outside the writer.

An export writes its Parquet file (temporary name, fsync, rename) and then commits the
catalog rows in one transaction; the promise is that a writer killed at any instant
leaves either nothing, an unreferenced file that ``gc`` removes, or a complete version,
and that nothing it reported as committed is lost. A process cannot SIGKILL itself in
the middle of its own commit, so the writer here is a child process and the checks run
in the parent after the child is dead.

``python -m benchmarks.catalog_faults --kills 100 [--url URL] [--seed 0]`` starts one
child per kill; each child opens the catalog, waits for the parent's ``go`` (the next
child starts while the previous one is audited), prints ``ready`` and exports a few
distinct frames to one name, announcing each phase on stdout (``prepare``: before the
file write; ``write``: temporary file, fsync, rename; ``stored``: the file is
in place, the rows are not committed; ``commit``: COMMIT sent; ``committed``: export
returned; ``idle``: all exports done). The parent SIGKILLs it a seeded random jitter
after the phase it aims at, then audits the catalog: versions 1..N without gaps, every
version reads back whole (digest checked) and is one of the frames the child made,
every version the child printed as committed is there with its digest, no row points at
a missing file, and ``gc(min_age=0)`` removes exactly the unreferenced files and tmp
leftovers. It prints the kills by phase, partial datasets found and committed versions
lost (both must be 0), the orphans gc removed and the wall time.

Without ``--url`` the catalog is a fresh SQLite file in a temporary folder; a SQLite
``--url`` must name an empty database; a PostgreSQL ``--url`` names a server (e.g.
``$SYNTHGEN_TEST_POSTGRES_URL``) on which a fresh database is created and dropped at the
end, because the audit runs gc with ``min_age=0``, which is only safe with no other
writer.

``tests/test_catalog_faults.py`` drives the same code with fewer kills, plus
``run_race``: eight processes exporting (distinct, then identical content) and
reserving privacy budget at the same instant. The child entry points are the hidden
subcommands ``worker`` and ``race`` of this module; they import the catalog, pandas and
numpy only (no torch), so a child starts in about a second.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.catalog import Catalog
from pipelines.catalog.storage import DATA_DIR, TMP_DIR, encode_table
from synthgen.errors import ConfigError, SynthgenError

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Rows per exported frame: enough that an export takes tens of milliseconds, so the
#: kills can land inside its phases, small enough that a child finishes in a second.
ROWS = 3000
#: Exports a kill child makes before it idles (waiting to be killed).
EXPORTS_PER_CHILD = 3
#: Frame keys of one child: run * KEY_STRIDE + export number, distinct across runs.
KEY_STRIDE = 1000
#: Phases a child announces, in order; ``startup`` means it never printed ``ready``.
PHASES = ("startup", "ready", "prepare", "write", "stored", "commit", "committed", "idle")
#: Phases the kill plan aims at (``committed`` is followed at once by the next ``prepare``).
KILL_TARGETS = ("prepare", "write", "stored", "commit", "idle")
#: Name the kill children export to.
KILL_NAME = "killed"
#: Names and amounts of the race (see ``run_race``).
RACE_DISTINCT = "race_distinct"
RACE_IDENTICAL = "race_identical"
RACE_SOURCE = "race_source"
RACE_KEY = 900_000
RACE_EPSILON = 1.0
RACE_DELTA = 1e-9
CHILD_TIMEOUT_S = 60.0


# ---------------------------------------------------------------------- frames
def make_frame(key: int, rows: int = ROWS) -> pd.DataFrame:
    """The frame with this key: deterministic, so the parent can recompute what the child
    exported, and distinct per key (the key is a column), so no export is deduplicated."""
    rng = np.random.default_rng(key)
    return pd.DataFrame(
        {
            "key": np.full(rows, key, dtype=np.int64),
            "row": np.arange(rows, dtype=np.int64),
            "amount": rng.normal(100.0, 25.0, rows),
            "category": rng.choice(np.array(["red", "green", "blue", "amber"], dtype=object), rows),
            "flag": rng.random(rows) < 0.3,
        }
    )


def frame_digest(key: int, rows: int = ROWS) -> str:
    """The digest the catalog records for ``make_frame(key, rows)`` (that of the table
    as its Parquet file reads back)."""
    return encode_table(make_frame(key, rows))[2]


def frame_keys(run: int, exports: int = EXPORTS_PER_CHILD) -> list[int]:
    return [run * KEY_STRIDE + k for k in range(1, exports + 1)]


# ---------------------------------------------------------------------- child side
def _emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _trace_phases(catalog: Catalog) -> Callable[[], None]:
    """Announce ``write``/``stored``/``commit`` from inside ``catalog.export``.

    Wraps the storage's ``put_table`` (the file write) and listens to the engine's
    ``commit`` event, which fires just before the DBAPI COMMIT; only the commit after a
    file write is the export's. Returns the function that resets that state.
    """
    from sqlalchemy import event

    state = {"stored": False}
    put_table = catalog.storage.put_table

    def traced_put_table(*args: Any, **kwargs: Any) -> Any:
        _emit("phase write")
        stored = put_table(*args, **kwargs)
        state["stored"] = True
        _emit("phase stored")
        return stored

    def on_commit(_connection: Any) -> None:
        if state["stored"]:
            _emit("phase commit")

    catalog.storage.put_table = traced_put_table  # type: ignore[method-assign]
    event.listen(catalog.engine, "commit", on_commit)

    def reset() -> None:
        state["stored"] = False

    return reset


def _wait_for_go(stage: str) -> None:
    """Announce ``stage`` and block (no CPU) until the parent writes ``go`` on stdin.

    The parent answers once every child has announced, writing to all of them in one
    loop: a barrier that releases them within a fraction of a millisecond, without
    eight processes polling on two cores.
    """
    _emit(f"at {stage}")
    if sys.stdin.readline().strip() != "go":
        raise SystemExit(f"the parent went away before {stage!r}")


def worker_main(argv: Sequence[str]) -> int:
    """A kill child: open the catalog, wait for ``go``, export ``--exports`` frames to
    ``--name``, then wait to be killed."""
    parser = argparse.ArgumentParser(prog="catalog_faults worker")
    parser.add_argument("--url", required=True)
    parser.add_argument("--storage", required=True)
    parser.add_argument("--name", default=KILL_NAME)
    parser.add_argument("--run", type=int, required=True)
    parser.add_argument("--exports", type=int, default=EXPORTS_PER_CHILD)
    parser.add_argument("--rows", type=int, default=ROWS)
    args = parser.parse_args(argv)
    catalog = Catalog(args.url, storage=args.storage)
    reset = _trace_phases(catalog)
    _wait_for_go("start")  # the parent may still be auditing the previous child
    _emit("ready")
    for number, key in enumerate(frame_keys(args.run, args.exports), start=1):
        _emit(f"phase prepare {number}")
        frame = make_frame(key, args.rows)
        info = catalog.export(frame, args.name).dataset
        reset()
        _emit(f"committed {info.version} {info.digest} {key}")
    _emit("phase idle")
    time.sleep(CHILD_TIMEOUT_S * 10)  # the parent kills us; never exit on our own
    return 0


def _attempt(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return call()
    except Exception as exc:  # reported to the parent, which decides what was expected
        return {"error": type(exc).__name__, "message": str(exc)}


#: The simultaneous operations of a race child, in order.
RACE_STAGES = ("distinct", "identical", "reserve")


def race_main(argv: Sequence[str]) -> int:
    """A race child: the ``RACE_STAGES``, each released by the parent's barrier; prints
    ``result`` and one JSON object."""
    parser = argparse.ArgumentParser(prog="catalog_faults race")
    parser.add_argument("--url", required=True)
    parser.add_argument("--storage", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--rows", type=int, default=ROWS)
    args = parser.parse_args(argv)
    catalog = Catalog(args.url, storage=args.storage)

    def export(key: int, name: str) -> dict[str, Any]:
        result = catalog.export(make_frame(key, args.rows), name)
        return {
            "version": result.dataset.version,
            "digest": result.dataset.digest,
            "created": result.created,
        }

    def reserve() -> dict[str, Any]:
        label = f"race job {args.index}"
        return {"charge": catalog.reserve(RACE_SOURCE, RACE_EPSILON, RACE_DELTA, label)}

    calls: dict[str, Callable[[], dict[str, Any]]] = {
        "distinct": lambda: export(RACE_KEY + args.index, RACE_DISTINCT),
        "identical": lambda: export(RACE_KEY, RACE_IDENTICAL),
        "reserve": reserve,
    }
    out: dict[str, Any] = {"index": args.index}
    for stage in RACE_STAGES:
        _wait_for_go(stage)
        out[stage] = _attempt(calls[stage])
    _emit("result " + json.dumps(out))
    catalog.close()
    return 0


# ---------------------------------------------------------------------- parent side
def child_env() -> dict[str, str]:
    """The environment of a child: this repository importable, no progress bars."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    env["SYNTHGEN_NO_PROGRESS"] = "1"
    return env


def _child_command(subcommand: str, options: dict[str, object]) -> list[str]:
    command = [sys.executable, "-m", "benchmarks.catalog_faults", subcommand]
    for key, value in options.items():
        command += [f"--{key}", str(value)]
    return command


class Child:
    """A child process speaking this module's line protocol.

    A thread reads its output (stdout and stderr together) into a queue, so the parent
    can wait for a line with a deadline and act on it within microseconds; every line
    is kept in ``lines`` for the audit and for error messages.
    """

    def __init__(self, subcommand: str, options: dict[str, object]) -> None:
        self.process = subprocess.Popen(
            _child_command(subcommand, options),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=child_env(),
            cwd=REPO_ROOT,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._ended = False
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b""):
            self._queue.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._queue.put(None)

    def next_line(self, deadline: float) -> str | None:
        """The next line; None at the end of its output or once ``deadline`` passed."""
        if self._ended:
            return None
        try:
            line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if line is None:
            self._ended = True
            return None
        self.lines.append(line)
        return line

    def expect(self, wanted: str, deadline: float) -> None:
        """Read up to the line ``wanted``; RuntimeError with the output if it never comes."""
        while (line := self.next_line(deadline)) is not None:
            if line == wanted:
                return
        tail = " | ".join(self.lines[-20:])
        raise RuntimeError(f"child {self.process.args[3:5]} never printed {wanted!r}: {tail}")

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((line + "\n").encode())
        self.process.stdin.flush()

    def close_stdin(self) -> None:
        """End its input: a child waiting for ``go`` exits (how a failed race stops)."""
        try:
            if self.process.stdin is not None and not self.process.stdin.closed:
                self.process.stdin.close()
        except OSError:
            pass

    def kill(self) -> None:
        """SIGKILL it if it still runs, reap it and collect the rest of its output."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.finish(timeout=CHILD_TIMEOUT_S)

    def finish(self, timeout: float) -> None:
        """Wait for it to exit (SIGKILL after ``timeout``) and collect its output."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=10)
        while self.next_line(time.monotonic()) is not None:
            pass
        self.close_stdin()
        if self.process.stdout is not None:
            self.process.stdout.close()


def run_race(
    url: str, storage: str | os.PathLike, *, processes: int = 8, rows: int = ROWS
) -> list[dict[str, Any]]:
    """Start ``processes`` race children and return their results, by index.

    Each child opens the catalog (which must exist: created by the caller, with
    ``RACE_SOURCE`` exported and given a budget) and then, each time all of them have
    announced the stage and been released together: exports its own frame to
    ``RACE_DISTINCT``; exports the frame every child exports to ``RACE_IDENTICAL``;
    reserves ``RACE_EPSILON`` of ``RACE_SOURCE``'s budget. A call that raised is
    reported as ``{"error": class name, "message": ...}``.
    """
    options = {"url": url, "storage": storage, "rows": rows}
    children = [Child("race", {**options, "index": i}) for i in range(processes)]
    deadline = time.monotonic() + 4 * CHILD_TIMEOUT_S
    results = []
    try:
        for stage in RACE_STAGES:
            for child in children:
                child.expect(f"at {stage}", deadline)
            for child in children:  # the barrier: all released in one loop
                child.send("go")
        for i, child in enumerate(children):
            line = child.next_line(deadline)
            while line is not None and not line.startswith("result "):
                line = child.next_line(deadline)
            if line is None:
                tail = " | ".join(child.lines[-20:])
                raise RuntimeError(f"race child {i} printed no result: {tail}")
            results.append(json.loads(line.removeprefix("result ")))
    finally:
        for child in children:
            child.close_stdin()
        for child in children:
            child.finish(timeout=CHILD_TIMEOUT_S)
    return sorted(results, key=lambda r: r["index"])


@dataclass(frozen=True)
class KillPlan:
    """When to kill one child: ``jitter_s`` after it announces ``target`` (for the
    ``prepare``/``write``/``stored``/``commit`` targets, of its export number ``export``)."""

    target: str
    export: int
    jitter_s: float

    def fires_on(self, line: str, export_now: int) -> bool:
        """Whether ``line`` is the announcement to kill after (``export_now``: the number
        of the export the child is in)."""
        if self.target == "idle":
            return line == "phase idle"
        return line.startswith(f"phase {self.target}") and export_now == self.export


def plan_kills(count: int, seed: int = 0) -> list[KillPlan]:
    """``count`` kills cycling over ``KILL_TARGETS``, each with a seeded export number
    and jitter (longer for ``idle``, none beyond the parent's reaction for ``commit``,
    whose window is a fsync or a round trip)."""
    rng = np.random.default_rng(seed)
    plans = []
    for i in range(count):
        target = KILL_TARGETS[i % len(KILL_TARGETS)]
        export = int(rng.integers(1, EXPORTS_PER_CHILD + 1))
        high = {"idle": 0.05, "commit": 0.0005}.get(target, 0.004)
        plans.append(KillPlan(target, export, float(rng.uniform(0.0, high))))
    return plans


@dataclass
class ChildLog:
    """What one kill child printed before it died."""

    lines: list[str]
    returncode: int | None
    killed: bool  # by the plan (False: it exited or hung on its own)

    @property
    def phase(self) -> str:
        phase = "startup"
        for line in self.lines:
            word = line.split(" ", 2)
            if line == "ready":
                phase = "ready"
            elif word[0] == "phase" and len(word) > 1 and word[1] in PHASES:
                phase = word[1]
            elif word[0] == "committed":
                phase = "committed"
        return phase

    @property
    def committed(self) -> dict[int, str]:
        """Version -> digest of every export the child printed as committed."""
        out = {}
        for line in self.lines:
            word = line.split()
            if len(word) == 4 and word[0] == "committed" and word[1].isdigit():
                out[int(word[1])] = word[2]
        return out


def kill_child(child: Child, plan: KillPlan, timeout: float = CHILD_TIMEOUT_S) -> ChildLog:
    """Release a kill child (started, waiting at ``start``), SIGKILL it as ``plan`` says
    and return what it printed."""
    deadline = time.monotonic() + timeout
    child.expect("at start", deadline)
    child.send("go")
    killed = False
    export_now = 0
    while (line := child.next_line(deadline)) is not None:
        if line.startswith("phase prepare "):
            export_now = int(line.rsplit(" ", 1)[-1])
        if plan.fires_on(line, export_now):
            if plan.jitter_s > 0:
                time.sleep(plan.jitter_s)
            os.kill(child.process.pid, signal.SIGKILL)
            killed = True
            break
    child.kill()  # also when it hung or exited on its own: reported by the audit
    return ChildLog(list(child.lines), child.process.returncode, killed)


def _with_application_name(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url
    return parsed.update_query_dict({"application_name": name}).render_as_string(
        hide_password=False
    )


@dataclass
class KillReport:
    """The audit after one kill."""

    run: int
    plan: KillPlan
    phase: str
    printed: list[int]
    new_versions: list[int]
    landed: bool  # the commit reached the database though the child died before printing
    orphan_files: int  # unreferenced data files gc removed
    tmp_files: int  # leftovers in tmp/ gc removed
    partial: list[str] = field(default_factory=list)  # versions that do not read back whole
    lost: list[str] = field(default_factory=list)  # printed as committed, not in the catalog
    other: list[str] = field(default_factory=list)  # gaps, gc mistakes, unexpected files

    @property
    def problems(self) -> list[str]:
        return [*self.partial, *self.lost, *self.other]

    @property
    def phase_label(self) -> str:
        if self.phase == "commit":
            return "commit (landed)" if self.landed else "commit (rolled back)"
        return self.phase


class KillCampaign:
    """Kill one exporting child after another on one catalog, auditing after each kill.

    The catalog is created here before the first child, so every child opens an existing
    one; versions accumulate over the runs, so later kills also check that nothing
    earlier was disturbed. ``full_read_every``: read every version back (digest checked)
    after every that many kills; the versions new since the last kill are always read,
    and every row's file is checked to exist after every kill.
    """

    def __init__(
        self,
        url: str,
        storage: str | os.PathLike,
        *,
        rows: int = ROWS,
        full_read_every: int = 1,
    ) -> None:
        self.url = url
        self.rows = rows
        self.full_read_every = max(1, full_read_every)
        self.catalog = Catalog(url, storage=storage)
        self.storage_root = self.catalog.storage.url
        self.known: dict[int, str] = {}  # version -> digest, audited
        self._expected: dict[str, int] = {}  # digest -> key, of every frame a child may make

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> KillCampaign:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def expect_run(self, run: int) -> None:
        """Accept the frames child ``run`` makes as legitimate catalog content."""
        for key in frame_keys(run):
            self._expected[frame_digest(key, self.rows)] = key

    def run(self, plans: Sequence[KillPlan], *, start: int = 1) -> list[KillReport]:
        """One child per plan; the next child starts (imports, opens the catalog) while
        the current one is killed and audited, and exports only once released."""
        reports: list[KillReport] = []
        pending = self._spawn(start) if plans else None
        try:
            for offset, plan in enumerate(plans):
                assert pending is not None
                child, app = pending
                pending = self._spawn(start + offset + 1) if offset + 1 < len(plans) else None
                reports.append(self._kill(start + offset, plan, child, app))
        finally:
            if pending is not None:
                pending[0].kill()
        return reports

    def kill_once(self, run: int, plan: KillPlan) -> KillReport:
        child, app = self._spawn(run)
        return self._kill(run, plan, child, app)

    def _spawn(self, run: int) -> tuple[Child, str]:
        app = f"sg-fault-{uuid.uuid4().hex[:12]}"  # finds its session on PostgreSQL
        options = {"url": _with_application_name(self.url, app), "storage": self.storage_root}
        options |= {"name": KILL_NAME, "run": run, "rows": self.rows}
        return Child("worker", options), app

    def _kill(self, run: int, plan: KillPlan, child: Child, app: str) -> KillReport:
        self.expect_run(run)
        try:
            log = kill_child(child, plan)
        finally:
            child.kill()
        self._wait_disconnected(app)
        return self.audit(run, plan, log)

    def _wait_disconnected(self, application_name: str) -> None:
        """On PostgreSQL, wait until the server has ended the dead child's session.

        A COMMIT the child sent just before dying may still be in the server's socket
        buffer; once the backend is gone its transaction is committed or rolled back.
        """
        from sqlalchemy import text

        if self.catalog.engine.dialect.name != "postgresql":
            return
        query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        while time.monotonic() < deadline:
            with self.catalog.engine.connect() as connection:
                if not connection.execute(query, {"name": application_name}).scalar():
                    return
            time.sleep(0.01)
        raise TimeoutError(f"the server kept the session of dead child {application_name}")

    # ------------------------------------------------------------------ audit
    def _check_version(self, ref: str, digest: str, row_count: int) -> str | None:
        """None if ``ref`` reads back whole and is a frame a child made, else why not."""
        if digest not in self._expected:
            return f"{ref}: digest {digest[:12]} is no frame a child exported"
        try:
            frame = self.catalog.read(ref)  # checks the file against the digest
        except (SynthgenError, OSError, ValueError) as exc:
            return f"{ref}: does not read back ({type(exc).__name__}: {exc})"
        if len(frame) != self.rows or row_count != self.rows:
            return f"{ref}: {len(frame)} rows read, {row_count} recorded, {self.rows} exported"
        return None

    def audit(self, run: int, plan: KillPlan, log: ChildLog) -> KillReport:
        catalog, storage = self.catalog, self.catalog.storage
        phase = log.phase
        printed = log.committed
        infos = {info.version: info for info in catalog.list(KILL_NAME)}
        versions = sorted(infos)
        new = [v for v in versions if v not in self.known]
        unprinted = [v for v in new if v not in printed]
        landed = phase == "commit" and unprinted == [max(versions, default=0)]
        report = KillReport(run, plan, phase, sorted(printed), new, landed, 0, 0)
        if not log.killed:
            tail = " | ".join(log.lines[-8:])
            report.other.append(f"child was not killed as planned (exit {log.returncode}): {tail}")
        if versions != list(range(1, len(versions) + 1)):
            report.other.append(f"versions are not 1..N without gaps: {versions}")
        for version, digest in printed.items():
            if version not in infos:
                report.lost.append(f"{KILL_NAME}@{version}: printed as committed, not in catalog")
            elif infos[version].digest != digest:
                report.lost.append(
                    f"{KILL_NAME}@{version}: printed digest {digest[:12]}, catalog has "
                    f"{infos[version].digest[:12]}"
                )
        for version, digest in self.known.items():
            if version not in infos or infos[version].digest != digest:
                report.lost.append(f"{KILL_NAME}@{version}: audited earlier, now gone or changed")
        if unprinted and not landed:
            report.other.append(
                f"versions {unprinted} committed but never printed, with the child killed in "
                f"phase {phase!r} (only one, in phase 'commit', can be)"
            )
        for info in infos.values():
            if not storage.exists(info.uri):
                report.partial.append(f"{info.ref}: its file {info.uri} is missing")
        for version in new:
            info = infos[version]
            problem = self._check_version(info.ref, info.digest, info.row_count)
            if problem:
                report.partial.append(problem)
        self._gc_and_check(report)
        if run % self.full_read_every == 0:
            for info in catalog.list(KILL_NAME):
                problem = self._check_version(info.ref, info.digest, info.row_count)
                if problem:
                    report.partial.append(f"after gc: {problem}")
        else:
            for info in catalog.list(KILL_NAME):
                if not storage.exists(info.uri):
                    report.partial.append(f"after gc: {info.ref}: its file {info.uri} is missing")
        self.known = {v: infos[v].digest for v in versions}
        return report

    def _gc_and_check(self, report: KillReport) -> None:
        """gc(min_age=0) must remove exactly the unreferenced files, leave the rest, and
        find the leftovers the kill phase implies."""
        catalog, storage = self.catalog, self.catalog.storage
        tmp_prefix = f"{storage.root}/{TMP_DIR}/"
        data_prefix = f"{storage.root}/{DATA_DIR}/"
        before = {path for path, _ in storage.files()}
        referenced = {storage.path_of(uri) for uri in catalog.referenced_uris()}
        removed = {storage.path_of(uri) for uri in catalog.gc(min_age=0)}
        after = {path for path, _ in storage.files()}
        report.orphan_files = sum(p.startswith(data_prefix) for p in removed)
        report.tmp_files = sum(p.startswith(tmp_prefix) for p in removed)
        if removed & referenced:
            report.other.append(f"gc removed referenced files {sorted(removed & referenced)}")
        left = before - referenced - removed
        if left:
            report.other.append(f"gc left unreferenced files {sorted(left)}")
        if after != before - removed:
            report.other.append(f"files changed during gc: {sorted(after ^ (before - removed))}")
        missing = referenced - after
        if missing:
            report.partial.append(f"referenced files missing after gc: {sorted(missing)}")
        expected = _expected_leftovers(report.phase, report.landed)
        found = (report.orphan_files, report.tmp_files)
        if found not in expected:
            report.other.append(
                f"gc removed {found[0]} data file(s) and {found[1]} tmp file(s) after a kill in "
                f"phase {report.phase_label!r}; expected one of {sorted(expected)}"
            )


def _expected_leftovers(phase: str, landed: bool) -> set[tuple[int, int]]:
    """(unreferenced data files, tmp files) a kill in ``phase`` can leave behind."""
    if phase == "write":  # before the tmp file, inside it, or just after the rename
        return {(0, 0), (0, 1), (1, 0)}
    if phase == "stored":
        return {(1, 0)}
    if phase == "commit":
        return {(0, 0)} if landed else {(1, 0)}
    return {(0, 0)}  # startup, ready, prepare, committed, idle: no file in flight


# ---------------------------------------------------------------------- summary
@dataclass
class CampaignSummary:
    kills: int
    phases: Counter[str]
    versions: int
    printed: int
    partial: int
    lost: int
    other: int
    orphan_files: int
    tmp_files: int
    wall_s: float
    problems: list[str]

    @classmethod
    def of(cls, reports: Sequence[KillReport], versions: int, wall_s: float) -> CampaignSummary:
        return cls(
            kills=len(reports),
            phases=Counter(r.phase_label for r in reports),
            versions=versions,
            printed=sum(len(r.printed) for r in reports),
            partial=sum(len(r.partial) for r in reports),
            lost=sum(len(r.lost) for r in reports),
            other=sum(len(r.other) for r in reports),
            orphan_files=sum(r.orphan_files for r in reports),
            tmp_files=sum(r.tmp_files for r in reports),
            wall_s=wall_s,
            problems=[f"kill {r.run} ({r.phase_label}): {p}" for r in reports for p in r.problems],
        )

    def lines(self, backend: str) -> list[str]:
        order = [*PHASES[:5], "commit (landed)", "commit (rolled back)", *PHASES[6:]]
        phases = ", ".join(f"{p} {self.phases[p]}" for p in order if self.phases[p])
        return [
            f"catalog_faults [{backend}]: {self.kills} kills; phase at kill: {phases}",
            f"catalog_faults [{backend}]: versions committed {self.versions} "
            f"({self.printed} printed by the children, {self.versions - self.printed} "
            "committed as the child died)",
            f"catalog_faults [{backend}]: partial datasets found {self.partial}; committed "
            f"versions lost {self.lost}; other violations {self.other}",
            f"catalog_faults [{backend}]: orphans removed by gc {self.orphan_files} data "
            f"file(s), {self.tmp_files} tmp file(s)",
            f"catalog_faults [{backend}]: wall time {self.wall_s:.1f} s "
            f"({self.wall_s / max(self.kills, 1):.2f} s per kill)",
        ]


# ---------------------------------------------------------------------- databases
def ensure_empty_database(url: str) -> None:
    """Refuse a database that already has tables: the audit gc's with min_age=0."""
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        tables = inspect(engine).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise ConfigError(
            f"--url {url} names a database that has tables ({', '.join(tables[:5])}); this "
            "run deletes every unreferenced file at once (gc min_age=0), so give it an empty "
            "database (a new SQLite file, or a PostgreSQL server URL: a fresh database is "
            "created there)"
        )


class _FreshPostgres:
    """A new database on the server of ``url``, dropped on exit."""

    def __init__(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        self.server = make_url(url).set(drivername="postgresql+psycopg")
        self.name = f"sg_faults_{uuid.uuid4().hex[:10]}"

    def _admin(self, statement: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.server, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(statement))
        finally:
            engine.dispose()

    def __enter__(self) -> str:
        self._admin(f'CREATE DATABASE "{self.name}"')
        return self.server.set(database=self.name).render_as_string(hide_password=False)

    def __exit__(self, *exc: object) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def campaign(
    url: str, storage: Path, kills: int, seed: int, rows: int, full_read_every: int
) -> CampaignSummary:
    start = time.perf_counter()
    with KillCampaign(url, storage, rows=rows, full_read_every=full_read_every) as run:
        reports = run.run(plan_kills(kills, seed))
        final = []
        for info in run.catalog.list(KILL_NAME):  # a last full read, whatever the cadence
            problem = run._check_version(info.ref, info.digest, info.row_count)
            if problem:
                final.append(problem)
        versions = len(run.known)
    summary = CampaignSummary.of(reports, versions, time.perf_counter() - start)
    summary.partial += len(final)
    summary.problems += [f"final read: {p}" for p in final]
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "worker":
        return worker_main(argv[1:])
    if argv and argv[0] == "race":
        return race_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.catalog_faults", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--kills", type=int, default=100, help="children to kill (default 100)")
    parser.add_argument(
        "--url",
        help="SQLite URL of an empty database, or a PostgreSQL server URL (a fresh database "
        "is created there and dropped afterwards); default: a new SQLite file in a temp dir",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill plan")
    parser.add_argument("--rows", type=int, default=ROWS, help="rows per exported frame")
    parser.add_argument(
        "--full-read-every",
        type=int,
        default=10,
        help="read every version back after every N kills (new ones always; default 10)",
    )
    parser.add_argument("--json", type=Path, help="also write the summary here as JSON")
    args = parser.parse_args(argv)
    if args.kills < 1 or args.rows < 1:
        parser.error("--kills and --rows must be positive")
    with tempfile.TemporaryDirectory(prefix="sg-faults-") as workdir:
        url = args.url or f"sqlite:///{workdir}/catalog.db"
        backend = url.split(":", 1)[0].split("+", 1)[0]
        storage = Path(workdir) / "store"
        try:
            if backend == "postgresql":
                with _FreshPostgres(url) as fresh:
                    summary = campaign(
                        fresh, storage, args.kills, args.seed, args.rows, args.full_read_every
                    )
            else:
                ensure_empty_database(url)
                summary = campaign(
                    url, storage, args.kills, args.seed, args.rows, args.full_read_every
                )
        except SynthgenError as exc:
            parser.error(str(exc))
    for line in summary.lines(backend):
        print(line)
    for problem in summary.problems[:50]:
        print(f"  {problem}")
    if args.json:
        payload = {k: v for k, v in summary.__dict__.items() if k != "phases"}
        payload["phases"] = dict(summary.phases)
        payload["backend"] = backend
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 1 if summary.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())

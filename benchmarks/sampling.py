"""Sampling harness: what each backend costs per row, in memory and streamed to Parquet.

For each backend: fit a small model on Adult (a few epochs: the point is sampling cost,
which depends on the network's shape and the sampler, not on how long it was trained;
the quality of these models is not measured and is poor), save it, then

- time ``model.sample(--rows, seed=...)`` in this process on the loaded model file
  (best of ``--repeats``, after a 1,000-row warm-up), and
- run ``synthgen sample MODEL -n --out-rows --out rows.parquet`` in a subprocess: the
  CLI's chunked path (``pipelines.cli._sample_chunks`` into
  ``pipelines.tables.write_chunks``), so its peak RSS is that command's alone. The
  peak is the kernel's high-water mark of the child's own memory (``VmHWM``, polled
  every 20 ms; see ``_peak_of`` for why not ``ru_maxrss``); rows/s is from the CLI's
  own "sampled N rows in S s" line, which starts after the imports and the model
  load (the wall time of the whole command is kept too).

A markdown table goes to stdout; one JSON line per backend is appended to
``--results`` (``benchmarks/results/`` is git-ignored). Torch, OpenMP and BLAS threads
are pinned to ``--threads`` in both processes; the load average is recorded before and
after each backend because neighbours on a shared machine slow everything down.

    python -m benchmarks.sampling --backends tabddpm,tvae --rows 200000 --out-rows 200000

``--model NAME=PATH`` samples an already fitted model file instead of fitting one (a
TabDDPM trained with its defaults has the same sampling cost as a 50-step one); with
``--set NAME.OPTION=JSON`` its sampling parameters are changed first (a copy is saved).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Short fits: enough to build every network at its default size, nothing more.
FIT_OPTIONS: dict[str, dict[str, Any]] = {
    "tvae": {"epochs": 2},
    "ctgan": {"epochs": 1},
    "tabddpm": {"steps": 50, "target": "income"},
    "tabular_ar": {"epochs": 1},
}
BACKEND_NAMES = tuple(FIT_OPTIONS)
DEFAULT_RESULTS = Path("benchmarks/results/sampling.jsonl")
#: What ``synthgen sample`` prints when it is done (pipelines/cli.py).
_DONE = re.compile(r"sampled ([\d,]+) rows in ([\d.]+)s")


def thread_env(threads: int | None) -> dict[str, str]:
    """The environment with OpenMP / MKL / OpenBLAS pinned to ``threads`` (if given)."""
    env = dict(os.environ)
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(threads)
    return env


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def fit_model(name: str, train: Any, options: dict[str, Any], path: Path) -> float:
    """Fit backend ``name`` with ``options`` on ``train`` and save it; returns fit seconds."""
    import synthgen as sg

    settings = {"seed": 0, "device": "cpu", **FIT_OPTIONS.get(name, {}), **options}
    if "target" in settings and settings["target"] not in train.columns:
        settings.pop("target")
    model = sg.BACKENDS[name](**settings)
    start = time.perf_counter()
    model.fit(train)
    seconds = time.perf_counter() - start
    model.save(str(path))
    return seconds


def with_params(model_path: Path, options: dict[str, Any], out: Path) -> Path:
    """A copy of a fitted model file with sampling parameters changed (``--set`` with
    ``--model``, e.g. ``tabddpm.sample_steps=50`` for a file saved with 200)."""
    import synthgen as sg

    model = sg.load_model(str(model_path), device="cpu")
    model.set_params(**options)
    model.save(str(out))
    return out


def time_in_memory(model_path: Path, rows: int, repeats: int) -> dict[str, Any]:
    """Best and all wall times of ``sample(rows)`` on the loaded model (after a warm-up)."""
    import synthgen as sg

    model = sg.load_model(str(model_path), device="cpu")
    model.sample(min(rows, 1000), seed=123)  # thread pools, allocator, lazy imports
    times = []
    for repeat in range(repeats):
        start = time.perf_counter()
        frame = model.sample(rows, seed=repeat)
        times.append(time.perf_counter() - start)
        assert len(frame) == rows
        del frame
    best = min(times)
    return {"seconds": times, "rows_per_s": rows / best if best > 0 else float("inf")}


def cli_command(model_path: Path, rows: int, out: Path, seed: int = 0) -> list[str]:
    """``synthgen sample`` as this interpreter runs it (the console script's own entry)."""
    code = "from pipelines.cli import app; app()"
    return [sys.executable, "-c", code, "sample", str(model_path), "-n", str(rows), "--out",
            str(out), "--seed", str(seed)]  # fmt: skip


def _peak_of(pid: int) -> int:
    """The kernel's high-water mark of ``pid``'s RSS in bytes (``VmHWM``), 0 if gone.

    Why not ``os.wait4``'s ``ru_maxrss``: Python starts children with vfork/fork + exec,
    and Linux carries the pre-exec memory's peak into the child's ``maxrss``, so it
    reports this (large, model-holding) parent's peak instead of the command's.
    ``VmHWM`` belongs to the exec'd program's own address space. Elsewhere psutil's
    current RSS is the fallback (polled, so it can miss a short spike).
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except Exception:  # the process ended between polls
        return 0


def run_cli_sample(model_path: Path, rows: int, out: Path, threads: int | None) -> dict[str, Any]:
    """Run ``synthgen sample`` alone in a child; its wall time, own timing and peak RSS."""
    start = time.perf_counter()
    child = subprocess.Popen(
        cli_command(model_path, rows, out),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**thread_env(threads), "COLUMNS": "200"},
    )
    peak = [0]
    done = threading.Event()

    def poll() -> None:  # VmHWM only grows: the last reading before exit is the peak
        while not done.is_set():
            peak[0] = max(peak[0], _peak_of(child.pid))
            done.wait(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    output = child.stdout.read().decode(errors="replace") if child.stdout else ""
    child.wait()
    done.set()
    poller.join()
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise RuntimeError(f"synthgen sample failed ({child.returncode}):\n{output[-2000:]}")
    found = _DONE.search(output)
    own = float(found.group(2)) if found else None
    seconds = own if own else wall
    return {
        "wall_seconds": wall,
        "cli_seconds": own,
        "rows_per_s": rows / seconds if seconds > 0 else float("inf"),
        "peak_rss_mb": peak[0] / 2**20,
        "file_mb": out.stat().st_size / 2**20,
    }


def measure(
    name: str,
    train: Any,
    rows: int,
    out_rows: int,
    work: Path,
    options: dict[str, Any],
    threads: int | None,
    repeats: int,
    model_path: Path | None = None,
) -> dict[str, Any]:
    """Every number of one backend's row in the table (and its JSON line)."""
    fit_seconds = None
    load_before = load_average()
    if model_path is None:
        model_path = work / f"{name}.synth"
        fit_seconds = fit_model(name, train, options, model_path)
    elif options:
        model_path = with_params(model_path, options, work / f"{name}.synth")
    memory = time_in_memory(model_path, rows, repeats)
    out = work / f"{name}.parquet"
    parquet = run_cli_sample(model_path, out_rows, out, threads) if out_rows else None
    if out.exists():
        out.unlink()
    record: dict[str, Any] = {
        "backend": name,
        "model": str(model_path),
        "fit_options": {**FIT_OPTIONS.get(name, {}), **options} if fit_seconds else None,
        "sample_options": options if fit_seconds is None else None,
        "fit_seconds": fit_seconds,
        "rows": rows,
        "in_memory": memory,
        "out_rows": out_rows,
        "parquet": parquet,
        "load_before": load_before,
        "load_after": load_average(),
    }
    return record


def seconds_per_million(rows_per_s: float | None) -> str:
    return "-" if not rows_per_s else f"{1e6 / rows_per_s:,.1f}"


def markdown_table(records: Sequence[dict[str, Any]]) -> str:
    """The rows as the Markdown table docs/benchmarks.md records."""
    lines = [
        "| backend | rows/s (in memory) | rows/s (to Parquet) | peak RSS (MB) | "
        "s / 1M rows (in memory) | s / 1M rows (to Parquet) | load avg |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        memory = r["in_memory"]["rows_per_s"]
        parquet = r["parquet"]["rows_per_s"] if r["parquet"] else None
        rss = f"{r['parquet']['peak_rss_mb']:,.0f}" if r["parquet"] else "-"
        lines.append(
            f"| {r['backend']} | {memory:,.0f} | {'-' if parquet is None else f'{parquet:,.0f}'} "
            f"| {rss} | {seconds_per_million(memory)} | {seconds_per_million(parquet)} "
            f"| {r['load_before']:.2f} / {r['load_after']:.2f} |"
        )
    return "\n".join(lines)


def environment(threads: int | None) -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "threads": threads,
        "machine": platform.processor() or platform.machine(),
    }


def _parse_pairs(items: Sequence[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"{what} {item!r}: expected NAME=VALUE")
        key, value = item.split("=", 1)
        out[key] = value
    return out


def _parse_overrides(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``--set tvae.epochs=5`` -> {"tvae": {"epochs": 5}} (values are JSON)."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in _parse_pairs(items, "--set").items():
        if "." not in key:
            raise SystemExit(f"--set {key}={value}: expected BACKEND.OPTION=JSON")
        backend, option = key.split(".", 1)
        out.setdefault(backend, {})[option] = json.loads(value)
    return out


def load_train(max_rows: int | None, seed: int = 0) -> Any:
    """Adult's 80% training split (stratified on income, seeded), optionally subsampled.

    The copy bundled with synthgen (the same UCI file), so the harness and its test run
    on a bare checkout without the shared datasets folder.
    """
    from sklearn.model_selection import train_test_split

    import synthgen as sg

    frame = sg.datasets.load("adult").reset_index(drop=True)
    train, _ = train_test_split(frame, test_size=0.2, random_state=seed, stratify=frame["income"])
    train = train.sort_index().reset_index(drop=True)
    if max_rows is not None and len(train) > max_rows:
        train = train.sample(max_rows, random_state=seed).reset_index(drop=True)
    return train


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKEND_NAMES))
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the in-memory call")
    parser.add_argument(
        "--out-rows", type=int, default=1_000_000, help="rows written to Parquet (0: skip)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch/OpenMP/BLAS threads")
    parser.add_argument("--repeats", type=int, default=3, help="in-memory timings (best kept)")
    parser.add_argument("--max-train-rows", type=int, default=None, help="subsample the fit")
    parser.add_argument("--set", action="append", default=[], help="BACKEND.OPTION=JSON")
    parser.add_argument("--model", action="append", default=[], help="BACKEND=PATH (no fit)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--work-dir", type=Path, default=None, help="models and Parquet files")
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BACKEND_NAMES))
    if unknown:
        raise SystemExit(f"unknown backends {unknown}; choose from {list(BACKEND_NAMES)}")
    overrides = _parse_overrides(args.set)
    models = {k: Path(v) for k, v in _parse_pairs(args.model, "--model").items()}
    os.environ.update(thread_env(args.threads))
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    train = load_train(args.max_train_rows) if set(names) - set(models) else None
    env = environment(args.threads)
    records = []
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        for name in names:
            record = measure(
                name,
                train,
                args.rows,
                args.out_rows,
                Path(tmp),
                overrides.get(name, {}),
                args.threads,
                args.repeats,
                models.get(name),
            )
            record.update(env, time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            with args.results.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            records.append(record)
            print(f"{name}: done (load {record['load_before']} -> {record['load_after']})")
    print(markdown_table(records))
    return records


if __name__ == "__main__":
    main()

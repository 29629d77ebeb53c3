"""The benchmark harness: prepare each dataset once, run every backend on it, collect.

Data preparation happens once per dataset in the parent process and is written to
Parquet, so every backend trains on byte-identical rows and is scored against the same
fixed real quality sample and holdout. Backends then run one after another, each in a
fresh ``benchmarks.worker`` subprocess (never concurrently: they would share the cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks import datasets
from benchmarks.backends import known_backends
from benchmarks.datasets import REPO_ROOT


@dataclass
class BenchmarkConfig:
    """Everything a run depends on; stored verbatim in the JSON output."""

    backends: list[str]
    datasets: list[str]
    out: str
    epochs: int = 300
    batch_size: int = 500
    seed: int = 0
    device: str = "cpu"
    data_dir: str | None = None
    quality_rows: int = 10_000
    sample_rows: int = 10_000
    max_rows: int | None = None
    utility: bool = False
    holdout_fraction: float = 0.2
    threads: int | None = None
    backend_defaults: bool = False
    time_budget: float | None = None
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Fail before any minutes are spent on a run that cannot finish."""
        known = known_backends()
        unknown = [b for b in self.backends if b not in known]
        if unknown:
            raise ValueError(f"unknown backend(s) {unknown}; known: {', '.join(known)}")
        for name in self.datasets:
            datasets.get_spec(name)
        for label, value in (
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("quality_rows", self.quality_rows),
            ("sample_rows", self.sample_rows),
        ):
            if value < 1:
                raise ValueError(f"{label}={value} must be at least 1")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads={self.threads} must be at least 1")
        if self.max_rows is not None and self.max_rows < 10:
            raise ValueError(f"max_rows={self.max_rows} is too small to train and score on")


@dataclass
class PreparedData:
    """Paths of the frames one dataset's workers read, their sizes, and per-dataset
    reference numbers computed once (the same in every backend's row)."""

    name: str
    target: str | None
    task: str | None
    train: Path
    quality_real: Path
    schema: Path
    holdout: Path | None
    sizes: dict[str, int]
    #: k training rows the backend's ``quality @k`` is scored against (with a holdout).
    floor_real: Path | None = None
    #: Real-data references: ``floor`` (+ its two properties), ``holdout_copies``.
    reference: dict[str, Any] = field(default_factory=dict)


def prepare(config: BenchmarkConfig, name: str, folder: Path) -> PreparedData:
    """Subsample, split and write the frames for dataset ``name`` (seeded).

    With ``--utility`` this also computes, once, the real-data floor (SDMetrics quality
    of k training rows against k holdout rows) and the holdout's exact-copy rate: they
    depend on the data only, so every backend's row carries the same values.
    """
    from benchmarks.metrics import floor_rows, holdout_copy_rate, quality_scores
    from synthgen import Schema

    spec = datasets.get_spec(name)
    frame = datasets.load(name, config.data_dir)
    rows = len(frame)
    if config.max_rows is not None and len(frame) > config.max_rows:
        frame = frame.sample(config.max_rows, random_state=config.seed).sort_index()
    frame = frame.reset_index(drop=True)
    holdout = None
    train = frame
    if config.utility:
        from sklearn.model_selection import train_test_split

        # No label, nothing to stratify on: a plain seeded split.
        stratify = frame[spec.target] if spec.task == "classification" else None
        train, holdout = train_test_split(
            frame,
            test_size=config.holdout_fraction,
            random_state=config.seed,
            stratify=stratify,
        )
        train, holdout = train.sort_index(), holdout.sort_index()
    quality_real = train.sample(
        min(config.quality_rows, len(train)), random_state=config.seed
    ).sort_index()
    schema = Schema.infer(train)
    if (
        spec.task == "classification"
        and spec.target is not None
        and schema[spec.target].kind == "numerical"
    ):
        # A 0/1 label is a class, not a quantity: model and score it as categorical.
        schema = Schema.infer(train, kinds={spec.target: "categorical"})

    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "train": folder / "train.parquet",
        "quality_real": folder / "quality_real.parquet",
        "schema": folder / "schema.json",
    }
    train.to_parquet(paths["train"])
    quality_real.to_parquet(paths["quality_real"])
    paths["schema"].write_text(json.dumps(schema.to_dict(), indent=2))
    holdout_path = None
    floor_path = None
    reference: dict[str, Any] = {}
    floor_k = 0
    if holdout is not None:
        holdout_path = folder / "holdout.parquet"
        holdout.to_parquet(holdout_path)
        floor_k = floor_rows(config.quality_rows, len(holdout))
        floor_real = train.sample(floor_k, random_state=config.seed).sort_index()
        floor_holdout = holdout.sample(floor_k, random_state=config.seed).sort_index()
        floor_path = folder / "floor_real.parquet"
        floor_real.to_parquet(floor_path)
        floor = quality_scores(floor_real, floor_holdout, schema)
        reference = {
            "floor": floor["quality"],
            "floor_column_shapes": floor["column_shapes"],
            "floor_pair_trends": floor["pair_trends"],
            "holdout_copies": holdout_copy_rate(train, holdout, schema),
        }
    return PreparedData(
        name=name,
        target=spec.target,
        task=spec.task,
        train=paths["train"],
        quality_real=paths["quality_real"],
        schema=paths["schema"],
        holdout=holdout_path,
        sizes={
            "rows": rows,
            "used_rows": len(frame),
            "train_rows": len(train),
            "holdout_rows": 0 if holdout is None else len(holdout),
            "quality_rows": len(quality_real),
            "floor_rows": floor_k,
            "columns": frame.shape[1],
        },
        floor_real=floor_path,
        reference=reference,
    )


#: Environment variables that size the thread pools of torch, OpenMP and BLAS.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _worker_env(threads: int | None = None) -> dict[str, str]:
    """The parent's environment with the repo root importable (benchmarks is not installed)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("SYNTHGEN_NO_PROGRESS", "1")
    if threads is not None:
        # Pin every thread pool (torch/OpenMP, BLAS) of the worker: on a shared machine,
        # pools sized to all cores oversubscribe and slow every backend down.
        for name in THREAD_ENV:
            env[name] = str(threads)
    return env


def run_backend(
    config: BenchmarkConfig, data: PreparedData, backend: str, folder: Path
) -> dict[str, Any]:
    """Run one backend in a fresh subprocess; its log goes to ``folder/<backend>.log``."""
    slug = backend.replace(":", "_").replace("/", "_")
    job_path = folder / f"{slug}.job.json"
    result_path = folder / f"{slug}.result.json"
    result_path.unlink(missing_ok=True)
    job = {
        "dataset": data.name,
        "backend": backend,
        "target": data.target,
        "task": data.task,
        "train": str(data.train),
        "quality_real": str(data.quality_real),
        "holdout": str(data.holdout) if data.holdout else None,
        "floor_real": str(data.floor_real) if data.floor_real else None,
        "reference": data.reference,
        "schema": str(data.schema),
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "device": config.device,
        "threads": config.threads,
        "backend_defaults": config.backend_defaults,
        "time_budget": config.time_budget,
        "sample_rows": config.sample_rows,
        "result": str(result_path),
    }
    job_path.write_text(json.dumps(job, indent=2))
    start = time.perf_counter()
    with open(folder / f"{slug}.log", "w") as log:
        process = subprocess.run(
            [sys.executable, "-m", "benchmarks.worker", str(job_path)],
            cwd=REPO_ROOT,
            env=_worker_env(config.threads),
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result_path.exists():
        result = json.loads(result_path.read_text())
    else:
        result = {
            "dataset": data.name,
            "backend": backend,
            "status": "error",
            "error": f"worker exited with code {process.returncode} and wrote no result; "
            f"see {folder / f'{slug}.log'}",
        }
    result["wall_s"] = time.perf_counter() - start
    return result


def run(config: BenchmarkConfig, echo: Any = print) -> dict[str, Any]:
    """Run the whole benchmark and write ``<out>/results.json`` and ``<out>/results.md``."""
    from benchmarks.report import machine_info, write_outputs

    config.validate()
    out = Path(config.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = pd.Timestamp.now(tz="UTC")
    load_before = os.getloadavg()
    machine = machine_info()  # before any worker imports the code being measured
    results: list[dict[str, Any]] = []
    data_info: dict[str, Any] = {}
    total = len(config.datasets) * len(config.backends)
    step = 0
    for name in config.datasets:
        folder = out / name
        data = prepare(config, name, folder)
        data_info[name] = {
            "target": data.target,
            "task": data.task,
            **data.sizes,
            **data.reference,
        }
        for backend in config.backends:
            step += 1
            echo(f"[{step}/{total}] {backend} on {name} ({data.sizes['train_rows']} rows) ...")
            result = run_backend(config, data, backend, folder)
            results.append(result)
            if result["status"] == "ok":
                echo(
                    f"    fit {result['fit_s']:.1f} s, preprocessing "
                    f"{result['preprocessing_s']:.2f} s, quality {result['quality']:.4f}"
                )
            else:
                echo(f"    FAILED: {result['error']}")
    payload = {
        "config": asdict(config),
        "started_utc": started.isoformat(),
        "finished_utc": pd.Timestamp.now(tz="UTC").isoformat(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "machine": machine,
        "datasets": data_info,
        "results": results,
    }
    write_outputs(payload, out)
    return payload

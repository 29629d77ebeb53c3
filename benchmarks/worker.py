"""One backend on one dataset, in a fresh process: ``python -m benchmarks.worker JOB.json``.

The harness starts one worker per (dataset, backend) so that peak RSS, imported
libraries, torch thread pools and global RNG state belong to that backend alone. The
worker reads the frames the harness prepared once (identical for every backend), fits,
samples, scores, and writes one JSON result next to the job file.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.memory import MB, PeakRSS, cpu_seconds


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def row_width(runner: Any) -> tuple[int | None, str | None]:
    """What one training row becomes inside the model: ``(width, "tokens" | "floats")``.

    TabularAR reads a row as a sequence of ``len(transformer_.sizes)`` tokens, so its
    cost per row grows with that count; the other synthgen backends and SDV's
    TVAE/CTGAN encode a row into a float vector of a known width (synthgen's
    ``TableTransformer.output_dim``, the CTGAN library's
    ``DataTransformer.output_dimensions``). A model with neither (SDV's Gaussian copula)
    gets ``(None, None)``: not applicable, rather than a number of another kind.
    """
    model = getattr(runner, "model", None)
    transformer = getattr(model, "transformer_", None)
    if transformer is not None:
        sizes = getattr(transformer, "sizes", None)
        if sizes is not None:
            return len(sizes), "tokens"
        width = getattr(transformer, "output_dim", None)
        if width is not None:
            return int(width), "floats"
    inner = getattr(getattr(runner, "synth", None), "_model", None)
    for name in ("transformer", "_transformer"):  # ctgan's TVAE / CTGAN
        width = getattr(getattr(inner, name, None), "output_dimensions", None)
        if width is not None:
            return int(width), "floats"
    return None, None


def _at_least(runner: Any, synthetic: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """The first ``n`` generated rows, sampling afresh only when the timed call made fewer."""
    return synthetic.iloc[:n] if len(synthetic) >= n else runner.sample(n, seed=seed)


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Fit, time, sample and score one backend as described by ``job`` (see harness)."""
    from benchmarks.backends import make_runner
    from benchmarks.metrics import (
        memorisation_rows,
        memorisation_scores,
        quality_scores,
        seconds_per_million_cells,
        utility_scores,
    )
    from synthgen import Schema

    if job.get("threads"):
        import torch

        torch.set_num_threads(int(job["threads"]))
    schema = Schema.from_dict(json.loads(Path(job["schema"]).read_text()))
    train = pd.read_parquet(job["train"])
    quality_real = pd.read_parquet(job["quality_real"])
    seed = int(job["seed"])
    runner = make_runner(
        job["backend"],
        int(job["epochs"]),
        int(job["batch_size"]),
        seed,
        job["device"],
        target=job["target"] if job.get("task") == "classification" else None,
        use_defaults=bool(job.get("backend_defaults")),
        time_budget=job.get("time_budget"),
    )

    with PeakRSS() as memory:
        cpu_before = cpu_seconds()
        timing = runner.fit(train, schema)
        fit_cpu_seconds = cpu_seconds() - cpu_before
        start = time.perf_counter()
        synthetic = runner.sample(int(job["sample_rows"]), seed=seed + 1)
        sample_seconds = time.perf_counter() - start

    width, encoding = row_width(runner)
    result: dict[str, Any] = {
        "dataset": job["dataset"],
        "backend": job["backend"],
        "status": "ok",
        "train_rows": len(train),
        "columns": train.shape[1],
        "cells": len(train) * train.shape[1],
        "epochs": timing.epochs,
        "tokens_per_row": width,
        "row_encoding": encoding,
        "batch_size": getattr(getattr(runner, "model", None), "batch_size", None)
        or int(job["batch_size"]),
        "backend_defaults": bool(job.get("backend_defaults")),
        "time_budget_s": job.get("time_budget"),
        "torch_threads": _torch_threads(),
        "preprocessing_s": timing.preprocessing_seconds,
        "seconds_per_epoch": timing.seconds_per_epoch,
        "measured_epoch_s": timing.measured_epoch_seconds,
        "fit_s": timing.fit_seconds,
        "s_per_m_cells": seconds_per_million_cells(timing.fit_seconds, len(train), train.shape[1]),
        "fit_cpu_s": fit_cpu_seconds,
        "sample_rows": int(job["sample_rows"]),
        "sample_s": sample_seconds,
        "sampling_rows_per_s": int(job["sample_rows"]) / max(sample_seconds, 1e-9),
        "peak_rss_mb": memory.peak / MB,
        "rss_increase_mb": memory.increase / MB,
        "baseline_rss_mb": memory.baseline / MB,
    }

    start = time.perf_counter()
    n_quality = len(quality_real)
    if len(synthetic) < n_quality:
        synthetic = runner.sample(n_quality, seed=seed + 2)
    result["quality_rows"] = n_quality
    result.update(quality_scores(quality_real, synthetic.iloc[:n_quality], schema))
    result["quality_s"] = time.perf_counter() - start

    if job.get("holdout"):
        holdout = pd.read_parquet(job["holdout"])
        result.update(job.get("reference") or {})

        start = time.perf_counter()
        n_dcr = memorisation_rows(len(holdout))
        result.update(
            memorisation_scores(
                train, _at_least(runner, synthetic, n_dcr, seed + 4), holdout, schema, seed
            )
        )
        result["memorisation_s"] = time.perf_counter() - start

        if job.get("floor_real"):
            # Same k, same real rows as the floor: floor - quality_at_k compares like
            # with like (SDMetrics scores drift with the sample size).
            start = time.perf_counter()
            floor_real = pd.read_parquet(job["floor_real"])
            k = len(floor_real)
            at_k = quality_scores(floor_real, _at_least(runner, synthetic, k, seed + 5), schema)
            result["quality_k_rows"] = k
            result["quality_at_k"] = at_k["quality"]
            if result.get("floor") is not None:
                result["floor_gap"] = result["floor"] - at_k["quality"]
            result["quality_at_k_s"] = time.perf_counter() - start

        if job.get("target") is not None:
            start = time.perf_counter()
            utility_synthetic = _at_least(runner, synthetic, len(train), seed + 3)
            result.update(
                utility_scores(
                    train, utility_synthetic, holdout, schema, job["target"], job["task"], seed
                )
            )
            result["utility_s"] = time.perf_counter() - start
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m benchmarks.worker JOB.json", file=sys.stderr)
        return 2
    job_path = Path(args[0])
    job = json.loads(job_path.read_text())
    try:
        result = run_job(job)
        code = 0
    except Exception as exc:  # recorded in the table instead of aborting the whole run
        traceback.print_exc()
        result = {
            "dataset": job["dataset"],
            "backend": job["backend"],
            "status": "error",
            "error": f"{type(exc).__name__}: {exc}",
        }
        code = 1
    Path(job["result"]).write_text(json.dumps(result, indent=2, default=float))
    return code


if __name__ == "__main__":
    raise SystemExit(main())

"""Turn collected results into ``results.json`` and a Markdown table with ratios.

The Markdown is meant to be pasted into ``docs/benchmarks.md`` unchanged, so it carries
the command, machine and date along with the numbers, and states the ratios the project
tracks (our fit time / SDV's, our preprocessing / SDV's, quality difference).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import psutil

from benchmarks.datasets import REPO_ROOT

#: (key in a result, column header, format); holdout and utility columns are added when
#: any result has them.
COLUMNS: list[tuple[str, str, str]] = [
    ("dataset", "dataset", "s"),
    ("backend", "backend", "s"),
    ("epochs", "epochs", "d"),
    ("tokens_per_row", "tokens / row", "d"),
    ("torch_threads", "threads", "d"),
    ("cells", "cells", ",d"),
    ("preprocessing_s", "preprocessing (s)", ".2f"),
    ("seconds_per_epoch", "s / epoch", ".3f"),
    ("fit_s", "fit total (s)", ".1f"),
    ("s_per_m_cells", "s / M cells", ".2f"),
    ("fit_cpu_s", "fit CPU (s)", ".1f"),
    ("sampling_rows_per_s", "sampling (rows/s)", ",.0f"),
    ("peak_rss_mb", "peak RSS (MB)", ",.0f"),
    ("rss_increase_mb", "RSS increase (MB)", ",.0f"),
    ("quality", "quality", ".4f"),
    ("column_shapes", "column shapes", ".4f"),
    ("pair_trends", "pair trends", ".4f"),
]
#: With a holdout (``--utility``): real-data floor at k rows, memorisation.
HOLDOUT_COLUMNS: list[tuple[str, str, str]] = [
    ("quality_at_k", "quality @k", ".4f"),
    ("floor", "floor", ".4f"),
    ("floor_gap", "floor - quality @k", "+.4f"),
    ("dcr_share", "DCR share", ".4f"),
    ("exact_copies", "exact copies", ".4f"),
    ("holdout_copies", "holdout copies", ".4f"),
]
UTILITY_COLUMNS: list[tuple[str, str, str]] = [
    ("tstr_f1", "TSTR F1", ".4f"),
    ("tstr_roc_auc", "TSTR AUC", ".4f"),
    ("trtr_f1", "TRTR F1", ".4f"),
    ("trtr_roc_auc", "TRTR AUC", ".4f"),
    ("tstr_r2", "TSTR R2", ".4f"),
    ("trtr_r2", "TRTR R2", ".4f"),
]
#: Shown where a number does not apply (e.g. epochs of a Gaussian copula).
NOT_APPLICABLE = "n/a"


def cpu_model() -> str:
    """CPU model name as ``lscpu`` prints it (falls back to /proc/cpuinfo, then platform)."""
    try:
        text = subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
        for line in text.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(
            ["git", *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def git_state() -> dict[str, Any]:
    """HEAD and the uncommitted changes to the code being measured.

    Taken when the run starts (workers import that code then): in a shared checkout the
    generator code may be edited while a long run is in progress.
    """
    status = _git("status", "--porcelain", "--", "synthgen", "privacy")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        # porcelain lines are "XY path"; _git strips the output, so split, don't slice
        "git_uncommitted": [
            line.split(maxsplit=1)[1] for line in (status or "").splitlines() if line.strip()
        ],
    }


def machine_info() -> dict[str, Any]:
    """Where the numbers were measured: they only compare within one machine."""
    import torch

    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "torch_threads": torch.get_num_threads(),
        "thread_env": {
            name: os.environ.get(name)
            for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
        },
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            name: _version(name)
            for name in ("synthgen", "torch", "sdv", "ctgan", "rdt", "sdmetrics", "scikit-learn")
        },
        **git_state(),
    }


def _format(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_APPLICABLE
    if fmt == "s":
        return str(value)
    return format(value, fmt)


def _our_name(sdv_backend: str) -> str:
    return sdv_backend.split(":", 1)[1]


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ours vs SDV's model of the same name (tvae vs sdv:tvae), per dataset.

    Our autograd-only variant (``tvae/autograd``) gets a row of its own when it ran.
    """
    ok = {(r["dataset"], r["backend"]): r for r in results if r.get("status") == "ok"}
    rows = []
    pairs = []
    for (dataset, backend), theirs in ok.items():
        if not backend.startswith("sdv:"):
            continue
        for name in (_our_name(backend), _our_name(backend) + "/autograd"):
            if (dataset, name) in ok:
                pairs.append((dataset, backend, theirs, ok[(dataset, name)]))
    for dataset, backend, theirs, ours in pairs:
        rows.append(
            {
                "dataset": dataset,
                "ours": ours["backend"],
                "sdv": backend,
                "fit_ratio": ours["fit_s"] / theirs["fit_s"],
                "fit_cpu_ratio": ours["fit_cpu_s"] / theirs["fit_cpu_s"],
                "preprocessing_ratio": ours["preprocessing_s"] / theirs["preprocessing_s"],
                "epoch_ratio": (
                    ours["seconds_per_epoch"] / theirs["seconds_per_epoch"]
                    if ours.get("seconds_per_epoch") and theirs.get("seconds_per_epoch")
                    else None
                ),
                "sampling_speedup": ours["sampling_rows_per_s"] / theirs["sampling_rows_per_s"],
                "quality_diff": ours["quality"] - theirs["quality"],
            }
        )
    return rows


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(payload: dict[str, Any]) -> str:
    """The results table, failures, ratios and provenance as Markdown."""
    results = payload["results"]
    columns = list(COLUMNS)
    for key, header, fmt in HOLDOUT_COLUMNS + UTILITY_COLUMNS:
        if any(key in r for r in results):
            columns.append((key, header, fmt))
    ok = [r for r in results if r.get("status") == "ok"]
    body = [[_format(r.get(key), fmt) for key, _, fmt in columns] for r in ok]
    parts = [_table([header for _, header, _ in columns], body)]
    failed = [r for r in results if r.get("status") != "ok"]
    if failed:
        parts.append(
            "Failed runs:\n\n"
            + "\n".join(f"- {r['dataset']} / {r['backend']}: {r.get('error')}" for r in failed)
        )
    ratio_rows = ratios(results)
    if ratio_rows:
        parts.append(
            _table(
                [
                    "dataset",
                    "ours vs SDV",
                    "fit time ratio",
                    "fit CPU ratio",
                    "preprocessing ratio",
                    "s/epoch ratio",
                    "sampling speed-up",
                    "quality difference",
                ],
                [
                    [
                        r["dataset"],
                        f"{r['ours']} / {r['sdv']}",
                        _format(r["fit_ratio"], ".3f"),
                        _format(r["fit_cpu_ratio"], ".3f"),
                        _format(r["preprocessing_ratio"], ".3f"),
                        _format(r["epoch_ratio"], ".3f"),
                        _format(r["sampling_speedup"], ".1f") + "x",
                        _format(r["quality_diff"], "+.4f"),
                    ]
                    for r in ratio_rows
                ],
            )
        )
    machine = payload["machine"]
    config = payload["config"]
    parts.append(
        "\n".join(
            [
                f"- command: `{config.get('command') or '(called from Python)'}`",
                f"- date (UTC): {payload['started_utc']} to {payload['finished_utc']}",
                f"- machine: {machine['cpu_model']}, {machine['usable_cores']} usable cores, "
                f"{machine['memory_gb']} GB RAM, torch threads {machine['torch_threads']}, "
                f"device {config['device']}",
                f"- load average before / after: {_loads(payload['load_average_before'])} / "
                f"{_loads(payload['load_average_after'])}",
                "- versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v),
                f"- git commit at start: {machine.get('git_commit')}"
                + (
                    f" (uncommitted changes in: {', '.join(machine['git_uncommitted'])})"
                    if machine.get("git_uncommitted")
                    else ""
                ),
                "- data: "
                + "; ".join(
                    f"{name}: {d['train_rows']} train rows"
                    + (f", {d['holdout_rows']} holdout rows" if d["holdout_rows"] else "")
                    + f", {d['quality_rows']}-row real quality sample"
                    + (
                        f", real-data floor {_format(d['floor'], '.4f')} at k={d['floor_rows']}"
                        if d.get("floor_rows")
                        else ""
                    )
                    + (
                        " (no label: TSTR/TRTR not applicable)"
                        if "target" in d and d["target"] is None
                        else ""
                    )
                    for name, d in payload["datasets"].items()
                ),
            ]
        )
    )
    return "\n\n".join(parts) + "\n"


def _loads(values: Any) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def write_outputs(payload: dict[str, Any], out: Path) -> None:
    """``results.json`` (everything, ratios included) and ``results.md`` in ``out``."""
    payload["ratios"] = ratios(payload["results"])
    text = json.dumps(_finite(payload), indent=2, default=_json_default, allow_nan=False)
    (out / "results.json").write_text(text)
    (out / "results.md").write_text(to_markdown(payload))


def _finite(value: Any) -> Any:
    """NaN (a score that could not be computed) becomes null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in results.json")

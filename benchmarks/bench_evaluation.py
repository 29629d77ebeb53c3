"""Timing benchmark of the evaluation suite against SDMetrics on the same machine.

Run from the repository root:

    python benchmarks/bench_evaluation.py            # full sizes (a few minutes on 2 cores)
    python benchmarks/bench_evaluation.py --quick    # small sizes, smoke test

Measures
1. the full report (every section) on Adult: 32,561 real rows vs 32,561 synthetic rows
   with a 16,000-row holdout;
2. fidelity on 100k-row tables: ours vs ``sdmetrics.reports.single_table.QualityReport``;
3. SDMetrics QualityReport on the Adult sizes of (1), and SDMetrics' DCR search
   (``calculate_dcr``, the kernel of ``DCROverfittingProtection``) for a slice of
   synthetic rows, extrapolated linearly to all synthetic rows (the full run would take
   hours), next to ours on the same slice and on everything;
4. nearest-neighbour search, 50k x 50k rows.

The "synthetic" tables are perturbed resamples of the real table (rows drawn with
replacement, numbers jittered, three columns shuffled): their cost is what matters
here, not their quality. Results are printed and written to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation import evaluate  # noqa: E402
from evaluation.fidelity import fidelity, sdv_metadata  # noqa: E402
from privacy.attacks import nearest_distances  # noqa: E402
from synthgen import datasets  # noqa: E402
from synthgen.schema import Schema  # noqa: E402


def resample(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = df.iloc[rng.integers(0, len(df), n)].reset_index(drop=True)
    for c in out.columns:
        if pd.api.types.is_numeric_dtype(out[c]):
            jitter = rng.normal(0, 0.05 * (out[c].std() or 1.0), n)
            out[c] = (
                (out[c] + jitter).round().astype(out[c].dtype)
                if pd.api.types.is_integer_dtype(out[c])
                else out[c] + jitter
            )
    for c in list(out.columns)[1:4]:
        out[c] = rng.permutation(out[c].to_numpy())
    return out


CPU: dict[str, float] = {}


def timed(fn, label: str | None = None, repeat: int = 1):
    """Best wall time of ``repeat`` runs of ``fn()``; the best process CPU time (all
    threads) is kept under ``label``.

    The CPU time is reported next to the wall time because the benchmark machine may be
    shared: wall time then includes waiting for other people's processes.
    """
    walls, cpus = [], []
    for _ in range(repeat):
        cpu = time.process_time()
        start = time.perf_counter()
        value = fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    if label:
        CPU[label] = round(min(cpus), 2)
    return value, min(walls)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--skip-sdmetrics", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    scale = 0.1 if args.quick else 1.0
    real = datasets.load("adult")
    if args.quick:
        real = real.sample(int(len(real) * scale), random_state=0).reset_index(drop=True)
    syn = resample(real, len(real), seed=1)
    holdout = resample(real, int(16_000 * scale), seed=2)
    schema = Schema.infer(real)
    results: dict[str, object] = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "sizes": {"real": len(real), "synthetic": len(syn), "holdout": len(holdout)},
    }

    # 1. full report
    report, t_full = timed(
        lambda: evaluate(
            real, syn, holdout, target="income", sensitive=["sex", "race"], schema=schema
        ),
        "full_report",
    )
    results["full_report_s"] = round(t_full, 2)
    results["full_report_sections_s"] = report.meta["timings_s"]
    print(f"full report (all sections): {t_full:.1f} s  {report.meta['timings_s']}")

    # 2. fidelity on 100k rows
    n_big = int(100_000 * scale)
    big_r, big_s = resample(real, n_big, 3), resample(real, n_big, 4)
    fidelity(big_r.iloc[:1000], big_s.iloc[:1000], schema)  # warm-up (imports)
    _, t_ours_big = timed(lambda: fidelity(big_r, big_s, schema), "fidelity_100k_ours", 3)
    results["fidelity_100k_ours_s"] = round(t_ours_big, 3)
    print(f"fidelity {n_big} rows, ours: {t_ours_big:.2f} s (best of 3)")

    if not args.skip_sdmetrics:
        from sdmetrics.reports.single_table import QualityReport
        from sdmetrics.single_table.privacy.dcr_utils import calculate_dcr

        md = sdv_metadata(schema)
        qr = QualityReport()
        QualityReport().generate(big_r.iloc[:1000], big_s.iloc[:1000], md, verbose=False)
        _, t_sd_big = timed(
            lambda: qr.generate(big_r, big_s, md, verbose=False), "fidelity_100k_sdmetrics"
        )
        results["fidelity_100k_sdmetrics_s"] = round(t_sd_big, 3)
        results["fidelity_100k_speedup"] = round(t_sd_big / t_ours_big, 1)
        results["fidelity_100k_speedup_cpu"] = round(
            CPU["fidelity_100k_sdmetrics"] / max(CPU["fidelity_100k_ours"], 1e-9), 1
        )
        print(
            f"fidelity {n_big} rows, sdmetrics QualityReport: {t_sd_big:.2f} s (best of 3) "
            f"(ours {t_sd_big / t_ours_big:.1f}x faster)"
        )

        # 3. SDMetrics on the Adult sizes of (1)
        _, t_sd_q = timed(
            lambda: QualityReport().generate(real, syn, md, verbose=False),
            "adult_quality_sdmetrics",
            3,
        )
        _, t_our_q = timed(lambda: fidelity(real, syn, schema), "adult_quality_ours", 3)
        results["adult_quality_sdmetrics_s"] = round(t_sd_q, 2)
        results["adult_quality_ours_s"] = round(t_our_q, 3)
        n_slice = max(50, int(200 * scale))
        part = syn.iloc[:n_slice]

        def sd_dcr():
            calculate_dcr(part, real, md)
            calculate_dcr(part, holdout, md)

        _, t_sd_slice = timed(sd_dcr, "dcr_slice_sdmetrics")
        t_sd_dcr = t_sd_slice * len(syn) / n_slice
        _, t_our_slice = timed(
            lambda: (
                nearest_distances(part, real, schema),
                nearest_distances(part, holdout, schema),
            )
        )
        _, t_our_dcr = timed(
            lambda: (nearest_distances(syn, real, schema), nearest_distances(syn, holdout, schema)),
            "dcr_full_ours",
        )
        results["dcr_slice_rows"] = n_slice
        results["dcr_slice_sdmetrics_s"] = round(t_sd_slice, 2)
        results["dcr_slice_ours_s"] = round(t_our_slice, 3)
        results["dcr_full_sdmetrics_extrapolated_s"] = round(t_sd_dcr, 0)
        results["dcr_full_ours_s"] = round(t_our_dcr, 2)
        results["sdmetrics_quality_plus_dcr_s"] = round(t_sd_q + t_sd_dcr, 0)
        print(f"adult QualityReport: sdmetrics {t_sd_q:.1f} s, ours {t_our_q:.2f} s")
        print(
            f"DCR on {n_slice} synthetic rows: sdmetrics {t_sd_slice:.1f} s, ours "
            f"{t_our_slice:.2f} s; all rows: sdmetrics ~{t_sd_dcr:.0f} s (extrapolated), "
            f"ours {t_our_dcr:.1f} s"
        )

    # 4. 50k x 50k nearest neighbours
    n_nn = int(50_000 * scale)
    a, b = resample(real, n_nn, 5), resample(real, n_nn, 6)
    _, t_nn = timed(lambda: nearest_distances(a, b, schema), "nn_50k")
    results["nn_50k_x_50k_s"] = round(t_nn, 2)
    print(f"nearest neighbours {n_nn} x {n_nn}: {t_nn:.1f} s")

    results["cpu_s"] = CPU
    results["load_average_at_end"] = os.getloadavg()
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    name = "evaluation_quick.json" if args.quick else "evaluation.json"
    (out / name).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

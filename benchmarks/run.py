"""Command line of the benchmark harness.

Example (the recorded Adult comparison, ~30 minutes on 2 cores)::

    python -m benchmarks.run --backends tvae,sdv:tvae --datasets adult \\
        --epochs 300 --batch-size 500 --out benchmarks/results/adult_tvae_300

Writes ``<out>/results.md`` and ``<out>/results.json``; per-backend logs and the prepared
frames go under ``<out>/<dataset>/``.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from benchmarks.backends import known_backends
from benchmarks.datasets import DATASETS, DatasetError, default_data_dir
from benchmarks.harness import BenchmarkConfig, run


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one name, comma-separated")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Fit synthgen backends and SDV baselines side by side; write Markdown + "
        "JSON tables of timings, memory, SDMetrics quality and optional utility.",
    )
    parser.add_argument(
        "--backends",
        type=_names,
        required=True,
        help=f"comma-separated, from: {', '.join(known_backends())}",
    )
    parser.add_argument(
        "--datasets",
        type=_names,
        default=["adult"],
        help=f"comma-separated, from: {', '.join(sorted(DATASETS))} (default adult)",
    )
    parser.add_argument("--out", required=True, help="output folder for results.md/.json")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"folder with the dataset CSVs (default $SYNTHGEN_DATASETS or {default_data_dir()})",
    )
    parser.add_argument(
        "--quality-rows",
        type=int,
        default=10_000,
        help="size of the fixed real sample and of the synthetic sample SDMetrics compares",
    )
    parser.add_argument(
        "--sample-rows", type=int, default=10_000, help="rows generated for the sampling speed"
    )
    parser.add_argument(
        "--max-rows", type=int, default=None, help="subsample each dataset to this many rows"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="pin torch/OpenMP/BLAS threads of every backend (default: library defaults)",
    )
    parser.add_argument(
        "--backend-defaults",
        action="store_true",
        help="synthgen backends keep their own epochs/steps, batch size and early stopping "
        "(SDV baselines still get --epochs/--batch-size)",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="seconds: stop every synthgen fit after this long (max_training_time), for "
        "comparisons at equal wall time; give a large --epochs with it",
    )
    parser.add_argument(
        "--utility",
        action="store_true",
        help="hold out 20%% of real rows; add memorisation (DCR share, exact copies), the "
        "real-data quality floor and, for labelled datasets, TSTR/TRTR scores",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = "python -m benchmarks.run " + shlex.join(sys.argv[1:] if argv is None else argv)
    config = BenchmarkConfig(
        backends=args.backends,
        datasets=args.datasets,
        out=args.out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        data_dir=args.data_dir,
        quality_rows=args.quality_rows,
        sample_rows=args.sample_rows,
        max_rows=args.max_rows,
        utility=args.utility,
        threads=args.threads,
        backend_defaults=args.backend_defaults,
        time_budget=args.time_budget,
        command=command,
    )
    try:
        payload = run(config)
    except (ValueError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}/results.md and results.json")
    failed = [r for r in payload["results"] if r.get("status") != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

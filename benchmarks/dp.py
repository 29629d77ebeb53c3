"""DP harness: every DP backend on Adult at several epsilons, next to independent DP marginals.

For each (backend, epsilon): fit on the training split with ``dp=DPConfig(epsilon,
delta)``, sample as many rows as the training split, and score them: SDMetrics quality
and pair trends, TSTR ROC AUC next to TRTR (HistGradientBoosting, scored on the real
holdout), the distance-based membership-inference AUC (training vs holdout rows), and
the fit time. ``--canaries M`` adds the one-run canary audit (Steinke, Nasr, Jagielski
2023): a second fit on the training rows plus each of M canaries with probability 1/2,
canaries scored by the model's log-likelihood (TabularAR) or by minus the distance to
the closest synthetic row, and the epsilon lower bound that the guesses prove.

The baseline anyone can reproduce in the same run, ``marginals``: every column's noisy
histogram released with the whole epsilon by ``privacy.preprocessing`` (public grid,
DP bounds, DP category discovery) and each column sampled independently.

    python -m benchmarks.dp --backends tabular_ar,tvae,aim,mst,marginals --epsilons 1,3,10 \\
        --out benchmarks/results/dp.json

``aim`` and ``mst`` are the marginal-based backends (extra ``marginals``); every row also
reports the mean 2-way and 3-way total variation distance (``evaluation.marginals``,
over a seeded sample of 200 column sets of the discretised table).

Run on a quiet machine, one process at a time (torch with 2 threads collapses when
another busy process shares the cores).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import datasets
from benchmarks.metrics import quality_scores, utility_scores
from evaluation.marginals import average_tvd

#: DP settings per backend (epochs are fixed under DP: no early stopping).
BACKEND_OPTIONS: dict[str, dict[str, Any]] = {
    "tabular_ar": {"epochs": 20, "batch_size": 2048},
    "tvae": {"epochs": 30, "batch_size": 500},
    "ctgan": {"epochs": 10, "batch_size": 500, "pac": 1},
    "tabddpm": {"steps": 1000, "batch_size": 1024},
    "aim": {},
    "mst": {},
}
CLASSES = {
    "tabular_ar": "TabularAR",
    "tvae": "TVAE",
    "ctgan": "CTGAN",
    "tabddpm": "TabDDPM",
    "aim": "AIM",
    "mst": "MST",
}
#: Column sets sampled (seeded) for the 2-way and 3-way TVD columns.
TVD_SETS = 200


def split(seed: int = 0, public: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """Adult, 80/20 train/holdout (stratified on income), and the training schema
    (``public``: with the category lists of Adult's documentation marked public)."""
    from sklearn.model_selection import train_test_split

    import synthgen as sg

    frame = datasets.load("adult").reset_index(drop=True)
    train, holdout = train_test_split(
        frame, test_size=0.2, random_state=seed, stratify=frame["income"]
    )
    train, holdout = train.sort_index().reset_index(drop=True), holdout.sort_index()
    schema = sg.datasets.public_schema("adult", train) if public else sg.Schema.infer(train)
    return train, holdout.reset_index(drop=True), schema


class Marginals:
    """Independent DP marginals: the whole epsilon on per-column noisy histograms."""

    def __init__(self, epsilon: float, delta: float, seed: int = 0) -> None:
        self.epsilon, self.delta, self.seed = epsilon, delta, seed

    def fit(self, df: pd.DataFrame, schema: Any = None):
        import synthgen as sg
        from privacy.preprocessing import release_statistics
        from synthgen.backends.private import release_input_schema

        schema = sg.Schema.infer(df) if schema is None else schema
        rng = np.random.default_rng(self.seed)
        self.release_ = release_statistics(
            df, release_input_schema(schema), self.epsilon, self.delta, rng
        )
        self.privacy_spent = {"epsilon": self.release_.epsilon, "delta": self.release_.delta}
        return self

    def sample(self, n: int, seed: int = 0) -> pd.DataFrame:
        return self.release_.pseudo_frame(n, np.random.default_rng(seed + 1))


def make_model(name: str, epsilon: float, delta: float, overrides: dict[str, Any], seed: int = 0):
    if name == "marginals":
        return Marginals(epsilon, delta, seed=seed)
    import synthgen as sg
    from privacy import DPConfig

    options = {**BACKEND_OPTIONS[name], **overrides.get(name, {})}
    dp = DPConfig(epsilon=epsilon, delta=delta)
    return getattr(sg, CLASSES[name])(seed=seed, progress=False, dp=dp, **options)


def canary_scores(model: Any, canaries: pd.DataFrame, schema: Any) -> np.ndarray:
    """Membership scores of the canaries: log-likelihood where the model has one, else
    minus the distance to the closest synthetic row."""
    from privacy.attacks import nearest_distances

    release = getattr(model, "dp_release_", None)
    mapped = release.apply(canaries) if release is not None else canaries
    if hasattr(model, "log_prob"):
        return np.asarray(model.log_prob(mapped), dtype=float)
    synthetic = model.sample(20_000, seed=7)
    return -nearest_distances(mapped, synthetic, schema)[:, 0]


def run_one(
    name: str,
    epsilon: float,
    delta: float,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    schema: Any,
    overrides: dict[str, Any],
    canaries: int,
    seed: int = 0,
) -> dict[str, Any]:
    from privacy.attacks import membership_inference_auc

    model = make_model(name, epsilon, delta, overrides, seed)
    start = time.perf_counter()
    model.fit(train, schema=schema)
    fit_seconds = time.perf_counter() - start
    synthetic = model.sample(len(train), seed=seed + 1)
    row: dict[str, Any] = {"backend": name, "epsilon_target": epsilon, "delta": delta}
    row["seed"] = seed
    spent = model.privacy_spent
    row["spent"] = spent if isinstance(spent, dict) else spent.to_dict()
    row["fit_seconds"] = round(fit_seconds, 1)
    row.update(quality_scores(train, synthetic, schema))
    row.update(utility_scores(train, synthetic, holdout, schema, "income", "classification", 0))
    row["mia_auc"] = membership_inference_auc(train, holdout, synthetic, schema)
    row.update(tvd_scores(train, synthetic))
    if canaries and name != "marginals":
        from privacy.audit import make_canaries, run_canary_audit

        rng = np.random.default_rng(0)
        marks = make_canaries(train, canaries, rng)
        audit = run_canary_audit(
            train,
            marks,
            fit=lambda frame: make_model(name, epsilon, delta, overrides).fit(frame, schema),
            score=lambda fitted, rows: canary_scores(fitted, rows, schema),
            rng=rng,
            delta=delta,
            claimed_epsilon=epsilon,
        )
        row["canary_audit"] = audit.to_dict()
    return row


def tvd_scores(train: pd.DataFrame, synthetic: pd.DataFrame) -> dict[str, float]:
    """Mean 2-way and 3-way TVD (evaluation.marginals) over a seeded sample of sets."""
    return {
        f"tvd_{k}way": round(average_tvd(train, synthetic, k, max_sets=TVD_SETS, seed=0), 4)
        for k in (2, 3)
    }


def _parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``--set tvae.epochs=50`` -> {"tvae": {"epochs": 50}}."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, value = item.split("=", 1)
        backend, option = key.split(".", 1)
        out.setdefault(backend, {})[option] = json.loads(value)
    return out


def markdown_table(path: Path) -> str:
    """The harness's rows as the Markdown table docs/benchmarks.md records."""
    head = (
        "| backend | epsilon | seed | spent (prep + train) | quality | pair trends | 2-way TVD | "
        "3-way TVD | TSTR AUC | TRTR AUC | MIA AUC | canary bound | fit s |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for text in path.read_text().splitlines():
        row = json.loads(text)
        spent = row["spent"]
        prep = spent.get("preprocessing_epsilon", spent["epsilon"])
        train = spent.get("training_epsilon", 0.0)
        audit = row.get("canary_audit", {}).get("epsilon_lower_bound")
        name = row["backend"] + (
            " (doc. categories)" if "documented" in row.get("schema", "") else ""
        )
        lines.append(
            f"| {name} | {row['epsilon_target']:g} | {row.get('seed', 0)} | {spent['epsilon']:.3f} "
            f"({prep:.2f} + {train:.2f}) | {row['quality']:.4f} | {row['pair_trends']:.4f} | "
            f"{_cell(row.get('tvd_2way'))} | {_cell(row.get('tvd_3way'))} | "
            f"{row['tstr_roc_auc']:.4f} | {row['trtr_roc_auc']:.4f} | {row['mia_auc']:.4f} | "
            f"{'-' if audit is None else f'{audit:.2f}'} | {row['fit_seconds']:.0f} |"
        )
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tabular_ar,tvae,ctgan,tabddpm,aim,mst,marginals")
    parser.add_argument("--epsilons", default="1,3,10")
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument(
        "--seeds", default="0", help="comma-separated model seeds (same split), e.g. 0,1,2"
    )
    parser.add_argument("--canaries", type=int, default=0)
    parser.add_argument(
        "--public-categories",
        action="store_true",
        help="declare Adult's documented category lists public (sg.datasets.public_schema)",
    )
    parser.add_argument("--set", action="append", default=[], help="backend.option=JSON")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/dp.jsonl"))
    parser.add_argument("--table", action="store_true", help="print --out as Markdown, exit")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_table(args.out))
        return
    train, holdout, schema = split(public=args.public_categories)
    overrides = _parse_overrides(args.set)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    seeds = [int(s) for s in args.seeds.split(",")]
    for name in args.backends.split(","):
        for epsilon in (float(e) for e in args.epsilons.split(",")):
            for seed in seeds:
                row = run_one(
                    name, epsilon, args.delta, train, holdout, schema, overrides,
                    args.canaries, seed,
                )  # fmt: skip
                row["load_before"] = round(load, 2)
                row["schema"] = "documented categories" if args.public_categories else "inferred"
                with args.out.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                shown = {k: v for k, v in row.items() if k not in ("spent", "canary_audit")}
                print(json.dumps(shown), flush=True)
                if "canary_audit" in row:
                    print("  canary audit:", json.dumps(row["canary_audit"]), flush=True)
                load = os.getloadavg()[0]


if __name__ == "__main__":
    main()

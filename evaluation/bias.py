"""Bias: does the synthetic data keep, hide or widen the gaps between groups?

For each sensitive column (categorical/boolean; a numerical one is cut into quartiles):

1. representation: each group's share of the rows, real vs synthetic
   (``bias.<col>.share_max_diff`` = the largest absolute difference);
2. outcome: the target rate per group (share of the positive class, or the mean of a
   numerical target), real vs synthetic, and the gap between the best and worst group
   in each table (``bias.<col>.target_gap_real`` / ``_synthetic``);
3. downstream fairness: demographic parity difference and equalized odds difference
   (fairlearn) of the TSTR model against the TRTR model on the same test rows
   (classification targets only).

A gap is flagged as *widened* when the synthetic side exceeds the real side by more
than a margin: the larger of ``tolerance`` (default 0.02, two percentage points; times
the real target's standard deviation for a numerical target) and twice the standard
error of the difference (from the sizes and rates of the two groups that define each
gap), so that sampling noise in small groups is not reported as bias.
``bias.widened_gaps`` counts the flags so a gate can check one number. Groups with
fewer than ``MIN_GROUP_ROWS`` rows are listed but do not enter the gaps.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

from evaluation.encoding import category_keys, numeric_values
from evaluation.utility import UtilityRun, positive_class
from synthgen.schema import Schema

TOLERANCE = 0.02
#: Groups with fewer rows than this (in either table, or in the test rows for the
#: fairness measures) are listed but left out of the gaps: their rates are mostly noise.
MIN_GROUP_ROWS = 30


def _groups(series: pd.Series, kind: str, edges: np.ndarray | None) -> pd.Series:
    if kind in ("numerical", "datetime") and edges is not None:
        values = pd.Series(numeric_values(series), index=series.index)
        cut = pd.cut(values, bins=edges, include_lowest=True, duplicates="drop")
        return cut.astype(str).where(values.notna(), "<null>")
    return category_keys(series).astype(str).where(series.notna(), "<null>")


def _edges(series: pd.Series, kind: str) -> np.ndarray | None:
    if kind not in ("numerical", "datetime"):
        return None
    values = numeric_values(series)
    if np.isnan(values).all():
        return None
    edges = np.unique(np.nanquantile(values, [0, 0.25, 0.5, 0.75, 1]))
    edges[0], edges[-1] = -np.inf, np.inf
    return edges


def _outcome(df: pd.DataFrame, target: str, task: str, positive: object) -> pd.Series:
    if task == "classification":
        return (category_keys(df[target]).astype(str) == str(positive)).astype(float)
    return pd.to_numeric(df[target], errors="coerce")


def _extreme_se(rate: pd.Series, var: pd.Series, n: pd.Series) -> float:
    """Standard error of (highest - lowest group rate), from those two groups."""
    rate = rate.dropna()
    if len(rate) < 2:
        return 0.0
    hi, lo = rate.idxmax(), rate.idxmin()
    return float(math.sqrt(var[hi] / max(n[hi], 1) + var[lo] / max(n[lo], 1)))


def _rates_se(values: np.ndarray, groups: np.ndarray) -> float:
    """SE of the best-minus-worst group mean of 0/1 ``values``."""
    frame = pd.DataFrame({"v": values, "g": groups}).groupby("g")["v"]
    mean = frame.mean()
    return _extreme_se(mean, mean * (1 - mean), frame.size())


def _eo_se(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray) -> float:
    """SE of the larger of the TPR and FPR gaps (the equalized-odds difference)."""
    best_gap, best_se = -1.0, 0.0
    for label in (1, 0):
        sel = y_true == label
        if not sel.any():
            continue
        frame = pd.DataFrame({"v": y_pred[sel], "g": groups[sel]}).groupby("g")["v"]
        mean = frame.mean()
        if len(mean) >= 2 and mean.max() - mean.min() > best_gap:
            best_gap = float(mean.max() - mean.min())
            best_se = _extreme_se(mean, mean * (1 - mean), frame.size())
    return best_se


def bias(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    sensitive: list[str],
    schema: Schema,
    target: str | None = None,
    run: UtilityRun | None = None,
    tolerance: float = TOLERANCE,
) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
    """Representation, outcome and downstream-fairness gaps per sensitive column."""
    scores: dict[str, float] = {}
    group_rows, fair_rows = [], []
    widened = 0
    task = run.task if run is not None else None
    if target is not None and task is None:
        kind = schema[target].kind
        task = "classification" if kind in ("categorical", "boolean") else "regression"
    positive = positive_class(real, target) if task == "classification" else None
    for col in sensitive:
        kind = schema[col].kind
        edges = _edges(real[col], kind)
        g_r, g_s = _groups(real[col], kind, edges), _groups(synthetic[col], kind, edges)
        share_r = g_r.value_counts(normalize=True)
        share_s = g_s.value_counts(normalize=True)
        table = pd.DataFrame({"share_real": share_r, "share_synthetic": share_s}).fillna(0.0)
        table["share_diff"] = table["share_synthetic"] - table["share_real"]
        scores[f"bias.{col}.share_max_diff"] = float(table["share_diff"].abs().max())
        if target is not None:
            rate_r = _outcome(real, target, task, positive).groupby(g_r).mean()
            rate_s = _outcome(synthetic, target, task, positive).groupby(g_s).mean()
            table["target_rate_real"] = rate_r
            table["target_rate_synthetic"] = rate_s
            table["target_rate_diff"] = table["target_rate_synthetic"] - table["target_rate_real"]
            counts_r, counts_s = g_r.value_counts(), g_s.value_counts()
            table["rows_real"] = counts_r.reindex(table.index).fillna(0).astype(int)
            table["rows_synthetic"] = counts_s.reindex(table.index).fillna(0).astype(int)
            both = table.dropna(subset=["target_rate_real", "target_rate_synthetic"])
            both = both[
                (both["rows_real"] >= MIN_GROUP_ROWS) & (both["rows_synthetic"] >= MIN_GROUP_ROWS)
            ]
            out_r = _outcome(real, target, task, positive)
            out_s = _outcome(synthetic, target, task, positive)
            var_r = out_r.groupby(g_r).var(ddof=0).reindex(both.index)
            var_s = out_s.groupby(g_s).var(ddof=0).reindex(both.index)
            se = math.hypot(
                _extreme_se(both["target_rate_real"], var_r, both["rows_real"]),
                _extreme_se(both["target_rate_synthetic"], var_s, both["rows_synthetic"]),
            )
            scale = 1.0 if task == "classification" else float(out_r.std() or 1.0)
            margin = max(tolerance * scale, 2.0 * se)
            gap_r = (
                float(both["target_rate_real"].max() - both["target_rate_real"].min())
                if len(both)
                else math.nan
            )
            gap_s = (
                float(both["target_rate_synthetic"].max() - both["target_rate_synthetic"].min())
                if len(both)
                else math.nan
            )
            scores[f"bias.{col}.target_rate_max_diff"] = (
                float(table["target_rate_diff"].abs().max()) if len(both) else math.nan
            )
            scores[f"bias.{col}.target_gap_real"] = gap_r
            scores[f"bias.{col}.target_gap_synthetic"] = gap_s
            flag = bool(gap_s > gap_r + margin) if not math.isnan(gap_r + gap_s) else False
            widened += flag
            fair_rows.append((col, "target_rate_gap", gap_r, gap_s, margin, flag))
        table.insert(0, "group", table.index.astype(str))
        table.insert(0, "column", col)
        group_rows.append(table.reset_index(drop=True))
        if (
            run is not None
            and run.task == "classification"
            and "tstr" in run.predictions
            and "trtr" in run.predictions
        ):
            g_test = _groups(run.test[col], kind, edges).to_numpy()
            names, sizes = np.unique(g_test, return_counts=True)
            keep = np.isin(g_test, names[sizes >= MIN_GROUP_ROWS])
            if len(np.unique(g_test[keep])) < 2:
                keep = np.ones(len(g_test), dtype=bool)
            y_true = (run.y_true == run.positive).astype(int)[keep]
            vals, ses = {}, {}
            g = g_test[keep]
            for model in ("trtr", "tstr"):
                y_pred = (run.predictions[model] == run.positive).astype(int)[keep]
                vals[model] = (
                    float(demographic_parity_difference(y_true, y_pred, sensitive_features=g)),
                    float(equalized_odds_difference(y_true, y_pred, sensitive_features=g)),
                )
                ses[model] = (_rates_se(y_pred, g), _eo_se(y_true, y_pred, g))
            for i, metric in enumerate(("dp_diff", "eo_diff")):
                scores[f"bias.{col}.{metric}_trtr"] = vals["trtr"][i]
                scores[f"bias.{col}.{metric}_tstr"] = vals["tstr"][i]
                margin = max(tolerance, 2.0 * math.hypot(ses["trtr"][i], ses["tstr"][i]))
                flag = bool(vals["tstr"][i] > vals["trtr"][i] + margin)
                widened += flag
                name = (
                    "demographic_parity_difference"
                    if metric == "dp_diff"
                    else "equalized_odds_difference"
                )
                fair_rows.append((col, name, vals["trtr"][i], vals["tstr"][i], margin, flag))
    scores["bias.widened_gaps"] = float(widened)
    details = {
        "bias.groups": pd.concat(group_rows, ignore_index=True) if group_rows else pd.DataFrame(),
        "bias.gaps": pd.DataFrame(
            fair_rows, columns=["column", "measure", "real", "synthetic", "margin", "widened"]
        ),
    }
    return scores, details

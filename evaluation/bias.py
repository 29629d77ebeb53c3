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
than ``tolerance`` (default 0.02, two percentage points); ``bias.widened_gaps`` counts
the flags so a gate can check one number.
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
    edges = np.unique(np.nanquantile(values, [0, .25, .5, .75, 1]))
    edges[0], edges[-1] = -np.inf, np.inf
    return edges


def _outcome(df: pd.DataFrame, target: str, task: str, positive: object) -> pd.Series:
    if task == "classification":
        return (category_keys(df[target]).astype(str) == str(positive)).astype(float)
    return pd.to_numeric(df[target], errors="coerce")


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
            both = table.dropna(subset=["target_rate_real", "target_rate_synthetic"])
            gap_r = float(both["target_rate_real"].max() - both["target_rate_real"].min()) \
                if len(both) else math.nan
            gap_s = float(both["target_rate_synthetic"].max()
                          - both["target_rate_synthetic"].min()) if len(both) else math.nan
            scores[f"bias.{col}.target_rate_max_diff"] = float(
                table["target_rate_diff"].abs().max()) if len(both) else math.nan
            scores[f"bias.{col}.target_gap_real"] = gap_r
            scores[f"bias.{col}.target_gap_synthetic"] = gap_s
            flag = bool(gap_s > gap_r + tolerance) if not math.isnan(gap_r + gap_s) else False
            widened += flag
            fair_rows.append((col, "target_rate_gap", gap_r, gap_s, flag))
        table.insert(0, "group", table.index.astype(str))
        table.insert(0, "column", col)
        group_rows.append(table.reset_index(drop=True))
        if run is not None and run.task == "classification" and "tstr" in run.predictions \
                and "trtr" in run.predictions:
            g_test = _groups(run.test[col], kind, edges).to_numpy()
            y_true = (run.y_true == run.positive).astype(int)
            vals = {}
            for model in ("trtr", "tstr"):
                y_pred = (run.predictions[model] == run.positive).astype(int)
                vals[model] = (
                    float(demographic_parity_difference(y_true, y_pred, sensitive_features=g_test)),
                    float(equalized_odds_difference(y_true, y_pred, sensitive_features=g_test)),
                )
            for i, metric in enumerate(("dp_diff", "eo_diff")):
                scores[f"bias.{col}.{metric}_trtr"] = vals["trtr"][i]
                scores[f"bias.{col}.{metric}_tstr"] = vals["tstr"][i]
                flag = bool(vals["tstr"][i] > vals["trtr"][i] + tolerance)
                widened += flag
                name = "demographic_parity_difference" if metric == "dp_diff" \
                    else "equalized_odds_difference"
                fair_rows.append((col, name, vals["trtr"][i], vals["tstr"][i], flag))
    scores["bias.widened_gaps"] = float(widened)
    details = {
        "bias.groups": pd.concat(group_rows, ignore_index=True) if group_rows else pd.DataFrame(),
        "bias.gaps": pd.DataFrame(fair_rows, columns=["column", "measure", "real", "synthetic",
                                                      "widened"]),
    }
    return scores, details

"""Plot data for the HTML report, computed once at evaluation time.

The report stores small, JSON-safe summaries (histogram densities, category shares,
a pair-score matrix) instead of the raw rows, so a saved report can be re-rendered
without the data and never leaks individual records.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from evaluation.encoding import CONTINUOUS, category_keys, numeric_values
from synthgen.schema import Schema

BINS = 24
TOP_CATEGORIES = 12


def _histogram(real: np.ndarray, syn: np.ndarray, is_datetime: bool) -> dict[str, Any]:
    r, s = real[~np.isnan(real)], syn[~np.isnan(syn)]
    if len(r) == 0:
        return {"type": "empty"}
    lo, hi = np.quantile(r, [0.005, 0.995]) if len(r) > 200 else (r.min(), r.max())
    if hi <= lo:
        lo, hi = r.min(), max(r.max(), r.min() + 1.0)
    edges = np.linspace(lo, hi, BINS + 1)
    hr = np.histogram(np.clip(r, lo, hi), bins=edges)[0] / max(len(r), 1)
    hs = (
        np.histogram(np.clip(s, lo, hi), bins=edges)[0] / max(len(s), 1)
        if len(s)
        else np.zeros(BINS)
    )
    labels = edges
    if is_datetime:
        labels = [str(pd.Timestamp(int(e)).date()) for e in edges]
    else:
        labels = [float(f"{e:.4g}") for e in edges]
    return {
        "type": "hist",
        "edges": labels,
        "real": hr.round(6).tolist(),
        "synthetic": hs.round(6).tolist(),
        "null_real": float(np.isnan(real).mean()),
        "null_synthetic": float(np.isnan(syn).mean()) if len(syn) else 0.0,
    }


def _bars(real: pd.Series, syn: pd.Series) -> dict[str, Any]:
    r = category_keys(real).astype(str).where(real.notna(), "<null>").value_counts(normalize=True)
    s = category_keys(syn).astype(str).where(syn.notna(), "<null>").value_counts(normalize=True)
    top = list(r.index[:TOP_CATEGORIES])
    rest_r = float(r.drop(top).sum())
    rest_s = float(s.drop([c for c in top if c in s.index]).sum())
    cats = top + (["(other)"] if rest_r > 0 or rest_s > 0 else [])
    vr = [float(r.get(c, 0.0)) for c in top] + ([rest_r] if len(cats) > len(top) else [])
    vs = [float(s.get(c, 0.0)) for c in top] + ([rest_s] if len(cats) > len(top) else [])
    return {"type": "bars", "categories": cats, "real": vr, "synthetic": vs}


def distributions(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in schema:
        if spec.kind == "id":
            continue
        if spec.kind in CONTINUOUS:
            out[spec.name] = _histogram(
                numeric_values(real[spec.name]),
                numeric_values(synthetic[spec.name]),
                spec.kind == "datetime",
            )
        else:
            out[spec.name] = _bars(real[spec.name], synthetic[spec.name])
        out[spec.name]["kind"] = spec.kind
    return out


def pair_matrix(pairs: pd.DataFrame) -> dict[str, Any]:
    """Symmetric matrix of 1 - pair similarity (0 = the pair's trend is kept)."""
    names = list(dict.fromkeys(list(pairs["column_1"]) + list(pairs["column_2"])))
    idx = {n: i for i, n in enumerate(names)}
    m = np.full((len(names), len(names)), np.nan)
    np.fill_diagonal(m, 0.0)
    for a, b, sim in zip(pairs["column_1"], pairs["column_2"], pairs["similarity"], strict=True):
        m[idx[a], idx[b]] = m[idx[b], idx[a]] = 1.0 - sim
    values = [[None if np.isnan(v) else round(float(v), 4) for v in row] for row in m]
    return {"columns": names, "values": values}

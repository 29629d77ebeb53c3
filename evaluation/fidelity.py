"""Fidelity: Column Shapes and Column Pair Trends, defined exactly as SDMetrics 0.32.

SDMetrics' ``QualityReport`` is the reference most users know, so our numbers must be
the same numbers (a test checks them to 1e-6). Its implementation loops over columns
and pairs with pandas groupbys; here every column is turned into integer codes once and
each pair is a ``bincount``, which is what makes the report fast on large tables.

The definitions reproduced (sdmetrics 0.32, ``reports.single_table.QualityReport``):

- Column Shapes: per column, ``KSComplement`` (1 - two-sample KS statistic, nulls
  dropped, values rounded to 14 decimals, datetimes as nanoseconds) for numerical and
  datetime columns, ``TVComplement`` (1 - total variation distance of the category
  frequencies, nulls dropped, a synthetic-only category adds 1e-6 to the real counts)
  for categorical and boolean columns. The property is the mean over columns; id
  columns are skipped; a column that cannot be scored (all null) is NaN and left out.
- Column Pair Trends: for every pair of non-id columns (in schema order),
  * both continuous: ``CorrelationSimilarity`` = 1 - |r_real - r_syn| / 2 with Pearson
    r on the rows where both values are present; a pair with a constant column is an
    error (NaN). The pair only counts when |r_real| > 0.5.
  * otherwise ``ContingencySimilarity`` = 1 - TV distance of the joint frequency
    tables (nulls are a category). A continuous column in a mixed pair is discretised
    into 10 equal-width bins with ``np.histogram_bin_edges`` of *its own frame's*
    non-null values and ``np.digitize`` (so nulls and the maximum share the top code,
    exactly as SDMetrics does). The pair only counts when the real table's Cramér's V
    (no continuity correction) is > 0.3 and the table is at least 2 x 2.
  The property is the mean over counting pairs.
- Overall: the mean of the two properties (NaN ignored).

One deliberate difference: for tables over 50,000 rows SDMetrics scores each
contingency pair on a random (unseeded) 50,000-row subsample; we always use every row,
so results are deterministic (and equal to SDMetrics' whenever both tables have at most
50,000 rows).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from evaluation.encoding import CONTINUOUS, DISCRETE
from synthgen.core.values import datetime_ns, datetime_to_float, joint_codes
from synthgen.schema import Schema

#: SDMetrics 0.32 ``DEFAULT_REAL_CORRELATION_THRESHOLD`` / ``DEFAULT_REAL_ASSOCIATION_THRESHOLD``.
REAL_CORRELATION_THRESHOLD = 0.5
REAL_ASSOCIATION_THRESHOLD = 0.3
KS_DECIMALS = 14  # sys.float_info.dig - 1, as SDMetrics rounds before the KS test


def sdv_metadata(schema: Schema) -> dict[str, Any]:
    """SDV/SDMetrics single-table metadata dict describing ``schema``."""
    columns: dict[str, Any] = {}
    for spec in schema:
        sdtype = {
            "numerical": "numerical",
            "categorical": "categorical",
            "boolean": "boolean",
            "datetime": "datetime",
            "id": "id",
        }[spec.kind]
        columns[spec.name] = {"sdtype": sdtype}
    return {"columns": columns}


# ----------------------------------------------------------------- per-column values
def _continuous(series: pd.Series) -> np.ndarray:
    """Values the way SDMetrics sees a continuous column (datetimes as int64 ns)."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return datetime_to_float(series) if series.isna().any() else datetime_ns(series)
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype="float64")
    if pd.api.types.is_integer_dtype(series.dtype):
        return series.to_numpy(dtype="int64")
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _nonnull(values: np.ndarray) -> np.ndarray:
    return values if values.dtype.kind in "iu" else values[~np.isnan(values)]


def ks_complement(real: np.ndarray, synthetic: np.ndarray) -> float:
    """1 - KS D statistic of two samples (nulls dropped), as ``scipy.stats.ks_2samp``."""
    a, b = _nonnull(real), _nonnull(synthetic)
    if len(a) == 0 or len(b) == 0:
        return math.nan
    if a.dtype.kind == "f":
        a, b = np.round(a, KS_DECIMALS), np.round(b, KS_DECIMALS)
    a, b = np.sort(a), np.sort(b)
    both = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, both, side="right") / len(a)
    cdf_b = np.searchsorted(b, both, side="right") / len(b)
    return float(1.0 - np.max(np.abs(cdf_a - cdf_b)))


def tv_complement(real: pd.Series, synthetic: pd.Series) -> float:
    """1 - total variation distance of category frequencies (nulls dropped)."""
    r = real.value_counts(dropna=True)
    s = synthetic.value_counts(dropna=True)
    if r.index.dtype != s.index.dtype:  # e.g. str vs categorical: compare plain values
        r.index, s.index = r.index.astype(object), s.index.astype(object)
    if len(r) == 0 or len(s) == 0:
        return math.nan
    unseen = s.index.difference(r.index)
    r = r.astype("float64")
    if len(unseen):
        r = pd.concat([r, pd.Series(1e-6, index=unseen)])
    f_exp = r / r.sum()
    f_obs = s.reindex(f_exp.index, fill_value=0) / s.sum()
    return float(1.0 - 0.5 * np.abs(f_obs.to_numpy() - f_exp.to_numpy()).sum())


def _tv_from_codes(real: np.ndarray, synthetic: np.ndarray, size: int, null: int) -> float:
    """``tv_complement`` on factorised codes (``null`` = the code of missing values)."""
    r = np.bincount(real, minlength=size).astype("float64")
    s = np.bincount(synthetic, minlength=size).astype("float64")
    if null >= 0:
        r[null] = s[null] = 0.0
    if r.sum() == 0 or s.sum() == 0:
        return math.nan
    r[(r == 0) & (s > 0)] = 1e-6  # SDMetrics' regularisation of synthetic-only categories
    return float(1.0 - 0.5 * np.abs(s / s.sum() - r / r.sum()).sum())


def column_shapes(
    real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, coded: _Coded | None = None
) -> pd.DataFrame:
    """Per-column shape scores (columns: column, kind, metric, score)."""
    coded = coded or _Coded(real, synthetic, schema)
    rows = []
    for spec in schema:
        name = spec.name
        if spec.kind in CONTINUOUS:
            score = ks_complement(coded.cont_real[name], coded.cont_syn[name])
            rows.append((name, spec.kind, "KSComplement", score))
        elif spec.kind in DISCRETE:
            score = _tv_from_codes(
                coded.codes_real[name],
                coded.codes_syn[name],
                coded.sizes[name],
                coded.null_code[name],
            )
            rows.append((name, spec.kind, "TVComplement", score))
    return pd.DataFrame(rows, columns=["column", "kind", "metric", "score"])


# ----------------------------------------------------------------- pair trends
def _digitize(values: np.ndarray) -> np.ndarray:
    """SDMetrics' discretisation: 10 equal-width bins of the frame's own values.

    A constant column of large numbers (a constant datetime, in nanoseconds) has no
    ten finite-sized bins around its value in float64, so numpy refuses it; shifted to
    start at 0 it bins as any constant column does (every value in the middle bin).
    """
    present = _nonnull(values)
    try:
        edges = np.histogram_bin_edges(present)
    except ValueError:
        low = float(present.min())
        values = values.astype("float64") - low
        edges = np.histogram_bin_edges(present.astype("float64") - low)
    return np.digitize(values, bins=edges).astype("int64")


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = x.astype("float64")
    y = y.astype("float64")
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    if len(x) < 2:
        return math.nan
    xm, ym = x - x.mean(), y - y.mean()
    nx, ny = np.linalg.norm(xm), np.linalg.norm(ym)
    if nx == 0 or ny == 0:
        return math.nan
    return float(np.clip(np.dot(xm / nx, ym / ny), -1.0, 1.0))


def _n_unique(values: np.ndarray) -> int:
    """0, 1 or 2 (= "more than one"): all the constant-column check needs, in O(n)."""
    v = _nonnull(values)
    if len(v) == 0:
        return 0
    return 1 if v.min() == v.max() else 2


def _cramers_v(table: np.ndarray) -> float:
    """Cramér's V of a contingency table without continuity correction (as scipy)."""
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if table.sum() == 0 or min(table.shape) < 2:
        return math.nan
    n = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return math.sqrt(chi2 / n / (min(table.shape) - 1))


class _Coded:
    """Integer codes of every column of a real/synthetic pair, computed once."""

    def __init__(self, real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema):
        self.cont_real: dict[str, np.ndarray] = {}
        self.cont_syn: dict[str, np.ndarray] = {}
        self.codes_real: dict[str, np.ndarray] = {}
        self.codes_syn: dict[str, np.ndarray] = {}
        self.sizes: dict[str, int] = {}
        self.unique: dict[str, int] = {}
        self.null_code: dict[str, int] = {}
        self._unit: dict[tuple[str, bool], Any] = {}
        for spec in schema:
            name = spec.name
            if spec.kind in CONTINUOUS:
                r, s = _continuous(real[name]), _continuous(synthetic[name])
                self.cont_real[name], self.cont_syn[name] = r, s
                self.unique[name] = min(_n_unique(r), _n_unique(s))
                self.codes_real[name], self.codes_syn[name] = _digitize(r), _digitize(s)
                self.sizes[name] = 12  # digitize codes 0..11 (11 = above the last edge / NaN)
            elif spec.kind in DISCRETE:
                codes_real, codes_syn, uniques = joint_codes(real[name], synthetic[name])
                self.codes_real[name], self.codes_syn[name] = codes_real, codes_syn
                self.sizes[name] = max(len(uniques), 1)
                nulls = np.nonzero(pd.isna(uniques))[0]
                self.null_code[name] = int(nulls[0]) if len(nulls) else -1

    def unit(self, name: str, synthetic: bool) -> np.ndarray | None:
        """Centred, unit-norm column (None when it has nulls), so r is one dot product."""
        key = (name, synthetic)
        if key not in self._unit:
            values = (self.cont_syn if synthetic else self.cont_real)[name].astype("float64")
            if np.isnan(values).any():
                self._unit[key] = None
            else:
                centred = values - values.mean()
                norm = np.linalg.norm(centred)
                self._unit[key] = centred / norm if norm > 0 else None
        return self._unit[key]

    def _gram(self, synthetic: bool) -> tuple[dict[str, int], np.ndarray]:
        """Correlations of every null-free continuous column, in one matrix product
        (one BLAS call instead of one per pair, which matters on busy machines)."""
        key = ("__gram__", synthetic)
        if key not in self._unit:
            names = [n for n in self.cont_real if self.unit(n, synthetic) is not None]
            if names:
                units = np.column_stack([self.unit(n, synthetic) for n in names])
                gram = units.T @ units
            else:
                gram = np.zeros((0, 0))
            self._unit[key] = ({n: i for i, n in enumerate(names)}, gram)
        return self._unit[key]

    def pearson(self, a: str, b: str, synthetic: bool) -> float:
        index, gram = self._gram(synthetic)
        if a in index and b in index:
            return float(np.clip(gram[index[a], index[b]], -1.0, 1.0))
        frame = self.cont_syn if synthetic else self.cont_real
        return _pearson(frame[a], frame[b])

    def joint(self, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
        kb = self.sizes[b]
        size = self.sizes[a] * kb
        r = np.bincount(self.codes_real[a] * kb + self.codes_real[b], minlength=size)
        s = np.bincount(self.codes_syn[a] * kb + self.codes_syn[b], minlength=size)
        return r.reshape(self.sizes[a], kb), s.reshape(self.sizes[a], kb)


def pair_trends(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: Schema,
    correlation_threshold: float = REAL_CORRELATION_THRESHOLD,
    association_threshold: float = REAL_ASSOCIATION_THRESHOLD,
    coded: _Coded | None = None,
) -> pd.DataFrame:
    """Per-pair trend scores.

    ``score`` follows SDMetrics (NaN for pairs under the real-data threshold) and
    ``meets_threshold`` says whether the pair counts; ``similarity`` is the same metric
    without any threshold, used for the heatmap.
    """
    coded = coded or _Coded(real, synthetic, schema)
    names = [s.name for s in schema if s.kind in CONTINUOUS + DISCRETE]
    kinds = {s.name: s.kind for s in schema}
    rows = []
    for a, b in itertools.combinations(names, 2):
        cont_a, cont_b = kinds[a] in CONTINUOUS, kinds[b] in CONTINUOUS
        if cont_a and cont_b:
            constant = min(coded.unique[a], coded.unique[b]) == 1
            if constant:
                rows.append(
                    (
                        a,
                        b,
                        "CorrelationSimilarity",
                        math.nan,
                        math.nan,
                        math.nan,
                        math.nan,
                        math.nan,
                        False,
                    )
                )
                continue
            r_real, r_syn = coded.pearson(a, b, False), coded.pearson(a, b, True)
            sim = (
                1 - abs(r_real - r_syn) / 2
                if not (math.isnan(r_real) or math.isnan(r_syn))
                else math.nan
            )
            meets = (not math.isnan(r_real)) and abs(r_real) > correlation_threshold
            if correlation_threshold <= 0:
                meets = True
            score = sim if meets else math.nan
            rows.append((a, b, "CorrelationSimilarity", score, sim, r_real, r_syn, math.nan, meets))
        else:
            table_r, table_s = coded.joint(a, b)
            p_r = table_r / max(table_r.sum(), 1)
            p_s = table_s / max(table_s.sum(), 1)
            sim = float(1 - 0.5 * np.abs(p_r - p_s).sum())
            assoc = _cramers_v(table_r) if association_threshold > 0 else math.nan
            if association_threshold > 0:
                meets = (not math.isnan(assoc)) and assoc > association_threshold
            else:
                meets = True
            score = sim if meets else math.nan
            rows.append(
                (a, b, "ContingencySimilarity", score, sim, math.nan, math.nan, assoc, meets)
            )
    return pd.DataFrame(
        rows,
        columns=[
            "column_1",
            "column_2",
            "metric",
            "score",
            "similarity",
            "real_correlation",
            "synthetic_correlation",
            "real_association",
            "meets_threshold",
        ],
    )


def _mean(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.mean()) if len(values) else math.nan


def fidelity(
    real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema
) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
    """Headline fidelity scores and their per-column / per-pair tables."""
    coded = _Coded(real, synthetic, schema)
    shapes = column_shapes(real, synthetic, schema, coded)
    pairs = pair_trends(real, synthetic, schema, coded=coded)
    shape_score = _mean(shapes["score"])
    pair_score = _mean(pairs.loc[pairs["meets_threshold"].astype(bool), "score"])
    present = [v for v in (shape_score, pair_score) if not math.isnan(v)]
    overall = float(np.mean(present)) if present else math.nan
    scores = {
        "fidelity.column_shapes": shape_score,
        "fidelity.pair_trends": pair_score,
        "fidelity.overall": overall,
    }
    return scores, {"fidelity.column_shapes": shapes, "fidelity.pair_trends": pairs}

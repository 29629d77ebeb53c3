"""k-way marginal total variation distance between a real and a synthetic table.

The error measure of the marginal-based DP literature (AIM, MST): for a set of k
columns, the total variation distance between the two tables' normalised k-way
histograms, ``TVD = 1/2 * sum_cells |p_real(cell) - p_synthetic(cell)|`` (0: the same
marginal, 1: disjoint supports), averaged over every k-column set or over a seeded
sample of them when there are more than ``max_sets``.

Both tables are discretised the same way first (``discretize``), by rules fitted on the
real table only: a categorical or boolean column keeps its values, a numerical or
datetime column with more than ``bins`` distinct values is cut at the real column's
quantiles (``bins`` bins, repeated quantiles merged), nulls are a cell of their own and
synthetic values outside the real range fall in the first or last bin.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from synthgen.errors import ConfigError, DataError

#: Quantile bins of a numerical column with many distinct values.
DEFAULT_BINS = 16


def _codes(real: pd.Series, synthetic: pd.Series, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer cells of both columns under rules fitted on ``real`` (null: its own cell)."""
    numeric = pd.api.types.is_numeric_dtype(real.dtype) and not pd.api.types.is_bool_dtype(
        real.dtype
    )
    datetime = pd.api.types.is_datetime64_any_dtype(real.dtype)
    if (numeric or datetime) and real.nunique(dropna=True) > bins:
        r = real.astype("int64" if datetime else "float64").to_numpy(dtype=np.float64)
        s_series = pd.to_datetime(synthetic) if datetime else pd.to_numeric(synthetic)
        s = s_series.astype("int64" if datetime else "float64").to_numpy(dtype=np.float64)
        if datetime:
            r = np.where(real.isna().to_numpy(), np.nan, r)
            s = np.where(synthetic.isna().to_numpy(), np.nan, s)
        present = r[~np.isnan(r)]
        edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))

        def cut(x: np.ndarray) -> np.ndarray:
            out = np.searchsorted(edges, np.nan_to_num(x), side="right")
            return np.where(np.isnan(x), len(edges) + 1, out)

        return cut(r), cut(s)
    # discrete (or few distinct numbers): one cell per value seen in either table
    rk, sk = _keys(real), _keys(synthetic)
    keys = pd.Index(pd.unique(pd.concat([rk, sk], ignore_index=True)))
    return keys.get_indexer(rk).astype(np.int64), keys.get_indexer(sk).astype(np.int64)


def _keys(series: pd.Series) -> pd.Series:
    """Values as text (1 and 1.0 meet, as do the two tables' dtypes); nulls as one key."""
    text = series.astype(object).map(str)
    return text.where(series.notna().to_numpy(), "\x00null")


def discretize(
    real: pd.DataFrame, synthetic: pd.DataFrame, bins: int = DEFAULT_BINS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables as integer cells per column, by the same rules (fitted on ``real``)."""
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ConfigError(f"bins={bins!r} must be an integer >= 1")
    missing = [c for c in real.columns if c not in synthetic.columns]
    if missing:
        raise DataError(f"the synthetic table lacks column(s) {missing} of the real one")
    r_out, s_out = {}, {}
    for name in real.columns:
        r_out[name], s_out[name] = _codes(real[name], synthetic[name], bins)
    return pd.DataFrame(r_out), pd.DataFrame(s_out)


def marginal_tvd(real: pd.DataFrame, synthetic: pd.DataFrame, columns: list[str]) -> float:
    """TVD between the two tables' marginals over ``columns`` (already discretised)."""
    r = real[columns].value_counts(normalize=True, dropna=False)
    s = synthetic[columns].value_counts(normalize=True, dropna=False)
    joined = pd.concat([r, s], axis=1, keys=["r", "s"]).fillna(0.0)
    return float(0.5 * np.abs(joined["r"] - joined["s"]).sum())


def average_tvd(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    k: int,
    *,
    bins: int = DEFAULT_BINS,
    max_sets: int | None = 200,
    seed: int = 0,
    columns: list[str] | None = None,
) -> float:
    """Mean k-way TVD over all k-column sets, or a seeded sample of ``max_sets`` of them.

    ``columns`` restricts the sets to those columns (default: all of ``real``'s). The
    tables are discretised by ``discretize`` (fitted on ``real``).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k={k!r} must be an integer >= 1 (2 for pairs, 3 for triples)")
    names = list(real.columns if columns is None else columns)
    if k > len(names):
        raise ConfigError(f"k={k} is more than the {len(names)} columns compared")
    r, s = discretize(real[names], synthetic[names], bins)
    count = math.comb(len(names), k)
    if max_sets is not None and count > max_sets:
        rng = np.random.default_rng(seed)
        chosen: set[tuple[int, ...]] = set()
        while len(chosen) < max_sets:
            chosen.add(tuple(sorted(rng.choice(len(names), size=k, replace=False).tolist())))
        sets: Any = [tuple(names[i] for i in c) for c in sorted(chosen)]
    else:
        sets = itertools.combinations(names, k)
    values = [marginal_tvd(r, s, list(c)) for c in sets]
    return float(np.mean(values))

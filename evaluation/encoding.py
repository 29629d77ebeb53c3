"""A small, reversible-enough encoding of mixed tables into numbers for the evaluators.

Detection, alpha-precision, FID and the utility models all need the real and the
synthetic rows in one numeric space that is *fitted on the real data only*, so that a
synthetic table cannot move the yardstick it is measured with. Two views are offered:

- ``standardised``: numerical/datetime columns z-scored (plus a missing flag when the
  column has nulls), categorical/boolean columns one-hot encoded (null is its own
  category, unseen synthetic values encode as all zeros). Distances in this space are
  meaningful, which is what alpha-precision and FID need.
- ``ordinal``: one float per column (category codes, NaN for unseen or null), for the
  histogram gradient boosting models, which handle categories and nulls natively.

Identifier columns are dropped: they carry no distributional information.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from synthgen.core.values import category_codes, category_keys, numeric_values
from synthgen.schema import Schema

CONTINUOUS = ("numerical", "datetime")
DISCRETE = ("categorical", "boolean")
MAX_HGB_CATEGORIES = 250


@dataclass
class TableEncoder:
    """Encode frames with statistics learnt from the real frame (see module docstring)."""

    schema: Schema
    numeric: list[str] = field(default_factory=list)
    discrete: list[str] = field(default_factory=list)
    means: dict[str, float] = field(default_factory=dict)
    stds: dict[str, float] = field(default_factory=dict)
    has_null: dict[str, bool] = field(default_factory=dict)
    categories: dict[str, list] = field(default_factory=dict)

    @classmethod
    def fit(cls, real: pd.DataFrame, schema: Schema, exclude: tuple[str, ...] = ()) -> TableEncoder:
        enc = cls(schema)
        for spec in schema:
            if spec.name in exclude or spec.kind == "id":
                continue
            if spec.kind in CONTINUOUS:
                vals = numeric_values(real[spec.name])
                finite = vals[~np.isnan(vals)]
                mean = float(finite.mean()) if len(finite) else 0.0
                std = float(finite.std()) if len(finite) else 1.0
                enc.numeric.append(spec.name)
                enc.means[spec.name] = mean
                enc.stds[spec.name] = std if std > 0 else 1.0
                enc.has_null[spec.name] = bool(np.isnan(vals).any())
            else:
                keys = category_keys(real[spec.name])
                counts = keys.value_counts(dropna=False)
                enc.discrete.append(spec.name)
                enc.categories[spec.name] = list(counts.index)  # most frequent first
        return enc

    @property
    def columns(self) -> list[str]:
        return [c for c in self.schema.names if c in self.numeric or c in self.discrete]

    def _codes(self, series: pd.Series, name: str) -> np.ndarray:
        """Index of each value in the learnt categories (-1 when unseen); vectorised."""
        cats = self.categories[name]
        known = [c for c in cats if c is not None]
        codes = category_codes(series.astype(object), known)
        # pd.Categorical orders codes as ``known``; shift them to positions in ``cats``
        positions = np.array([cats.index(c) for c in known] + [-1], dtype="int64")
        out = positions[codes]  # code -1 (unseen or null) picks the trailing -1
        if None in cats:
            out[series.isna().to_numpy()] = cats.index(None)
        return out

    def standardised(self, df: pd.DataFrame) -> np.ndarray:
        """Float32 matrix: z-scored numbers (+ missing flags) and one-hot categories."""
        blocks: list[np.ndarray] = []
        for name in self.columns:
            if name in self.numeric:
                vals = (numeric_values(df[name]) - self.means[name]) / self.stds[name]
                missing = np.isnan(vals)
                vals[missing] = 0.0
                blocks.append(vals[:, None])
                if self.has_null[name]:
                    blocks.append(missing.astype("float64")[:, None])
            else:
                codes = self._codes(df[name], name)
                onehot = np.zeros((len(df), len(self.categories[name])), dtype="float64")
                ok = codes >= 0
                onehot[np.nonzero(ok)[0], codes[ok]] = 1.0
                blocks.append(onehot)
        if not blocks:
            return np.zeros((len(df), 0), dtype="float32")
        return np.hstack(blocks).astype("float32")

    def ordinal(
        self, df: pd.DataFrame, exclude: tuple[str, ...] = ()
    ) -> tuple[np.ndarray, list[bool]]:
        """Float matrix with one column per feature, and the mask of categorical features."""
        cols, mask = [], []
        for name in self.columns:
            if name in exclude:
                continue
            if name in self.numeric:
                cols.append(numeric_values(df[name]))
                mask.append(False)
            else:
                codes = self._codes(df[name], name).astype("float64")
                codes[codes < 0] = np.nan
                cols.append(codes)
                # HistGradientBoosting takes at most 255 categories per feature; beyond
                # that the codes are used as an ordered number instead.
                mask.append(len(self.categories[name]) <= MAX_HGB_CATEGORIES)
        if not cols:
            return np.zeros((len(df), 0)), []
        return np.column_stack(cols), mask

"""What a fit under ``dp=`` learns from the raw table outside DP-SGD, and its cost.

A generator learns from the raw data in two places: the transform (category lists,
bounds, mixture modes, quantiles, token bins) and data-derived initial values (class
frequencies, output biases, the conditional vector's frequencies); then DP-SGD trains
the networks. Under ``dp=`` the first two may use only

- what the schema declares public (``ColumnSpec.public``: categories or bounds known
  without reading the data, e.g. from a data dictionary), at no cost, and
- the DP release of ``privacy.preprocessing``: DP bounds, DP category discovery and
  noisy histograms, composed into the total (basic composition: epsilons and deltas
  add).

The transform is fitted, and the backend initialised, on a *pseudo frame* drawn from
the released histograms (post-processing, so free), plus *coverage rows* holding
every released category and every integer of a narrow released range once, so that
every real value the released domain admits has an encoding. DP-SGD then reads the
private rows mapped onto the released domain (``release.apply``: continuous values
clipped to the released bounds, categories the release could not publish set to
null), a fixed per-row function, so neighbouring tables stay neighbouring.

Structural facts are treated as public: the column names, their kinds and dtypes
(pass a schema to fix the kinds instead of inferring them) and the row count (as in
opacus: it sets the sampling rate). Whether a column may hold nulls is decided by its
dtype for columns without a public declaration (every such column that can hold a
null gets a null slot, whose share is released with noise), not by the data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from synthgen.core.kinds import BOOLEAN, CATEGORICAL, CONTINUOUS_KINDS, DATETIME, ID
from synthgen.errors import ConfigError
from synthgen.schema import ColumnSpec, Schema

#: Rows of the pseudo frame the transforms are fitted on (proportions matter, not size).
PSEUDO_ROWS = 20_000
#: Integer columns whose released range holds at most this many values get every value
#: in the coverage rows (the token and one-hot encoders then know each of them).
COVERAGE_INTEGERS = 256


@dataclass
class PrivateData:
    """The DP view of a table: what the transform, the initialisation and DP-SGD read."""

    schema: Schema
    frame: pd.DataFrame
    pseudo: pd.DataFrame
    release: Any  # privacy.preprocessing.PreprocessingRelease
    delta: float
    delta_source: str

    @property
    def preprocessing_epsilon(self) -> float:
        return float(self.release.epsilon)

    @property
    def preprocessing_delta(self) -> float:
        return float(self.release.delta)


def check_dp(dp: Any):
    """``dp`` must be a ``privacy.DPConfig``; returns it."""
    from privacy.accounting import DPConfig

    if not isinstance(dp, DPConfig):
        raise ConfigError(
            f"dp={dp!r} is not a differential-privacy configuration; pass "
            "dp=privacy.DPConfig(epsilon=...) or dp=None"
        )
    return dp


def _may_hold_nulls(spec: ColumnSpec) -> bool:
    """Whether the column's dtype can hold a null at all (int and bool arrays cannot)."""
    dtype = str(spec.dtype).lower()
    return not (dtype.startswith(("int", "uint")) or dtype == "bool")


def release_input_schema(schema: Schema) -> Schema:
    """The schema the release reads: data-derived nullability replaced by the dtype's."""
    specs = {}
    for spec in schema:
        public = bool(spec.public) or spec.kind == ID
        nullable = spec.nullable if public else _may_hold_nulls(spec)
        specs[spec.name] = replace(spec, nullable=bool(nullable))
    return Schema(specs)


def release_schema(schema: Schema, release: Any) -> Schema:
    """The schema a DP model is fitted with: released domains, nothing else read."""
    specs = {}
    for spec in schema:
        column = release.columns.get(spec.name)
        if spec.kind == ID or column is None:
            specs[spec.name] = replace(spec)
            continue
        fields = column.spec_fields()
        if spec.kind in CONTINUOUS_KINDS:
            if spec.integer and spec.kind != DATETIME:
                fields["min"], fields["max"] = int(fields["min"]), int(fields["max"])
            # rounding digits are read from the values: only a public column keeps them
            fields["decimals"] = spec.decimals if spec.public or spec.integer else None
        specs[spec.name] = replace(spec, **fields)
    return Schema(specs)


def coverage_rows(schema: Schema, release: Any, template: pd.DataFrame) -> pd.DataFrame:
    """Rows holding every released category (and small integer range) at least once.

    Why: a transform fitted on the pseudo frame alone would not know a category or an
    integer the pseudo frame happened not to draw, and could not encode a real row
    holding it. The rows are a function of the release only.
    """
    values: dict[str, list[Any]] = {}
    for spec in schema:
        column = release.columns.get(spec.name)
        if column is None or spec.kind == ID:
            continue
        if spec.kind in (CATEGORICAL, BOOLEAN):
            values[spec.name] = list(column.categories or [])
        elif spec.integer and column.low is not None and column.high is not None:
            low, high = int(np.floor(column.low)), int(np.ceil(column.high))
            if high - low + 1 <= COVERAGE_INTEGERS:
                values[spec.name] = list(range(low, high + 1))
        if spec.nullable and spec.name in values:
            values[spec.name].append(None)
    size = max((len(v) for v in values.values()), default=0)
    if size == 0:
        return template.iloc[:0]
    rows = template.iloc[np.arange(size) % len(template)].reset_index(drop=True).copy()
    for name, options in values.items():
        if not options:
            continue
        picked = [options[i % len(options)] for i in range(size)]
        rows[name] = pd.Series(picked, dtype=object).astype(template[name].dtype, errors="ignore")
        if isinstance(template[name].dtype, pd.CategoricalDtype):
            rows[name] = pd.Categorical(picked, categories=template[name].cat.categories)
    return rows


def prepare_private(df: pd.DataFrame, schema: Schema, dp: Any, seed: int) -> PrivateData:
    """Release the DP statistics of ``df`` and build the DP view of it (see the module)."""
    from privacy.preprocessing import columns_needing_release, release_statistics

    rng = np.random.default_rng(seed)
    n = len(df)
    delta, source = dp.resolve_delta(n)
    base = release_input_schema(schema)
    needing = columns_needing_release(base)
    epsilon_p = dp.preprocessing_budget(bool(needing))
    discovering = [s.name for s in base if s.name in needing and s.kind == CATEGORICAL]
    from privacy.accounting import PREPROCESSING_DELTA_SHARE

    delta_p = PREPROCESSING_DELTA_SHARE * delta if discovering and epsilon_p > 0 else 0.0
    release = release_statistics(df, base, epsilon_p, delta_p, rng)
    fitted = release_schema(base, release)
    frame = release.apply(df)
    pseudo = release.pseudo_frame(min(n, PSEUDO_ROWS), rng)
    pseudo = pd.concat([pseudo, coverage_rows(fitted, release, pseudo)], ignore_index=True)
    return PrivateData(fitted, frame, pseudo, release, float(delta), source)

"""A small, JSON-safe profile of a table's columns, stored with each dataset version.

It is what the catalog list and the auditors' page show without opening the data file,
and what the OpenLineage column-metrics facet reports: row count, and per column the
dtype, null and distinct counts, and min / max / mean (numbers, datetimes) or the most
frequent values (categories).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

TOP_VALUES = 5


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def column_profile(series: pd.Series) -> dict[str, Any]:
    nulls = int(series.isna().sum())
    present = series.dropna()
    entry: dict[str, Any] = {
        "dtype": str(series.dtype),
        "null_count": nulls,
        "distinct_count": int(present.nunique()),
    }
    if pd.api.types.is_bool_dtype(series.dtype):
        entry["top"] = _top(present)
    elif pd.api.types.is_numeric_dtype(series.dtype):
        values = pd.to_numeric(present, errors="coerce").astype("float64")
        values = values[np.isfinite(values)]
        if len(values):
            entry.update(
                min=_number(values.min()),
                max=_number(values.max()),
                mean=_number(values.mean()),
                sum=_number(values.sum()),
                quantiles={
                    str(q): _number(values.quantile(q)) for q in (0.0, 0.25, 0.5, 0.75, 1.0)
                },
            )
    elif pd.api.types.is_datetime64_any_dtype(series.dtype):
        if len(present):
            entry.update(min=present.min().isoformat(), max=present.max().isoformat())
    else:
        entry["top"] = _top(present)
    return entry


def _top(present: pd.Series) -> list[list[Any]]:
    counts = present.astype(str).value_counts().head(TOP_VALUES)
    return [[str(k), int(v)] for k, v in counts.items()]


def table_profile(df: pd.DataFrame) -> dict[str, Any]:
    return {
        "rows": int(len(df)),
        "columns": {str(c): column_profile(df[c]) for c in df.columns},
    }

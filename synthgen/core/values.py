"""Column values as numbers and codes, written once for every layer.

The transform, the evaluators and the privacy attacks all turn columns into float64
arrays or integer category codes; they must agree exactly (a datetime that is a few
nanoseconds off, or a null that becomes a number, changes a score), so the conversions
live here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

NS_PER_SECOND = 1_000_000_000


def datetime_ns(series: pd.Series) -> np.ndarray:
    """Datetime column -> int64 nanoseconds since the epoch (tz-aware values in UTC).

    Exact (no float rounding), which is what a KS test on datetimes needs; NaT comes
    out as the int64 minimum, so check ``series.isna()`` (or use ``datetime_to_float``)
    when the column can hold nulls.
    """
    return series.to_numpy(dtype="datetime64[ns]").view("int64")


def datetime_to_float(series: pd.Series, unit: Literal["ns", "s"] = "ns") -> np.ndarray:
    """Datetime column -> float64 time since the epoch in ``unit``; NaT -> NaN.

    Seconds are computed as float nanoseconds divided by 1e9, the transform's convention
    since its first model files (changing the order of the operations would move decoded
    values by an ulp).
    """
    out = datetime_ns(series).astype(np.float64)
    out[series.isna().to_numpy()] = np.nan
    if unit == "s":
        return out / NS_PER_SECOND
    return out


def numeric_values(series: pd.Series) -> np.ndarray:
    """Any column as float64: datetimes in nanoseconds, durations in seconds, booleans
    as 0/1, nulls and values that are not numbers as NaN."""
    dtype = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return datetime_to_float(series)
    if pd.api.types.is_bool_dtype(dtype):
        return series.astype("float64").to_numpy()
    if pd.api.types.is_timedelta64_dtype(dtype):
        # seconds, as the schema stores durations; NaT must become NaN, not int64 min
        return series.dt.total_seconds().to_numpy(dtype="float64", na_value=np.nan)
    if pd.api.types.is_numeric_dtype(dtype):
        return series.to_numpy(dtype="float64", na_value=np.nan)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def category_keys(series: pd.Series) -> pd.Series:
    """Hashable, type-stable category labels (object dtype, every null -> None).

    NaN, None, NaT and pd.NA all become the same ``None``, so codes computed from keys
    line up across frames whatever null marker each frame used.
    """
    return series.astype(object).where(series.notna(), None)


def category_codes(values: pd.Series, categories: Sequence[Any]) -> np.ndarray:
    """int64 position of each value in ``categories``; -1 for nulls and unseen values.

    A pandas categorical column is compared by its values, not by its own codes, so
    two frames with differently ordered category dtypes still agree.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    return pd.Categorical(values, categories=categories).codes.astype(np.int64)


def joint_codes(first: pd.Series, second: pd.Series) -> tuple[np.ndarray, np.ndarray, Any]:
    """Integer codes of two columns over their joint set of values (nulls are a value).

    Returns ``(codes_first, codes_second, uniques)`` as ``pd.factorize`` of the two
    columns stacked gives them: equal values get equal codes in both frames, so a
    one-hot or a bincount over ``len(uniques)`` compares them directly; null is one of
    the ``uniques`` (find it with ``pd.isna(uniques)``).
    """
    both = pd.concat([first, second], ignore_index=True)
    codes, uniques = pd.factorize(both, use_na_sentinel=False)
    codes = codes.astype(np.int64)
    return codes[: len(first)], codes[len(first) :], uniques

"""Boundary checks for ``evaluate``: every bad input becomes a SynthgenError that names
the argument, the column and the fix, before any metric runs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from synthgen.errors import ConfigError, DataError, SchemaError
from synthgen.schema import Schema, refuse_infinite

SECTIONS = ("fidelity", "detection", "alpha_precision", "utility", "fid", "bias", "privacy")


def check_frame(df: Any, argument: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise DataError(
            f"{argument} must be a pandas DataFrame, got {type(df).__name__}; load files with "
            "pandas.read_csv / read_parquet first"
        )
    if df.shape[1] == 0:
        raise DataError(f"{argument} has no columns")
    if df.shape[0] == 0:
        raise DataError(f"{argument} has no rows; evaluation needs at least one row in it")
    dupes = df.columns[df.columns.duplicated()].tolist()
    if dupes:
        raise DataError(f"{argument} has duplicate column name(s) {dupes}; rename them")
    return df


def align_columns(df: pd.DataFrame, reference: pd.DataFrame, argument: str) -> pd.DataFrame:
    """Same column set as the real table (reordered to its order), or a SchemaError."""
    missing = [c for c in reference.columns if c not in df.columns]
    extra = [c for c in df.columns if c not in reference.columns]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {missing}")
        if extra:
            parts.append(f"unexpected column(s) {extra}")
        raise SchemaError(
            f"{argument} does not have the real table's columns: {'; '.join(parts)}. "
            f"Give it exactly these columns: {list(reference.columns)}"
        )
    return df[list(reference.columns)]


def coerce_kinds(
    df: pd.DataFrame, schema: Schema, argument: str, reference: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Cast numerical / datetime columns so that every table compares like with like.

    Numbers become plain numpy dtypes (a nullable ``Int64`` column with NA becomes
    float64 with NaN: every metric reads NaN as missing, none reads ``pd.NA``),
    infinite values are refused (no distance, histogram or correlation is defined for
    them), text in a numerical or datetime column is refused, and a datetime column
    must be time-zone aware in every table or in none (``reference``, the real table,
    decides), since comparing local wall-clock times with UTC instants would shift
    every value silently.
    """
    out = df.copy()
    for spec in schema:
        if spec.kind == "numerical":
            out[spec.name] = _numbers(df[spec.name], spec.name, argument)
        elif spec.kind == "datetime":
            ref = None if reference is None else reference[spec.name]
            out[spec.name] = _datetimes(df[spec.name], spec.name, argument, ref)
    return out


def _numbers(col: pd.Series, name: str, argument: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(col.dtype):
        values = col.astype("float64") if col.isna().any() else col.astype("int64")
    elif not pd.api.types.is_numeric_dtype(col.dtype):
        values = pd.to_numeric(col, errors="coerce")
        bad = col[values.isna() & col.notna()]
        if len(bad):
            raise DataError(
                f"column {name!r} of {argument} is numerical in the real table but "
                f"holds {bad.iloc[0]!r}; clean or cast it (pd.to_numeric)"
            )
    else:
        values = col
    if isinstance(values.dtype, pd.api.extensions.ExtensionDtype):
        # Int64 / Float64 / UInt8 ...: NA becomes NaN, otherwise the numpy dtype is kept
        numpy_dtype = "float64" if values.isna().any() else values.dtype.numpy_dtype
        values = pd.Series(
            values.to_numpy(dtype=numpy_dtype, na_value=np.nan), index=col.index, name=col.name
        )
    refuse_infinite(values.to_numpy(dtype="float64", na_value=np.nan), name, argument)
    return values


def _datetimes(col: pd.Series, name: str, argument: str, reference: pd.Series | None) -> pd.Series:
    values = col
    if not pd.api.types.is_datetime64_any_dtype(col.dtype):
        try:
            values = pd.to_datetime(col, errors="coerce")
        except (ValueError, TypeError) as exc:  # e.g. mixed time zones in one column
            first = str(exc).splitlines()[0]
            raise DataError(
                f"column {name!r} of {argument} cannot be read as datetimes ({first}); "
                "parse it with pd.to_datetime(..., utc=True)"
            ) from None
        bad = col[values.isna() & col.notna()]
        if len(bad):
            raise DataError(
                f"column {name!r} of {argument} is a datetime in the real table but "
                f"holds {bad.iloc[0]!r}; fix the value or parse it with pd.to_datetime"
            )
        if not pd.api.types.is_datetime64_any_dtype(values.dtype):
            raise DataError(
                f"column {name!r} of {argument} is a datetime in the real table but holds "
                f"{values.dtype} values; parse it with pd.to_datetime"
            )
    if reference is not None and pd.api.types.is_datetime64_any_dtype(reference.dtype):
        ref_tz = getattr(reference.dtype, "tz", None)
        tz = getattr(values.dtype, "tz", None)
        if (ref_tz is None) != (tz is None):
            fix = (
                f"localise it: df[{name!r}].dt.tz_localize({str(ref_tz)!r})"
                if ref_tz is not None
                else f"drop the zone as the real table does: df[{name!r}].dt.tz_localize(None)"
            )
            raise DataError(
                f"column {name!r} of {argument} is time-zone {'aware' if tz else 'naive'} but "
                f"the real table's is {'aware' if ref_tz else 'naive'}; {fix}"
            )
    return values


def parse_sensitive(sensitive: str | Iterable[str] | None, columns: list[str]) -> list[str]:
    if sensitive is None:
        return []
    if isinstance(sensitive, str):
        names = [s.strip() for s in sensitive.split(",") if s.strip()]
    else:
        names = list(sensitive)
    for name in names:
        if name not in columns:
            raise ConfigError(
                f"sensitive column {name!r} is not in the real table; columns are {columns}"
            )
    return names


def check_target(target: str | None, columns: list[str]) -> None:
    if target is not None and target not in columns:
        raise ConfigError(
            f"target column {target!r} is not in the real table; columns are {columns}"
        )


def parse_sections(metrics: str | Iterable[str]) -> list[str]:
    if isinstance(metrics, str):
        names = list(SECTIONS) if metrics == "all" else [m.strip() for m in metrics.split(",")]
    else:
        names = list(metrics)
    unknown = [m for m in names if m not in SECTIONS]
    if unknown:
        raise ConfigError(
            f"unknown metric section(s) {unknown}; use 'all' or any of {list(SECTIONS)}"
        )
    return [s for s in SECTIONS if s in names]


def check_schema(schema: Schema, real: pd.DataFrame) -> None:
    missing = [c for c in real.columns if c not in schema.columns]
    extra = [c for c in schema.columns if c not in real.columns]
    if missing or extra:
        raise SchemaError(
            f"the schema does not describe the real table: columns not in the schema {missing}, "
            f"schema columns not in the table {extra}; pass schema=Schema.infer(real) or fix it"
        )

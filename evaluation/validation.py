"""Boundary checks for ``evaluate``: every bad input becomes a SynthgenError that names
the argument, the column and the fix, before any metric runs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from synthgen.errors import ConfigError, DataError, SchemaError
from synthgen.schema import Schema

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


def coerce_kinds(df: pd.DataFrame, schema: Schema, argument: str) -> pd.DataFrame:
    """Cast numerical / datetime columns so that every table compares like with like."""
    out = df
    for spec in schema:
        col = df[spec.name]
        if spec.kind == "numerical" and not pd.api.types.is_numeric_dtype(col.dtype):
            values = pd.to_numeric(col, errors="coerce")
            bad = col[values.isna() & col.notna()]
            if len(bad):
                raise DataError(
                    f"column {spec.name!r} of {argument} is numerical in the real table but "
                    f"holds {bad.iloc[0]!r}; clean or cast it (pd.to_numeric)"
                )
            out = out if out is not df else df.copy()
            out[spec.name] = values
        elif spec.kind == "datetime" and not pd.api.types.is_datetime64_any_dtype(col.dtype):
            values = pd.to_datetime(col, errors="coerce")
            bad = col[values.isna() & col.notna()]
            if len(bad):
                raise DataError(
                    f"column {spec.name!r} of {argument} is a datetime in the real table but "
                    f"holds {bad.iloc[0]!r}; fix the value or parse it with pd.to_datetime"
                )
            out = out if out is not df else df.copy()
            out[spec.name] = values
    return out


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

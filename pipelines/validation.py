"""The great-expectations validation gate: derive a suite from the real table, check exports.

Why a gate built on great-expectations: a synthetic table goes to a data catalog, where
consumers rely on its columns, types, bounds and categories staying what the real table
had. ``derive_suite`` turns the real table and its ``Schema`` into a plain GX 1.x
expectation suite (a JSON dict a user can read, edit and keep next to the data);
``validate`` runs such a suite with GX on a table and returns a ``ValidationResult``
whose failures each name the column and the offending values in one line. GX does every
check; this module only chooses the expectations and words GX's results.

What a derived suite checks, column by column (see docs/validation.md):

- the column names and their order (``expect_table_columns_to_match_ordered_list``);
- the dtype family (``expect_column_values_to_be_in_type_list``): integer columns accept
  every numpy and pandas nullable integer dtype, float columns also integers, object-like
  columns (object / string / category) the Python value types seen in the real column;
- bounds (``expect_column_values_to_be_between``): the schema's min / max, or the real
  ones, for numbers and datetimes (microsecond precision, rounded outwards; tz-aware
  ones in UTC); durations (timedelta columns) get the type check only;
- categories (``expect_column_values_to_be_in_set``) of categorical and boolean columns;
- nulls (``expect_column_values_to_not_be_null``): a column never null in the real data
  must never be null (``mostly=1``); a nullable one may have up to its real null fraction
  plus ``null_tolerance`` (``mostly = 1 - (fraction + tolerance)``, clipped to [0, 1]);
- uniqueness of id columns (``expect_column_values_to_be_unique``);
- the exact row count when ``rows`` is given (``expect_table_row_count_to_equal``).

Before GX sees a table, category and pandas string columns are passed as object columns
(GX 1.x cannot match their dtypes by name, it checks their values' types instead) and
tz-aware datetimes as UTC without a zone (the zone itself is not checked).

great_expectations is imported inside the functions that run it (it takes seconds to
import), so ``import pipelines.validation`` stays cheap.

Image sets have a gate of their own with the same result type (``image_suite`` and
``validate_images``, from ``pipelines.images.validation``; docs/images.md).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from synthgen.errors import ConfigError, DataError, SchemaError

if TYPE_CHECKING:
    from synthgen.schema import ColumnSpec, Schema

__all__ = [
    "ValidationFailure",
    "ValidationResult",
    "derive_suite",
    "image_suite",
    "load_suite",
    "save_suite",
    "validate",
    "validate_images",
]

#: Offending values GX returns per expectation (SUMMARY format): bounded memory on
#: millions of rows; counts of values are exact while a check fails on fewer rows.
PARTIAL_UNEXPECTED = 200
#: Distinct offending values named in a failure message / kept in ``unexpected``.
SHOWN_VALUES = 5
KEPT_VALUES = 10

_INTEGER_TYPES = [
    *(f"int{b}" for b in (8, 16, 32, 64)),
    *(f"uint{b}" for b in (8, 16, 32, 64)),
    *(f"Int{b}Dtype" for b in (8, 16, 32, 64)),
    *(f"UInt{b}Dtype" for b in (8, 16, 32, 64)),
    "int",
]
_FLOAT_TYPES = ["float16", "float32", "float64", "Float32Dtype", "Float64Dtype", "float"]
_UNITS = ("ns", "us", "ms", "s")
#: dtype family -> the type names GX's pandas engine resolves (numpy dtype names, pandas
#: extension dtype class names, Python type names for values of object columns).
TYPE_FAMILIES: dict[str, list[str]] = {
    "integer": _INTEGER_TYPES,
    "float": _FLOAT_TYPES + _INTEGER_TYPES,
    "boolean": ["bool", "BooleanDtype"],
    "datetime": [f"datetime64[{u}]" for u in _UNITS],
    "timedelta": [f"timedelta64[{u}]" for u in _UNITS],
    "object": ["object", "StringDtype", "CategoricalDtype"],
}
_FAMILY_WORDS = {
    "integer": "an integer dtype",
    "float": "a numeric dtype",
    "boolean": "a boolean dtype",
    "datetime": "a datetime64 dtype",
    "timedelta": "a timedelta64 dtype",
    "object": "an object / string / category dtype",
}
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# --------------------------------------------------------------------------- results
@dataclass
class ValidationFailure:
    """One failed expectation: which check, which column, and what was wrong."""

    expectation: str
    column: str | None
    message: str
    unexpected: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "expectation": self.expectation,
            "column": self.column,
            "message": self.message,
            "unexpected": self.unexpected,
        }


@dataclass
class ValidationResult:
    """The outcome of ``validate``: ``success`` is the gate's answer.

    ``result`` is GX's own result (``to_json_dict()``, made strictly JSON-safe: NaN as
    null, infinities as "inf" / "-inf"); ``failures`` are its failed expectations in
    suite order, worded for people.
    """

    success: bool
    result: dict[str, Any]
    failures: list[ValidationFailure] = field(default_factory=list)

    @property
    def statistics(self) -> dict[str, Any]:
        """GX's counts: evaluated / successful / unsuccessful expectations, success %."""
        return dict(self.result.get("statistics") or {})

    def summary(self) -> str:
        """One line per failure, or ``all N expectations passed``."""
        if not self.failures:
            n = self.statistics.get("evaluated_expectations", len(self.result.get("results", [])))
            return f"all {n} expectations passed"
        return "\n".join(f.message for f in self.failures)

    def to_dict(self, include_result: bool = True) -> dict[str, Any]:
        """JSON-safe: success, statistics, failures and (by default) GX's full result."""
        out: dict[str, Any] = {
            "success": self.success,
            "statistics": self.statistics,
            "failures": [f.to_dict() for f in self.failures],
        }
        if include_result:
            out["result"] = self.result
        return out


# --------------------------------------------------------------------------- GX access
def _gx() -> Any:
    """great_expectations, imported on first use with its usage statistics switched off."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


def _batch_definition() -> Any:
    """A whole-dataframe batch definition in a fresh ephemeral context, without progress
    bars (they would print to stderr on every validation)."""
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("synthgen")
    asset = source.add_dataframe_asset("table")
    return asset.add_batch_definition_whole_dataframe("whole table")


# --------------------------------------------------------------------------- checks
def _check_frame(df: Any, what: str) -> None:
    """Refuse what GX cannot validate, naming the fix."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(
            f"{what} must be a pandas DataFrame, got {type(df).__name__}; load files with "
            "pipelines.tables.read_table (or pandas.read_csv / read_parquet) first"
        )
    if df.shape[1] == 0:
        raise DataError(f"{what} has no columns; pass the table itself, not an empty frame")
    if df.shape[0] == 0:
        raise DataError(
            f"{what} has no rows; there is nothing to check - pass the table with its rows "
            "(an empty export means the sampling step failed)"
        )
    dupes = df.columns[df.columns.duplicated()].tolist()
    if dupes:
        raise DataError(f"{what} has duplicate column name(s) {dupes}; rename them")
    bad = [c for c in df.columns if not isinstance(c, str)]
    if bad:
        raise DataError(
            f"{what} has non-string column name(s) {bad[:5]}; rename them with "
            "df.columns = df.columns.astype(str)"
        )


def _check_options(rows: Any, null_tolerance: Any, name: Any) -> None:
    if rows is not None and (
        not isinstance(rows, int | np.integer) or isinstance(rows, bool) or rows < 0
    ):
        raise ConfigError(f"rows={rows!r} must be None or a whole number >= 0")
    if (
        isinstance(null_tolerance, bool)
        or not isinstance(null_tolerance, int | float)
        or not 0 <= null_tolerance <= 1
    ):
        raise ConfigError(
            f"null_tolerance={null_tolerance!r} must be a number in [0, 1] "
            "(the extra share of nulls allowed, e.g. 0.05)"
        )
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"name={name!r} must be a non-empty string naming the suite")


def _check_schema(schema: Any, real: pd.DataFrame) -> Schema:
    from synthgen.schema import Schema

    if schema is None:
        return Schema.infer(real)
    if not isinstance(schema, Schema):
        raise ConfigError(
            f"schema must be a synthgen Schema (Schema.infer(df) or Schema.from_json), "
            f"got {type(schema).__name__}"
        )
    missing = [c for c in real.columns if c not in schema.columns]
    extra = [c for c in schema.names if c not in real.columns]
    if missing or extra:
        raise SchemaError(
            f"the schema does not describe the real table: columns {missing} are not in the "
            f"schema, schema columns {extra} are not in the table; pass the table's own schema"
        )
    return schema


# --------------------------------------------------------------------------- deriving
def _family(series: pd.Series) -> str:
    """The dtype family of a real column, which the synthetic column must stay in."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "timedelta"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    return "object"


def _python_type_names(series: pd.Series) -> list[str]:
    """GX names of the Python types held by an object-like column (default ``str``).

    GX checks an object column value by value against these: a text column must keep
    holding text, and a column of Python ints / bools keeps those types.
    """
    values = series.dropna()
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = pd.Series(values.cat.categories)
    found: set[str] = set()
    for kind in pd.unique(values.map(type).to_numpy(dtype=object)):
        if issubclass(kind, bool | np.bool_):
            found.add("bool")
        elif issubclass(kind, str):
            found.add("str")
        elif issubclass(kind, int | np.integer):
            found.add("int")
        elif issubclass(kind, float | np.floating):
            found.add("float")
    return sorted(found) or ["str"]


def _type_list(series: pd.Series) -> tuple[str, list[str]]:
    family = _family(series)
    types = list(TYPE_FAMILIES[family])
    if family == "object":
        types += _python_type_names(series)
    return family, types


def _mostly(series: pd.Series, spec: ColumnSpec, null_tolerance: float) -> float:
    """Share of values that must be non-null (see the module docstring)."""
    fraction = float(series.isna().mean())
    if fraction == 0 and not spec.nullable:
        return 1.0
    allowed = 1.0 - (fraction + null_tolerance)
    return math.floor(min(1.0, max(0.0, allowed)) * 1e6) / 1e6  # floored: never stricter


def _number(value: Any) -> float | int:
    value = float(value)
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _numeric_bounds(spec: ColumnSpec, series: pd.Series) -> tuple[Any, Any] | None:
    nonnull = series.dropna()
    low = spec.min if spec.min is not None else (nonnull.min() if len(nonnull) else None)
    high = spec.max if spec.max is not None else (nonnull.max() if len(nonnull) else None)
    if low is None and high is None:
        return None
    return (None if low is None else _number(low)), (None if high is None else _number(high))


def _naive(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def _datetime_bounds(spec: ColumnSpec, series: pd.Series) -> tuple[Any, Any] | None:
    """ISO bounds at microsecond precision (what GX parses), rounded outwards so that the
    real extremes (nanoseconds included) stay inside."""
    nonnull = series.dropna()
    low = spec.min if spec.min is not None else (nonnull.min() if len(nonnull) else None)
    high = spec.max if spec.max is not None else (nonnull.max() if len(nonnull) else None)
    if low is None and high is None:
        return None
    low_s = None if low is None else _naive(low).floor("us").isoformat()
    high_s = None if high is None else _naive(high).ceil("us").isoformat()
    return low_s, high_s


def _column_expectations(spec: ColumnSpec, series: pd.Series, null_tolerance: float) -> list:
    gxe = _gx().expectations
    name = spec.name
    family, types = _type_list(series)
    out = [
        gxe.ExpectColumnValuesToBeInTypeList(column=name, type_list=types, meta={"family": family}),
        gxe.ExpectColumnValuesToNotBeNull(
            column=name, mostly=_mostly(series, spec, null_tolerance)
        ),
    ]
    bounds = None
    if spec.kind == "numerical" and family in ("integer", "float"):
        bounds = _numeric_bounds(spec, series)
    elif spec.kind == "datetime" and family == "datetime":
        bounds = _datetime_bounds(spec, series)
    if bounds is not None:
        out.append(
            gxe.ExpectColumnValuesToBeBetween(column=name, min_value=bounds[0], max_value=bounds[1])
        )
    if spec.kind in ("categorical", "boolean") and spec.categories:
        out.append(gxe.ExpectColumnValuesToBeInSet(column=name, value_set=list(spec.categories)))
    if spec.kind == "id":
        out.append(gxe.ExpectColumnValuesToBeUnique(column=name))
    return out


def derive_suite(
    real: pd.DataFrame,
    schema: Schema | None = None,
    *,
    rows: int | None = None,
    null_tolerance: float = 0.05,
    name: str = "synthgen",
) -> dict[str, Any]:
    """An expectation suite that the real table passes and a faithful export must pass.

    ``schema`` (``Schema.infer(real)`` when None) decides each column's kind; its bounds
    win over the real min / max where set. ``rows`` adds an exact row count check for
    the export. Returns GX's ``suite.to_json_dict()`` form, whose ``meta`` records that
    synthgen derived it, from how many real rows and with which ``null_tolerance``.
    """
    _check_frame(real, "the real table")
    _check_options(rows, null_tolerance, name)
    schema = _check_schema(schema, real)
    gx = _gx()
    gxe = gx.expectations
    expectations: list = [gxe.ExpectTableColumnsToMatchOrderedList(column_list=list(real.columns))]
    if rows is not None:
        expectations.append(gxe.ExpectTableRowCountToEqual(value=int(rows)))
    for column in real.columns:
        expectations.extend(_column_expectations(schema[column], real[column], null_tolerance))
    from synthgen import __version__

    meta = {
        "derived_by": "synthgen",
        "synthgen_version": __version__,
        "real_rows": len(real),
        "null_tolerance": float(null_tolerance),
        "rows": None if rows is None else int(rows),
    }
    suite = gx.ExpectationSuite(name=name, expectations=expectations, meta=meta)
    return _json_safe(suite.to_json_dict())


# --------------------------------------------------------------------------- suite files
def _build_suite(suite: Any, source: str) -> Any:
    """A GX ``ExpectationSuite`` from a suite dict, every entry checked by GX itself.

    ``ExpectationSuite(expectations=...)`` would log and drop an invalid entry; here
    each one is built on its own so that a bad one is a ``ConfigError`` naming it.
    """
    if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list):
        raise ConfigError(
            f"{source} is not an expectation suite: expected a JSON object with an "
            "'expectations' list (as written by derive_suite / save_suite)"
        )
    name = suite.get("name", "synthgen")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{source}: 'name' must be a non-empty string, not {name!r}")
    gx = _gx()
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    built = []
    for i, entry in enumerate(suite["expectations"], start=1):
        where = f"{source}: expectation {i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise ConfigError(
                f"{where} must be an object with a 'type' string and a 'kwargs' object, "
                f"not {str(entry)[:80]}"
            )
        kwargs = entry.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise ConfigError(f"{where} ({entry['type']}): 'kwargs' must be an object")
        if isinstance(kwargs.get("column"), str):
            where += f" ({entry['type']}, column {kwargs['column']!r})"
        else:
            where += f" ({entry['type']})"
        kwargs = _normalise_kwargs(kwargs)
        try:
            config = ExpectationConfiguration(
                type=entry["type"], kwargs=kwargs, meta=entry.get("meta") or {}
            )
            built.append(config.to_domain_obj())
        except Exception as exc:  # GX raises its own errors and pydantic's for bad kwargs
            raise ConfigError(f"{where} is invalid: {_gx_reason(entry, exc)}") from None
    meta = suite.get("meta") if isinstance(suite.get("meta"), dict) else None
    return gx.ExpectationSuite(name=name, expectations=built, meta=meta)


def _normalise_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A date-only bound (an easy hand edit, '2020-01-01') as midnight: GX would parse it
    as a ``date``, which pandas refuses to compare with datetime64 values."""
    out = dict(kwargs)
    for key in ("min_value", "max_value"):
        value = out.get(key)
        if isinstance(value, str) and _DATE_ONLY.match(value):
            out[key] = value + "T00:00:00"
    return out


def _gx_reason(entry: dict[str, Any], exc: Exception) -> str:
    from great_expectations.exceptions import ExpectationNotFoundError

    if isinstance(exc, ExpectationNotFoundError):
        return (
            f"unknown expectation type {entry['type']!r}; use a great-expectations 1.x type "
            "such as 'expect_column_values_to_be_between'"
        )
    errors = getattr(exc, "errors", None)
    if callable(errors):  # pydantic: one clause per field
        parts = []
        for err in errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
            parts.append(f"{loc + ': ' if loc else ''}{err.get('msg')}")
        # GX also accepts a {"$PARAMETER": ...} dict for most fields: that alternative's
        # complaint only hides the real one
        useful = [p for p in parts if "not a valid dict" not in p] or parts
        return "; ".join(dict.fromkeys(useful))
    return " ".join(str(exc).split()) or type(exc).__name__


def save_suite(suite: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a suite as indented JSON, atomically (temp file + ``os.replace``)."""
    from synthgen.paths import atomic_path, check_writable

    _build_suite(suite, "the suite")  # refuse to write what load_suite would refuse
    check_writable(path, what="expectation suite", error=ConfigError)
    try:
        text = json.dumps(suite, indent=2, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the suite cannot be written as JSON: {exc}") from None
    with atomic_path(path, "expectation suite") as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return Path(path)


def load_suite(path: str | os.PathLike) -> dict[str, Any]:
    """Read a suite file (as written by ``save_suite``, possibly edited by hand).

    The suite is returned as written; every expectation is checked by GX first, so a
    file that is not JSON, not a suite or holds an unknown or invalid expectation is a
    ``ConfigError`` naming the file and the entry.
    """
    source = f"suite file {os.fspath(path)!r}"
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{source} is a directory; give the .json file inside it")
    if not p.exists():
        raise ConfigError(f"{source} does not exist; check the path or write one with save_suite")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source} cannot be read: {exc}") from None
    try:
        suite = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "fix the edit or derive the suite again"
        ) from None
    _build_suite(suite, source)
    return suite


# --------------------------------------------------------------------------- validating
def _frame_for_gx(data: pd.DataFrame) -> pd.DataFrame:
    """Category and pandas string columns as object, tz-aware datetimes as naive UTC
    (see the module docstring); the caller's frame is not changed."""
    frame = data.copy(deep=False)
    for column in frame.columns:
        dtype = frame[column].dtype
        if isinstance(dtype, pd.CategoricalDtype | pd.StringDtype):
            frame[column] = frame[column].astype(object)
        elif isinstance(dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
    return frame


def validate(data: pd.DataFrame, suite: dict[str, Any]) -> ValidationResult:
    """Run ``suite`` with great-expectations on ``data``; ``success`` is the gate."""
    _check_frame(data, "the table to validate")
    gx_suite = _build_suite(suite, "the suite")
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": _frame_for_gx(data)})
    raw = batch.validate(
        gx_suite,
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": PARTIAL_UNEXPECTED},
    )
    result = _json_safe(raw.to_json_dict())
    order = {_key(e.configuration.to_json_dict()): i for i, e in enumerate(gx_suite.expectations)}
    failed = [r for r in result.get("results", []) if not r.get("success")]
    failed.sort(key=lambda r: order.get(_key(r.get("expectation_config", {})), len(order)))
    failures = [_failure(r, data) for r in failed]
    return ValidationResult(success=bool(result.get("success")), result=result, failures=failures)


def _key(config: dict[str, Any]) -> str:
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
    return json.dumps([config.get("type"), _json_safe(kwargs)], sort_keys=True, default=str)


# --------------------------------------------------------------------------- wording
def _failure(entry: dict[str, Any], data: pd.DataFrame) -> ValidationFailure:
    config = entry.get("expectation_config") or {}
    kind = str(config.get("type"))
    kwargs = config.get("kwargs") or {}
    column = kwargs.get("column")
    where = f"column {column!r}" if column is not None else "table"
    result = entry.get("result") or {}
    error = _exception_message(entry.get("exception_info"))
    if error is not None:
        if column is not None and column not in data.columns:
            message = f"{where} is missing ({kind} not run)"
        else:
            message = f"{where}: great-expectations could not run {kind}: {error}"
        return ValidationFailure(kind, column, message, [])
    formatter = _FORMATTERS.get(kind, _generic)
    message, unexpected = formatter(where, kwargs, result, config, data)
    return ValidationFailure(kind, column, message, _json_safe(unexpected))


def _exception_message(info: Any) -> str | None:
    """The first error message GX recorded for an expectation, on one line, or None."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return " ".join(str(info.get("exception_message") or "error").split())
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return " ".join(str(value.get("exception_message") or "error").split())
    return None


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _pct(part: int, whole: int) -> str:
    if not whole:
        return "0%"
    share = 100.0 * part / whole
    return f"{share:.2g}%" if share < 1 else f"{share:.1f}%"


def _counts(result: dict[str, Any]) -> tuple[list[tuple[Any, int]], bool]:
    """(value, count) pairs of the offending values GX returned, most common first, and
    whether they cover every offending row (then the counts are exact)."""
    pairs = [
        (c.get("value"), int(c.get("count", 0)))
        for c in result.get("partial_unexpected_counts") or []
    ]
    listed = len(result.get("partial_unexpected_list") or [])
    return pairs, listed >= int(result.get("unexpected_count") or 0)


def _counted(pairs: list[tuple[Any, int]], exact: bool) -> str:
    """``'a' (3 rows), 'b' (1 row)`` when the counts are exact, else the values alone."""
    if not exact:
        return ", ".join(_show(v) for v, _ in pairs[:SHOWN_VALUES]) + ", ..."
    shown = [f"{_show(v)} ({n} row{'s' if n != 1 else ''})" for v, n in pairs[:SHOWN_VALUES]]
    return ", ".join(shown) + (", ..." if len(pairs) > SHOWN_VALUES else "")


def _head(result: dict[str, Any]) -> tuple[int, int]:
    return int(result.get("unexpected_count") or 0), int(result.get("element_count") or 0)


def _between(where, kwargs, result, config, data):
    n, total = _head(result)
    pairs, exact = _counts(result)
    values = [v for v, _ in pairs]
    with contextlib.suppress(TypeError):  # mixed types: keep GX's order
        values = sorted(values)
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    low_text = "-inf" if low is None else _show_bound(low)
    high_text = "inf" if high is None else _show_bound(high)
    bounds = f"[{low_text}, {high_text}]"
    shown = ", ".join(_show_bound(v) for v in values[:SHOWN_VALUES])  # ISO dates unquoted
    more = ", ..." if len(values) > SHOWN_VALUES or not exact else ""
    message = f"{where}: {n} of {total} values ({_pct(n, total)}) outside {bounds}: {shown}{more}"
    return message, values[:KEPT_VALUES]


def _show_bound(value: Any) -> str:
    return value if isinstance(value, str) else _show(value)


def _in_set(where, kwargs, result, config, data):
    n, total = _head(result)
    pairs, exact = _counts(result)
    allowed = len(kwargs.get("value_set") or [])
    message = (
        f"{where}: unexpected categories {_counted(pairs, exact)}; "
        f"{n} of {total} values ({_pct(n, total)}) outside the {allowed} allowed"
    )
    return message, [v for v, _ in pairs[:KEPT_VALUES]]


def _not_null(where, kwargs, result, config, data):
    n, total = _head(result)
    mostly = kwargs.get("mostly", 1.0)
    if mostly is None or float(mostly) >= 1.0:
        limit = "it must never be null"
    else:
        limit = f"at most {_pct(round((1 - float(mostly)) * 1e6), 10**6)} may be (mostly={mostly})"
    return f"{where}: {n} of {total} values ({_pct(n, total)}) are null; {limit}", [None]


def _unique(where, kwargs, result, config, data):
    n, total = _head(result)
    pairs, exact = _counts(result)
    message = (
        f"{where}: {n} of {total} values ({_pct(n, total)}) are not unique: "
        f"{_counted(pairs, exact)}"
    )
    return message, [v for v, _ in pairs[:KEPT_VALUES]]


def _type_list_failure(where, kwargs, result, config, data):
    family = (config.get("meta") or {}).get("family")
    expected = f"{_FAMILY_WORDS[family]}" if family in _FAMILY_WORDS else "an expected type"
    types = list(kwargs.get("type_list") or [])
    listed = ", ".join(types[:4]) + (f", ... ({len(types)} types)" if len(types) > 4 else "")
    column = kwargs.get("column")
    dtype = str(data[column].dtype) if column in data.columns else None
    if "unexpected_count" in result:  # object column: GX checked the values one by one
        n, total = _head(result)
        pairs, exact = _counts(result)
        message = (
            f"{where}: dtype {dtype}: {n} of {total} values ({_pct(n, total)}) are not of "
            f"{expected}: {_counted(pairs, exact)}"
        )
        return message, [v for v, _ in pairs[:KEPT_VALUES]]
    observed = dtype or result.get("observed_value")
    return f"{where}: dtype {observed} is not {expected} (expected one of {listed})", [observed]


def _ordered_columns(where, kwargs, result, config, data):
    expected = list(kwargs.get("column_list") or [])
    observed = list(result.get("observed_value") or [])
    missing = [c for c in expected if c not in observed]
    extra = [c for c in observed if c not in expected]
    common_expected = [c for c in expected if c in observed]
    common_observed = [c for c in observed if c in expected]
    misplaced = [
        f"{c!r} (expected position {expected.index(c) + 1}, found {observed.index(c) + 1})"
        for c, o in zip(common_expected, common_observed, strict=True)
        if c != o
    ]
    parts = []
    if missing:
        parts.append("missing " + ", ".join(repr(c) for c in missing))
    if extra:
        parts.append("extra " + ", ".join(repr(c) for c in extra))
    if misplaced:
        more = f" and {len(misplaced) - SHOWN_VALUES} more" if len(misplaced) > SHOWN_VALUES else ""
        parts.append("misplaced " + ", ".join(misplaced[:SHOWN_VALUES]) + more)
    detail = "; ".join(parts) or f"found {observed}, expected {expected}"
    return f"table columns do not match the expected order: {detail}", missing + extra


def _row_count(where, kwargs, result, config, data):
    observed = result.get("observed_value")
    return f"table has {observed} rows, expected exactly {kwargs.get('value')}", [observed]


def _generic(where, kwargs, result, config, data):
    """Any other expectation (a user may add any GX type): GX's own numbers."""
    kind = config.get("type")
    if "unexpected_count" in result:
        n, total = _head(result)
        pairs, exact = _counts(result)
        examples = f": {_counted(pairs, exact)}" if pairs else ""
        message = f"{where}: {n} of {total} values ({_pct(n, total)}) fail {kind}{examples}"
        return message, [v for v, _ in pairs[:KEPT_VALUES]]
    if "observed_value" in result:
        observed = result["observed_value"]
        return f"{where}: {kind} failed (observed {_show(observed)})", [observed]
    return f"{where}: {kind} failed", []


_FORMATTERS = {
    "expect_column_values_to_be_between": _between,
    "expect_column_values_to_be_in_set": _in_set,
    "expect_column_values_to_not_be_null": _not_null,
    "expect_column_values_to_be_unique": _unique,
    "expect_column_values_to_be_in_type_list": _type_list_failure,
    "expect_table_columns_to_match_ordered_list": _ordered_columns,
    "expect_table_row_count_to_equal": _row_count,
}


def _json_safe(value: Any) -> Any:
    """Strict-JSON values: NaN / NA as None, infinities as 'inf' / '-inf', numpy scalars
    as Python ones, timestamps as ISO text, anything else unknown as its text."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, pd.Timestamp | pd.Timedelta) or hasattr(value, "isoformat"):
        return None if pd.isna(value) else value.isoformat()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


# Image sets: their own checks, the same ValidationResult (see pipelines.images.validation,
# which imports this module only inside its functions, so this import cannot cycle).
from pipelines.images.validation import image_suite, validate_images  # noqa: E402

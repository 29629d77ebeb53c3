"""The data model: what kind each column is, whether it has nulls, and its bounds.

A ``Schema`` is inferred from a DataFrame, edited by the user where inference guessed
wrong, stored as JSON next to a model, and used to validate every frame that enters
``fit``. Keeping it as plain dataclasses keeps it JSON-safe and easy to diff.

Durations (``timedelta64`` columns) are ``numerical``: bounds in seconds, decoded back to
the column's timedelta dtype on the resolution seen in training. Cells no kind can hold
(periods, intervals, lists / dicts, bytes, Decimal, date / time objects, timestamps in
several time zones, complex numbers) and datetimes outside int64 nanoseconds
(1677-2262) are refused by ``Schema.infer`` with a ``SchemaError`` that names the column
and the conversion to apply, rather than failing at ``model.save`` or ``sample``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from synthgen.core.kinds import KINDS as KINDS  # the public path of the kind names
from synthgen.errors import DataError, SchemaError

#: Name patterns that mark an all-unique column as an identifier.
_ID_NAME = re.compile(r"(^|[_\W])(id|uuid|guid|key)$|^id[_\W]|Id$|ID$", re.IGNORECASE)
#: A string column is an identifier when (almost) every value is distinct.
ID_UNIQUE_RATIO = 0.5
ID_MIN_UNIQUE = 100
MAX_DECIMALS = 6


def _json_scalar(value: Any, column: Any = None) -> Any:
    """Turn numpy / pandas scalars into plain JSON-safe Python values."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        where = "" if column is None else f"column {column!r}: "
        raise DataError(
            f"{where}value {value!r} cannot be stored in a schema; replace it with NaN "
            "(df[col].replace([np.inf, -np.inf], np.nan)) or drop those rows"
        )
    return value


#: Python types a category may have: they are what a schema's JSON can hold.
_CATEGORY_TYPES = (str, bool, int, float)


def _value_fix(name: Any, value: Any) -> str:
    """What is wrong with a cell of an unsupported type, and how to convert the column.

    Why refuse rather than guess: such cells (bytes, Decimal, dates, lists ...) fitted
    as categories once, then failed at ``model.save`` ("not JSON serializable") after all
    the training work, or decoded to the wrong type.
    """
    import datetime
    import decimal

    col = f"df[{name!r}]"
    kind = type(value).__name__
    if isinstance(value, list | tuple | dict | set | frozenset | np.ndarray):
        return (
            f"cells must hold single values, not {kind}s: split them into columns, explode "
            f"them (df.explode({name!r})) or store them as text ({col} = {col}.astype(str))"
        )
    if isinstance(value, bytes | bytearray):
        return f"it holds bytes: decode them to text ({col} = {col}.str.decode('utf-8'))"
    if isinstance(value, decimal.Decimal):
        return f"it holds Decimal values: convert them to floats ({col} = {col}.astype(float))"
    if isinstance(value, pd.Period):
        return (
            "it holds periods: convert them to timestamps "
            f"({col} = {col}.apply(lambda p: p.to_timestamp()))"
        )
    if isinstance(value, pd.Interval):
        return (
            f"it holds intervals: store them as text ({col} = {col}.astype(str)) or as "
            f"numbers, e.g. their midpoints ({col} = {col}.array.mid)"
        )
    if isinstance(value, datetime.datetime):
        return (
            f"it holds {kind} objects: parse them into one datetime column ({col} = "
            f"pd.to_datetime({col}, utc=True); utc=True is needed when time zones differ)"
        )
    if isinstance(value, datetime.date):
        return f"it holds date objects: parse them as datetimes ({col} = pd.to_datetime({col}))"
    if isinstance(value, datetime.time):
        return (
            "it holds time-of-day objects: turn them into durations since midnight "
            f"({col} = pd.to_timedelta({col}.astype(str)))"
        )
    if isinstance(value, datetime.timedelta):
        return f"it holds {kind} objects: convert them ({col} = pd.to_timedelta({col}))"
    if isinstance(value, complex):
        return f"it holds complex numbers: split them ({col}.to_numpy().real and .imag)"
    return f"it holds {kind} values: cast them to text ({col} = {col}.astype(str)) or numbers"


def _check_category_values(name: Any, values: Any) -> None:
    """Refuse cells no category can be (see ``_value_fix``), naming the column and the fix."""
    first_of_type: dict[type, Any] = {}
    for value in values:
        first_of_type.setdefault(type(value), value)
    for value in first_of_type.values():
        plain = value.item() if isinstance(value, np.generic) else value
        if not isinstance(plain, _CATEGORY_TYPES):
            raise SchemaError(
                f"column {name!r} cannot be modelled: {_value_fix(name, plain)} "
                f"(first such value: {value!r})"
            )


def _check_dtype(name: Any, series: pd.Series) -> None:
    """Refuse dtypes that no column kind models, before any value is looked at."""
    dtype = series.dtype
    col = f"df[{name!r}]"
    fix = None
    if isinstance(dtype, pd.PeriodDtype):
        fix = f"it holds periods ({dtype}): convert with {col} = {col}.dt.to_timestamp()"
    elif isinstance(dtype, pd.IntervalDtype):
        fix = (
            f"it holds intervals ({dtype}): store them as text ({col} = {col}.astype(str)) "
            f"or as numbers, e.g. their midpoints ({col} = {col}.array.mid)"
        )
    elif isinstance(dtype, pd.SparseDtype):
        fix = f"it is sparse ({dtype}): densify it with {col} = {col}.sparse.to_dense()"
    elif pd.api.types.is_complex_dtype(dtype):
        fix = f"it holds complex numbers: split them ({col}.to_numpy().real and .imag)"
    if fix is not None:
        raise SchemaError(f"column {name!r} cannot be modelled: {fix}")


def _check_datetime_range(name: Any, series: pd.Series) -> None:
    """Datetimes are encoded as int64 nanoseconds: refuse what does not fit (years
    1677-2262) at once, instead of fitting a model that can never sample."""
    nonnull = series.dropna()
    if not len(nonnull):
        return
    low, high = nonnull.min(), nonnull.max()
    if low.tzinfo is not None:
        low, high = low.tz_convert(None), high.tz_convert(None)
    if low < pd.Timestamp.min or high > pd.Timestamp.max:
        raise SchemaError(
            f"column {name!r} holds datetimes from {low} to {high}, outside the range synthgen "
            f"encodes ({pd.Timestamp.min.date()} .. {pd.Timestamp.max.date()}, nanoseconds in "
            f"int64); shift them into it or model a number instead, e.g. "
            f"df[{name!r}] = df[{name!r}].dt.year"
        )


def is_timedelta_dtype(dtype: Any) -> bool:
    """True for a duration column (modelled as a number of seconds, restored as timedelta)."""
    return str(dtype).startswith("timedelta64")


def numeric_values(series: pd.Series) -> pd.Series:
    """A numerical column as float64 numbers: durations become seconds; non-numbers NaN."""
    if is_timedelta_dtype(series.dtype):
        return pd.to_timedelta(series, errors="coerce").dt.total_seconds()
    return pd.to_numeric(series, errors="coerce")


def _timedelta_spec(name: Any, series: pd.Series, nullable: bool) -> ColumnSpec:
    """A duration column: numerical, bounds in seconds, restored to its timedelta dtype."""
    nonnull = series.dropna()
    if nonnull.abs().max() > pd.Timedelta.max:
        raise SchemaError(
            f"column {name!r} holds durations beyond +-{pd.Timedelta.max} (int64 nanoseconds, "
            f"what synthgen encodes); model it as a number, e.g. "
            f"df[{name!r}] = df[{name!r}].dt.total_seconds()"
        )
    seconds = nonnull.dt.total_seconds().to_numpy(dtype="float64")
    return ColumnSpec(
        name,
        "numerical",
        str(series.dtype),
        nullable=nullable,
        min=float(seconds.min()),
        max=float(seconds.max()),
    )


@dataclass
class ColumnSpec:
    """What synthgen knows about one column.

    ``categories`` is None until learned (a user may leave it out when editing a
    schema by hand); ``min``/``max`` are the bounds generated values are clipped to
    (numbers, or ISO strings for datetimes). ``public=True`` declares that this
    column's categories (or bounds) are public knowledge, not read from the private
    data: differentially private training then uses them as given, at no privacy
    cost. ``Schema.infer`` never sets it, because what it learns comes from the data.
    """

    name: str
    kind: str
    dtype: str
    nullable: bool = False
    min: float | str | None = None
    max: float | str | None = None
    integer: bool = False
    decimals: int | None = None
    categories: list[Any] | None = None
    public: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SchemaError(
                f"column {self.name!r}: unknown kind {self.kind!r}; use one of {', '.join(KINDS)}"
            )
        self.check()

    def problems(self) -> list[str]:
        """Every way this spec contradicts itself (min above max, a bound that is not a
        number, ...); empty when it is sound. Why: an edited schema with min > max
        once clipped every generated value to a single number, unchecked."""
        return _spec_problems(self)

    def check(self) -> None:
        """Raise ``SchemaError`` when ``problems()`` finds anything."""
        found = self.problems()
        if found:
            raise SchemaError("invalid schema:\n  - " + "\n  - ".join(found))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise SchemaError(
                f"column {data.get('name')!r}: unknown schema field(s) {sorted(unknown)}; "
                f"allowed fields are {sorted(known)}"
            )
        if "name" not in data or "kind" not in data:
            raise SchemaError(f"schema column entry {data!r} needs at least 'name' and 'kind'")
        data = dict(data)
        data.setdefault("dtype", _default_dtype(data["kind"]))
        return cls(**data)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _spec_problems(spec: ColumnSpec) -> list[str]:
    """The self-contradictions of one column spec, each naming the column and the fix."""
    name, out = spec.name, []
    if not isinstance(spec.name, str):
        out.append(f"column name {spec.name!r} must be a string")
    if not isinstance(spec.dtype, str):
        out.append(f"column {name!r}: dtype {spec.dtype!r} must be a string such as 'float64'")
    for flag in ("nullable", "integer", "public"):
        if not isinstance(getattr(spec, flag), bool | np.bool_):
            out.append(f"column {name!r}: {flag}={getattr(spec, flag)!r} must be True or False")
    if spec.decimals is not None and (
        not isinstance(spec.decimals, int | np.integer)
        or isinstance(spec.decimals, bool)
        or not 0 <= spec.decimals <= 15
    ):
        out.append(
            f"column {name!r}: decimals={spec.decimals!r} must be None or an integer in 0..15"
        )
    if spec.categories is not None and not isinstance(spec.categories, list):
        out.append(f"column {name!r}: categories must be a list or None, not {spec.categories!r}")
    elif spec.categories is not None:
        odd = [c for c in spec.categories if not isinstance(c, _CATEGORY_TYPES)]
        if odd:
            out.append(
                f"column {name!r}: category {odd[0]!r} must be a string, number or boolean "
                "(what a schema's JSON can hold)"
            )
    if spec.kind == "numerical":
        out.extend(_bound_problems(name, spec.min, spec.max, _is_number, "a finite number"))
    elif spec.kind == "datetime":
        out.extend(_bound_problems(name, spec.min, spec.max, _is_timestamp, "an ISO date string"))
    return out


def _is_timestamp(value: Any) -> bool:
    try:
        return isinstance(value, str) and not pd.isna(pd.Timestamp(value))
    except (ValueError, TypeError, OverflowError):
        return False


def _bound_problems(name: str, low: Any, high: Any, valid, what: str) -> list[str]:
    """min / max must each be valid (or None) and in order."""
    out = []
    for label, value in (("min", low), ("max", high)):
        if value is None:
            continue
        if not valid(value) or (_is_number(value) and not math.isfinite(float(value))):
            out.append(f"column {name!r}: {label}={value!r} must be None or {what}")
    if out or low is None or high is None:
        return out
    try:
        ordered = pd.Timestamp(low) <= pd.Timestamp(high) if isinstance(low, str) else low <= high
    except TypeError:  # a time-zone-aware bound next to a naive one
        return [f"column {name!r}: min={low!r} and max={high!r} mix time zones; use one"]
    if not ordered:
        out.append(
            f"column {name!r}: min={low!r} is above max={high!r}; swap them or set both to "
            "None to learn them from the data"
        )
    return out


def _default_dtype(kind: str) -> str:
    return {
        "numerical": "float64",
        "categorical": "object",
        "boolean": "bool",
        "datetime": "datetime64[ns]",
        "id": "object",
    }.get(kind, "object")


def _decimals(values: np.ndarray) -> int | None:
    """Fewest decimals (at most ``MAX_DECIMALS``) that write every value; None: full precision.

    Each value must survive the rounding to within a relative 1e-9 of itself. A
    tolerance relative to the column's largest value (as before) let 1e-12 .. 1e-10
    round to 0 decimals, and wiped the small amounts of a lognormal(0, 4) column to
    exact zeros: rounding must never erase a value's magnitude.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    tolerance = 1e-9 * np.abs(values)
    with np.errstate(over="ignore", invalid="ignore"):
        for d in range(MAX_DECIMALS + 1):
            if np.all(np.abs(np.round(values, d) - values) <= tolerance):
                return d
    return None


def _check_finite(name: str, series: pd.Series) -> None:
    refuse_infinite(numeric_values(series).to_numpy(dtype="float64", na_value=np.nan), name)


def refuse_infinite(values: np.ndarray, name: str, where: str = "") -> None:
    """``DataError`` naming column ``name`` (of ``where``) when ``values`` hold +-inf."""
    n_inf = int(np.isinf(values).sum())
    if n_inf:
        of = f" of {where}" if where else ""
        raise DataError(
            f"column {name!r}{of} holds {n_inf} infinite value(s) "
            f"(e.g. {values[np.isinf(values)][0]}); "
            "replace them with NaN (df[col].replace([np.inf, -np.inf], np.nan)) or drop those rows"
        )


def _infer_column(name: str, series: pd.Series) -> ColumnSpec:
    _check_dtype(name, series)
    dtype = str(series.dtype)
    nonnull = series.dropna()
    nullable = bool(len(nonnull) < len(series))
    if len(nonnull) == 0:
        # Nothing to learn but the fact that the column is empty: model it as a
        # categorical column whose only value is null, so it round-trips as all-null
        # (a category dtype keeps its declared categories, hence its dtype).
        declared = []
        if isinstance(series.dtype, pd.CategoricalDtype):
            _check_category_values(name, series.cat.categories)
            declared = [_json_scalar(v, name) for v in series.cat.categories]
        return ColumnSpec(name, "categorical", dtype, nullable=True, categories=declared)
    if pd.api.types.is_bool_dtype(series.dtype):
        return ColumnSpec(name, "boolean", dtype, nullable=nullable, categories=[False, True])
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        _check_datetime_range(name, series)
        return ColumnSpec(
            name,
            "datetime",
            dtype,
            nullable=nullable,
            min=nonnull.min().isoformat(),
            max=nonnull.max().isoformat(),
        )
    if is_timedelta_dtype(series.dtype):
        return _timedelta_spec(name, series, nullable)
    if pd.api.types.is_numeric_dtype(series.dtype):
        return _numerical_spec(name, series, nonnull, nullable)
    # object / string / category columns
    distinct = series.cat.categories if isinstance(series.dtype, pd.CategoricalDtype) else nonnull
    _check_category_values(name, distinct)
    types = {type(v) for v in nonnull.to_numpy()}
    if len(types) > 1 and not types <= {int, float, np.int64, np.float64}:
        shown = ", ".join(sorted(t.__name__ for t in types))
        raise DataError(
            f"column {name!r} mixes value types ({shown}); cast it to one type first, "
            f"e.g. df[{name!r}] = df[{name!r}].astype(str)"
        )
    if types and all(t is bool or t is np.bool_ for t in types):
        return ColumnSpec(name, "boolean", dtype, nullable=nullable, categories=[False, True])
    if isinstance(series.dtype, pd.CategoricalDtype):
        # the dtype declares the categories (seen or not) and their order: keep both, so
        # that generated columns get the very same dtype back
        categories = [_json_scalar(v, name) for v in series.cat.categories]
        return ColumnSpec(name, "categorical", dtype, nullable=nullable, categories=categories)
    unique = int(nonnull.nunique())
    if unique >= ID_MIN_UNIQUE and unique > ID_UNIQUE_RATIO * len(nonnull):
        return ColumnSpec(name, "id", dtype, nullable=nullable)
    categories = _sorted([_json_scalar(v, name) for v in nonnull.unique()])
    return ColumnSpec(name, "categorical", dtype, nullable=nullable, categories=categories)


def _numerical_spec(name: str, series: pd.Series, nonnull: pd.Series, nullable: bool) -> ColumnSpec:
    """An int / float column: bounds, integer flag and decimals (or an id by its name)."""
    _check_finite(name, series)
    values = nonnull.to_numpy(dtype="float64")
    is_int = pd.api.types.is_integer_dtype(series.dtype)
    if is_int and nonnull.nunique() == len(series) and _ID_NAME.search(str(name)):
        return ColumnSpec(name, "id", str(series.dtype))
    return ColumnSpec(
        name,
        "numerical",
        str(series.dtype),
        nullable=nullable,
        min=_json_scalar(values.min(), name),
        max=_json_scalar(values.max(), name),
        integer=is_int,
        decimals=0 if is_int else _decimals(values),
    )


def _learn_details(spec: ColumnSpec, series: pd.Series) -> None:
    """Fill in what ``spec``'s kind needs from ``series`` (categories, bounds, decimals)."""
    name, nonnull = spec.name, series.dropna()
    if spec.kind in ("categorical", "boolean"):
        _check_category_values(name, nonnull)
        spec.categories = _sorted([_json_scalar(v, name) for v in nonnull.unique()])
    elif spec.kind == "numerical":
        values = numeric_values(nonnull)
        if values.isna().any():
            bad = nonnull[values.isna()].iloc[0]
            raise SchemaError(f"column {name!r} cannot be numerical: value {bad!r} is not a number")
        _check_finite(name, values)
        arr = values.to_numpy(dtype="float64")
        if len(arr):
            spec.min, spec.max = _json_scalar(arr.min(), name), _json_scalar(arr.max(), name)
            timedelta = is_timedelta_dtype(series.dtype)
            spec.integer = pd.api.types.is_integer_dtype(series.dtype)
            spec.decimals = None if timedelta else 0 if spec.integer else _decimals(arr)
    elif spec.kind == "datetime":
        parsed = pd.to_datetime(nonnull, errors="coerce")
        if parsed.isna().any():
            bad = nonnull[parsed.isna()].iloc[0]
            raise SchemaError(
                f"column {name!r} cannot be a datetime: value {bad!r} does not parse as one"
            )
        _check_datetime_range(name, parsed)
        if len(parsed):
            spec.min, spec.max = parsed.min().isoformat(), parsed.max().isoformat()


def _sorted(categories: list[Any]) -> list[Any]:
    """Categories in a stable order: natural when comparable, else by their text."""
    try:
        return sorted(categories)
    except TypeError:
        return sorted(categories, key=str)


@dataclass
class Schema:
    """Column kinds, nulls and bounds of a table, in column order.

    Create one with ``Schema.infer(df)``, edit it with ``schema.set_kind(col, kind)``
    or by assigning to ``schema[col]`` fields, and store it with ``to_dict``/``to_json``.
    """

    columns: dict[str, ColumnSpec] = field(default_factory=dict)

    # ----------------------------------------------------------------- building
    @classmethod
    def infer(cls, df: pd.DataFrame, kinds: dict[str, str] | None = None) -> Schema:
        """Infer a schema from ``df``; ``kinds`` forces the kind of named columns."""
        check_frame(df)
        kinds = dict(kinds or {})
        unknown = set(kinds) - set(df.columns)
        if unknown:
            raise SchemaError(
                f"kinds names column(s) {sorted(unknown)} that are not in the frame; "
                f"columns are {list(df.columns)}"
            )
        schema = cls({name: _infer_column(name, df[name]) for name in df.columns})
        for name, kind in kinds.items():
            schema.set_kind(name, kind, df[name])
        return schema

    def set_kind(self, name: str, kind: str, series: pd.Series | None = None) -> None:
        """Change a column's kind; with ``series`` the new kind's details are learned."""
        spec = self[name]
        if kind not in KINDS:
            raise SchemaError(
                f"column {name!r}: unknown kind {kind!r}; use one of {', '.join(KINDS)}"
            )
        new = ColumnSpec(name, kind, spec.dtype, nullable=spec.nullable)
        if series is not None:
            _learn_details(new, series)
        self.columns[name] = new

    # ----------------------------------------------------------------- access
    def __getitem__(self, name: str) -> ColumnSpec:
        try:
            return self.columns[name]
        except KeyError:
            raise SchemaError(
                f"column {name!r} is not in the schema; columns are {list(self.columns)}"
            ) from None

    def __iter__(self):
        return iter(self.columns.values())

    def __len__(self) -> int:
        return len(self.columns)

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def names_of(self, *kinds: str) -> list[str]:
        """Column names whose kind is one of ``kinds``."""
        return [c.name for c in self.columns.values() if c.kind in kinds]

    # ----------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "columns": [c.to_dict() for c in self.columns.values()]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
            raise SchemaError("a schema dict needs a 'columns' list (as written by Schema.to_dict)")
        bad = [c for c in data["columns"] if not isinstance(c, dict)]
        if bad:
            raise SchemaError(
                f"schema column entry {bad[0]!r} must be a dict like "
                "{'name': 'age', 'kind': 'numerical'}"
            )
        specs = [ColumnSpec.from_dict(c) for c in data["columns"]]
        names = [s.name for s in specs]
        dupes = sorted({str(n) for n in names if names.count(n) > 1})
        if dupes:
            raise SchemaError(f"the schema names column(s) {dupes} more than once; keep one each")
        return cls({s.name: s for s in specs})

    def to_json(self, path: str | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        return text

    @classmethod
    def from_json(cls, text_or_path: Any) -> Schema:
        """A schema from JSON text (starting with ``{``) or from the path of a JSON file."""
        if hasattr(text_or_path, "__fspath__"):
            text_or_path = str(text_or_path.__fspath__())
        if not isinstance(text_or_path, str):
            raise SchemaError(
                f"Schema.from_json takes JSON text or a file path, not "
                f"{type(text_or_path).__name__}"
            )
        text = text_or_path
        if not text_or_path.lstrip().startswith("{"):
            text = _read_schema_file(text_or_path)
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise SchemaError(f"schema is not valid JSON: {exc}") from None

    # ----------------------------------------------------------------- checks
    def check_learnable(self) -> None:
        """Refuse a schema with nothing to learn: identifiers are minted anew, so a table
        of ids only gives a generator no input (CTGAN / TabDDPM failed deep inside)."""
        if self.columns and all(spec.kind == "id" for spec in self.columns.values()):
            raise SchemaError(
                f"every column is an id column ({self.names}); there is nothing to learn. "
                "Add informative columns, or set their kind: schema.set_kind(col, "
                "'categorical' | 'numerical', df[col]) and fit with schema="
            )

    def validate(self, df: pd.DataFrame, check_bounds: bool = False) -> None:
        """Raise ``SchemaError`` listing every way ``df`` does not fit this schema."""
        check_frame(df)
        problems: list[str] = []
        missing = [n for n in self.columns if n not in df.columns]
        extra = [n for n in df.columns if n not in self.columns]
        if missing:
            problems.append(f"missing column(s) {missing}")
        if extra:
            problems.append(f"column(s) {extra} are not in the schema (add them or drop them)")
        for key, spec in self.columns.items():
            if key != spec.name:
                problems.append(f"schema entry {key!r} holds the spec of column {spec.name!r}")
            spec_problems = spec.problems()  # edited fields are checked here, not only at init
            problems.extend(spec_problems)
            if spec.name not in df.columns or spec_problems:
                continue
            problems.extend(_column_problems(spec, df[spec.name], check_bounds))
        if problems:
            raise SchemaError("data does not match the schema:\n  - " + "\n  - ".join(problems))


def _read_schema_file(path: str) -> str:
    """The text of a schema file, or a ``SchemaError`` naming the file and the problem."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        reason = "does not exist"
    except IsADirectoryError:
        reason = "is a directory, not a file"
    except PermissionError:
        reason = "cannot be read (permission denied)"
    except (OSError, UnicodeDecodeError) as exc:
        reason = f"cannot be read ({type(exc).__name__}: {exc})"
    raise SchemaError(
        f"schema file {path!r} {reason}; pass the path of a file written by schema.to_json(path)"
        " or the JSON text itself"
    )


def _column_problems(spec: ColumnSpec, series: pd.Series, check_bounds: bool) -> list[str]:
    out: list[str] = []
    name = spec.name
    nonnull = series.dropna()
    if not spec.nullable and len(nonnull) < len(series):
        out.append(
            f"column {name!r} has {len(series) - len(nonnull)} null(s) but the schema says "
            "nullable=False (set schema[col].nullable = True or fill them)"
        )
    if spec.kind == "id":
        return out
    try:
        _check_dtype(name, series)
        if series.dtype == object or isinstance(series.dtype, pd.CategoricalDtype):
            _check_category_values(name, nonnull)
    except SchemaError as exc:
        return [*out, str(exc)]
    if spec.kind == "numerical":
        out.extend(_numerical_problems(spec, nonnull, check_bounds))
    elif spec.kind == "datetime":
        out.extend(_datetime_problems(spec, series, nonnull))
    elif spec.kind in ("categorical", "boolean") and spec.categories is not None:
        allowed = set(spec.categories)
        unseen = [v for v in pd.unique(nonnull) if _json_scalar(v, name) not in allowed]
        if unseen:
            shown = ", ".join(repr(v) for v in unseen[:5])
            out.append(
                f"column {name!r} has value(s) {shown} not among its {len(allowed)} categories "
                "(add them to schema[col].categories or set categories=None to learn them)"
            )
    return out


def _numerical_problems(spec: ColumnSpec, nonnull: pd.Series, check_bounds: bool) -> list[str]:
    name = spec.name
    values = numeric_values(nonnull)
    if values.isna().any():
        bad = nonnull[values.isna()].iloc[0]
        return [f"column {name!r} is numerical but holds {bad!r}; cast or clean it"]
    arr = values.to_numpy(dtype="float64")
    if np.isinf(arr).any():
        return [f"column {name!r} holds infinite values; replace them with NaN"]
    if (
        check_bounds
        and len(arr)
        and spec.min is not None
        and spec.max is not None
        and (arr.min() < spec.min or arr.max() > spec.max)
    ):
        return [
            f"column {name!r} has values in [{arr.min()}, {arr.max()}] outside the "
            f"schema bounds [{spec.min}, {spec.max}]"
        ]
    return []


def _datetime_problems(spec: ColumnSpec, series: pd.Series, nonnull: pd.Series) -> list[str]:
    name = spec.name
    parsed = nonnull
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        try:
            parsed = pd.to_datetime(nonnull, errors="coerce")
        except (ValueError, TypeError) as exc:  # e.g. several time zones in one column
            return [
                f"column {name!r} is datetime but does not parse as one column of datetimes "
                f"({exc}); parse it first with pd.to_datetime(df[{name!r}], utc=True)"
            ]
        if parsed.isna().any():
            bad = nonnull[parsed.isna()].iloc[0]
            return [f"column {name!r} is datetime but holds {bad!r}"]
    if pd.api.types.is_datetime64_any_dtype(parsed.dtype):
        try:
            _check_datetime_range(name, parsed)
        except SchemaError as exc:
            return [str(exc)]
    return []


def check_frame(df: Any) -> None:
    """Reject inputs no generator can learn from, before any work is done."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(
            f"expected a pandas DataFrame, got {type(df).__name__}; "
            "load files with pandas.read_csv / read_parquet first"
        )
    if df.shape[1] == 0:
        raise DataError("the frame has no columns")
    if df.shape[0] == 0:
        raise DataError("the frame has no rows; a generator needs at least 2 rows to learn from")
    dupes = df.columns[df.columns.duplicated()].tolist()
    if dupes:
        raise DataError(f"duplicate column name(s) {dupes}; rename them so each is unique")
    bad_names = [c for c in df.columns if not isinstance(c, str)]
    if bad_names:
        raise DataError(
            f"column names must be strings, got {bad_names[:5]}; "
            "rename them with df.columns = df.columns.astype(str)"
        )

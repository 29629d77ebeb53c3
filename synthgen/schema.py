"""The data model: what kind each column is, whether it has nulls, and its bounds.

A ``Schema`` is inferred from a DataFrame, edited by the user where inference guessed
wrong, stored as JSON next to a model, and used to validate every frame that enters
``fit``. Keeping it as plain dataclasses keeps it JSON-safe and easy to diff.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np
import pandas as pd

from synthgen.errors import DataError, SchemaError

ColumnKind = Literal["numerical", "categorical", "boolean", "datetime", "id"]
KINDS: tuple[str, ...] = ("numerical", "categorical", "boolean", "datetime", "id")

#: Name patterns that mark an all-unique column as an identifier.
_ID_NAME = re.compile(r"(^|[_\W])(id|uuid|guid|key)$|^id[_\W]|Id$|ID$", re.IGNORECASE)
#: A string column is an identifier when (almost) every value is distinct.
ID_UNIQUE_RATIO = 0.5
ID_MIN_UNIQUE = 100
MAX_DECIMALS = 6


def _json_scalar(value: Any) -> Any:
    """Turn numpy / pandas scalars into plain JSON-safe Python values."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise DataError(f"value {value!r} cannot be stored in a schema; replace it with NaN")
    return value


@dataclass
class ColumnSpec:
    """What synthgen knows about one column.

    ``categories`` is None until learned (a user may leave it out when editing a
    schema by hand); ``min``/``max`` are the bounds generated values are clipped to
    (numbers, or ISO strings for datetimes).
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

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SchemaError(
                f"column {self.name!r}: unknown kind {self.kind!r}; use one of {', '.join(KINDS)}"
            )

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


def _default_dtype(kind: str) -> str:
    return {
        "numerical": "float64",
        "categorical": "object",
        "boolean": "bool",
        "datetime": "datetime64[ns]",
        "id": "object",
    }.get(kind, "object")


def _decimals(values: np.ndarray) -> int | None:
    """Smallest number of decimals that represents every value; None for full precision."""
    sample = values[:5000]
    for d in range(MAX_DECIMALS + 1):
        if np.allclose(
            np.round(sample, d), sample, rtol=0, atol=1e-9 * max(1.0, np.abs(sample).max())
        ):
            return d
    return None


def _check_finite(name: str, series: pd.Series) -> None:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    n_inf = int(np.isinf(values).sum())
    if n_inf:
        raise DataError(
            f"column {name!r} holds {n_inf} infinite value(s) "
            f"(e.g. {values[np.isinf(values)][0]}); "
            "replace them with NaN (df[col].replace([np.inf, -np.inf], np.nan)) or drop those rows"
        )


def _infer_column(name: str, series: pd.Series) -> ColumnSpec:
    dtype = str(series.dtype)
    nonnull = series.dropna()
    nullable = bool(len(nonnull) < len(series))
    if len(nonnull) == 0:
        # Nothing to learn but the fact that the column is empty: model it as a
        # categorical column whose only value is null, so it round-trips as all-null.
        return ColumnSpec(name, "categorical", dtype, nullable=True, categories=[])
    if pd.api.types.is_bool_dtype(series.dtype):
        return ColumnSpec(name, "boolean", dtype, nullable=nullable, categories=[False, True])
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return ColumnSpec(
            name,
            "datetime",
            dtype,
            nullable=nullable,
            min=nonnull.min().isoformat(),
            max=nonnull.max().isoformat(),
        )
    if pd.api.types.is_numeric_dtype(series.dtype):
        _check_finite(name, series)
        values = nonnull.to_numpy(dtype="float64")
        is_int = pd.api.types.is_integer_dtype(series.dtype)
        unique = nonnull.nunique()
        if is_int and unique == len(series) and _ID_NAME.search(str(name)):
            return ColumnSpec(name, "id", dtype)
        return ColumnSpec(
            name,
            "numerical",
            dtype,
            nullable=nullable,
            min=_json_scalar(values.min()),
            max=_json_scalar(values.max()),
            integer=is_int,
            decimals=0 if is_int else _decimals(values),
        )
    # object / string / category columns
    types = {type(v) for v in nonnull.to_numpy()[:10000]}
    if len(types) > 1 and not types <= {int, float, np.int64, np.float64}:
        shown = ", ".join(sorted(t.__name__ for t in types))
        raise DataError(
            f"column {name!r} mixes value types ({shown}); cast it to one type first, "
            f"e.g. df[{name!r}] = df[{name!r}].astype(str)"
        )
    if types and all(t is bool or t is np.bool_ for t in types):
        return ColumnSpec(name, "boolean", dtype, nullable=nullable, categories=[False, True])
    unique = int(nonnull.nunique())
    if unique >= ID_MIN_UNIQUE and unique > ID_UNIQUE_RATIO * len(nonnull):
        return ColumnSpec(name, "id", dtype, nullable=nullable)
    if isinstance(series.dtype, pd.CategoricalDtype):
        categories = [_json_scalar(v) for v in series.cat.categories if v in set(nonnull.unique())]
    else:
        categories = [_json_scalar(v) for v in nonnull.unique()]
    try:
        categories = sorted(categories)
    except TypeError:
        categories = sorted(categories, key=str)
    return ColumnSpec(name, "categorical", dtype, nullable=nullable, categories=categories)


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
            nonnull = series.dropna()
            if kind == "categorical" or kind == "boolean":
                cats = [_json_scalar(v) for v in nonnull.unique()]
                try:
                    new.categories = sorted(cats)
                except TypeError:
                    new.categories = sorted(cats, key=str)
            elif kind == "numerical":
                values = pd.to_numeric(nonnull, errors="coerce")
                if values.isna().any():
                    bad = nonnull[values.isna()].iloc[0]
                    raise SchemaError(
                        f"column {name!r} cannot be numerical: value {bad!r} is not a number"
                    )
                _check_finite(name, values)
                arr = values.to_numpy(dtype="float64")
                if len(arr):
                    new.min, new.max = _json_scalar(arr.min()), _json_scalar(arr.max())
                    new.decimals = _decimals(arr)
                    new.integer = pd.api.types.is_integer_dtype(series.dtype)
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
        if not isinstance(data, dict) or "columns" not in data:
            raise SchemaError("a schema dict needs a 'columns' list (as written by Schema.to_dict)")
        specs = [ColumnSpec.from_dict(c) for c in data["columns"]]
        return cls({s.name: s for s in specs})

    def to_json(self, path: str | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str) -> Schema:
        text = text_or_path
        if not text_or_path.lstrip().startswith("{"):
            with open(text_or_path, encoding="utf-8") as fh:
                text = fh.read()
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise SchemaError(f"schema is not valid JSON: {exc}") from None

    # ----------------------------------------------------------------- checks
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
        for spec in self.columns.values():
            if spec.name not in df.columns:
                continue
            problems.extend(_column_problems(spec, df[spec.name], check_bounds))
        if problems:
            raise SchemaError("data does not match the schema:\n  - " + "\n  - ".join(problems))


def _column_problems(spec: ColumnSpec, series: pd.Series, check_bounds: bool) -> list[str]:
    out: list[str] = []
    name = spec.name
    nonnull = series.dropna()
    if not spec.nullable and len(nonnull) < len(series):
        out.append(
            f"column {name!r} has {len(series) - len(nonnull)} null(s) but the schema says "
            "nullable=False (set schema[col].nullable = True or fill them)"
        )
    if spec.kind == "numerical":
        values = pd.to_numeric(nonnull, errors="coerce")
        if values.isna().any():
            bad = nonnull[values.isna()].iloc[0]
            out.append(f"column {name!r} is numerical but holds {bad!r}; cast or clean it")
            return out
        arr = values.to_numpy(dtype="float64")
        if np.isinf(arr).any():
            out.append(f"column {name!r} holds infinite values; replace them with NaN")
        elif (
            check_bounds
            and len(arr)
            and spec.min is not None
            and spec.max is not None
            and (arr.min() < spec.min or arr.max() > spec.max)
        ):
            out.append(
                f"column {name!r} has values in [{arr.min()}, {arr.max()}] outside the "
                f"schema bounds [{spec.min}, {spec.max}]"
            )
    elif spec.kind == "datetime":
        if not pd.api.types.is_datetime64_any_dtype(series.dtype):
            parsed = pd.to_datetime(nonnull, errors="coerce")
            if parsed.isna().any():
                bad = nonnull[parsed.isna()].iloc[0]
                out.append(f"column {name!r} is datetime but holds {bad!r}")
    elif spec.kind in ("categorical", "boolean") and spec.categories is not None:
        allowed = set(spec.categories)
        try:
            unseen = [v for v in pd.unique(nonnull) if _json_scalar(v) not in allowed]
        except TypeError:
            unseen = [v for v in pd.unique(nonnull) if str(v) not in {str(a) for a in allowed}]
        if unseen:
            shown = ", ".join(repr(v) for v in unseen[:5])
            out.append(
                f"column {name!r} has value(s) {shown} not among its {len(allowed)} categories "
                "(add them to schema[col].categories or set categories=None to learn them)"
            )
    return out


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

"""DP-safe preprocessing: the per-column statistics a generator's transform is fitted on.

Every generator first fits a reversible transform on the raw table (category lists,
bounds, mixture modes, quantiles, class frequencies). Under differential privacy each
such statistic must be public (declared in the schema with ``public=True``) or released
by a DP mechanism whose cost is counted. ``release_statistics`` makes that release:
for every non-id column a domain (categories, or bounds ``[low, high]``) and a noisy
histogram over it (null is one more cell). From a ``PreprocessingRelease`` the caller

- builds a DP schema (``ColumnRelease.spec_fields``: released categories and bounds),
- draws a *pseudo frame* (``pseudo_frame``: each column sampled independently from its
  noisy histogram) and fits the transforms on it: pure post-processing of the release,
  so the fitted transforms are DP at the release's cost; the same frame is the
  "independent DP marginals" baseline,
- maps the private frame onto the released domain (``apply``: values clipped into the
  bounds, unreleased categories made null) before DP training, row by row, so
  neighbouring frames stay neighbouring and DP-SGD's guarantee composes with this one.

Privacy model: neighbouring datasets differ by adding or removing one row. The row
count n is treated as public (as opacus does to compute the sample rate); no other
statistic of the private frame is used without noise.

Budget (basic composition, every cost returned exactly; see ``release_statistics``):
the epsilon is split evenly over the non-id columns; a column with released bounds
spends ``RANGE_SHARE`` (1/2) of its epsilon on them (``noisy_range``: one Laplace
histogram over the cells of the public ``candidate_grid``, thresholded, whose span gives
both bounds at once) and the rest on its histogram (Laplace). The exponential mechanisms
of ``privacy.mechanisms`` (``exponential_quantile`` / ``exponential_bound``) are not used
here: at the few hundredths of epsilon a column gets in practice their bounds are drawn
from the ~400 tied candidates beyond the data (age came out as [-2.4e7, 1.3e15] on
Adult at a preprocessing epsilon of 1). A column whose categories must be discovered
spends its epsilon on a thresholded histogram and an even share of the delta.

Rare categories: a category seen in few rows is dropped by the threshold (about
``ln(1/(2 delta)) / epsilon`` rows are needed to be released reliably). ``apply`` turns
the dropped values into nulls, so a DP schema must mark every column with discovered
categories nullable (``spec_fields`` does), whether or not anything was dropped: which
values were dropped is private.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from privacy.mechanisms import (
    candidate_grid,
    laplace_counts,
    noisy_range,
    thresholded_histogram,
)
from synthgen.core.errors import ConfigError, DataError, ModelFileError
from synthgen.core.kinds import BOOLEAN, CATEGORICAL, DATETIME, ID, KINDS, NUMERICAL
from synthgen.core.values import category_keys, datetime_to_float, numeric_values

#: Share of a continuous column's epsilon spent on its released bounds (one
#: ``noisy_range`` for both, or for the one that is not public); the histogram gets the rest.
RANGE_SHARE = 0.5
#: ``noisy_range``'s beta (an empty grid cell next to data, within ``RANGE_REACH`` cells,
#: may widen the range by up to a decade with this chance) and far_beta (the chance that
#: a lone empty cell anywhere on the grid is taken for data, which would put a bound at,
#: say, 1e15). Not privacy parameters: the range is epsilon-DP whatever they are. On Adult
#: (6 numeric columns, 300 seeds, preprocessing epsilon 0.1 and 1) the plain rule (beta
#: 0.05 for every cell) put a bound beyond 10x the data in ~3% of the draws; with
#: far_beta = 1e-3 in none of the 3,600.
RANGE_BETA = 0.05
RANGE_FAR_BETA = 1e-3
RANGE_REACH = 16
DEFAULT_BINS = 32
DEFAULT_INTEGER_BINS = 128
#: Datetimes and durations are int64 nanoseconds: bounds beyond +-9.2e9 s cannot be
#: represented, so their candidates stop there (a public restriction of the grid).
_MAX_TIME_SECONDS = 9.2e9
_NS = 1_000_000_000
_FORMAT_VERSION = 1


# ----------------------------------------------------------------- small helpers
def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so released categories are JSON-safe."""
    return value.item() if isinstance(value, np.generic) else value


def _sorted(values: Iterable[Any]) -> list[Any]:
    """A stable order for released categories: natural when comparable, else by text."""
    values = list(values)
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=lambda v: (type(v).__name__, str(v)))


def _is_public(spec: Any) -> bool:
    return bool(getattr(spec, "public", False))


def _is_continuous(kind: str) -> bool:
    return kind in (NUMERICAL, DATETIME)


def _is_duration(dtype: str) -> bool:
    return str(dtype).startswith("timedelta64")


def _tz_of(dtype: str) -> str | None:
    """The time zone of a dtype string like ``datetime64[ns, Europe/Paris]``."""
    text = str(dtype)
    if text.startswith("datetime64") and "," in text:
        return text.split(",", 1)[1].rstrip("]").strip()
    return None


def _iso_to_seconds(value: Any) -> float:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return float(stamp.as_unit("ns").value) / _NS


def _seconds_to_stamp(seconds: float, tz: str | None) -> pd.Timestamp:
    stamp = pd.Timestamp(int(round(seconds * _NS)), unit="ns")
    return stamp.tz_localize("UTC").tz_convert(tz) if tz else stamp


def _has_public_domain(spec: Any) -> bool:
    """True when the spec's domain is public knowledge (nothing about it to release)."""
    if spec.kind in (ID, BOOLEAN):
        return True
    if not _is_public(spec):
        return False
    if spec.kind == CATEGORICAL:
        return spec.categories is not None
    return spec.min is not None and spec.max is not None


def _public_bound(spec: Any, which: str) -> float | None:
    """A public bound of a continuous spec in float units (seconds for time), else None."""
    value = getattr(spec, which)
    if not _is_public(spec) or value is None:
        return None
    try:
        out = _iso_to_seconds(value) if spec.kind == DATETIME else float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(
            f"column {spec.name!r}: public {which}={value!r} is not "
            f"{'an ISO date string' if spec.kind == DATETIME else 'a number'}; fix the schema"
        ) from None
    if not math.isfinite(out):
        raise ConfigError(f"column {spec.name!r}: public {which}={value!r} must be finite")
    return out


def _as_seconds(series: pd.Series, kind: str) -> np.ndarray:
    """A continuous column as float64 (datetimes and durations in seconds), NaN for nulls."""
    if kind == DATETIME:
        stamps = series
        if not pd.api.types.is_datetime64_any_dtype(series.dtype):
            stamps = pd.to_datetime(series, errors="coerce")
        if getattr(stamps.dt, "tz", None) is not None:
            stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
        return datetime_to_float(stamps, unit="s")
    return numeric_values(series)


def _share(total: float, parts: int) -> float:
    """The largest float s with ``parts * s <= total`` exactly, as reals and as floats.

    Even splits must never add up to more than the budget: ``0.1 / 3 * 3`` is above 0.1
    in floating point, so the share is nudged down until the exact (Fraction) sum, the
    left-to-right float sum and ``math.fsum`` all stay within ``total``.
    """
    if parts <= 0 or total <= 0:
        return 0.0
    s = total / parts

    def over(x: float) -> bool:
        return (
            Fraction(x) * parts > Fraction(total)
            or sum([x] * parts) > total
            or math.fsum([x] * parts) > total
        )

    while s > 0 and over(s):
        s = float(np.nextafter(s, 0.0))
    return s


def _rest(total: float, spent: list[float]) -> float:
    """The largest float r with ``sum(spent) + r <= total`` exactly."""
    used = sum((Fraction(x) for x in spent), Fraction(0))
    r = max(total - math.fsum(spent), 0.0)
    while r > 0 and used + Fraction(r) > Fraction(total):
        r = float(np.nextafter(r, 0.0))
    return r


# ----------------------------------------------------------------- the release
@dataclass(eq=False)
class ColumnRelease:
    """What was released about one column, and what it cost.

    ``categories`` (discrete kinds): the released domain, in a stable order (the public
    list as declared, or the discovered keys sorted). ``low`` / ``high`` (continuous
    kinds): released bounds in float units (seconds since the epoch for datetimes,
    seconds for durations). ``edges``: histogram bin edges over the bounds; an integer
    column spanning at most ``integer_bins`` values gets one bin per integer, with
    edges at the half-integers ``low - 0.5 .. high + 0.5``. ``counts``: noisy count per
    category or bin, clipped at 0. ``null_count``: the noisy null cell (0 when the
    column is not nullable; nothing is released then). ``epsilon`` / ``delta``: this
    column's cost. ``dtype`` / ``nullable`` are the schema's (public) and say how to
    rebuild the column in ``pseudo_frame``.
    """

    name: str
    kind: str
    dtype: str = "object"
    public: bool = False
    nullable: bool = False
    categories: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    integer: bool = False
    edges: np.ndarray | None = None
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    null_count: float = 0.0
    epsilon: float = 0.0
    delta: float = 0.0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ColumnRelease) and self.to_dict() == other.to_dict()

    # ----------------------------------------------------------------- derived
    @property
    def discovered(self) -> bool:
        """True when the categories were found in the data (thresholded), not declared."""
        return self.kind == CATEGORICAL and not self.public

    @property
    def null_share(self) -> float:
        """The released share of nulls (0 when the column is not nullable)."""
        if not self.nullable:
            return 0.0
        total = float(np.sum(self.counts)) + self.null_count
        if total <= 0:  # no information: nulls as likely as any cell
            return 1.0 / (len(self.counts) + 1)
        return self.null_count / total

    def spec_fields(self) -> dict[str, Any]:
        """Fields of a DP schema column, in the schema's units (ISO text for datetimes).

        ``nullable`` is True also for a column with discovered categories: ``apply``
        makes its unreleased values null, and whether any were is not released.
        """
        out: dict[str, Any] = {"nullable": bool(self.nullable or self.discovered)}
        if self.kind in (CATEGORICAL, BOOLEAN):
            out["categories"] = list(self.categories or [])
        elif _is_continuous(self.kind) and self.low is not None and self.high is not None:
            if self.kind == DATETIME:
                tz = _tz_of(self.dtype)
                out["min"] = _seconds_to_stamp(self.low, tz).isoformat()
                out["max"] = _seconds_to_stamp(self.high, tz).isoformat()
            else:
                out["min"], out["max"] = float(self.low), float(self.high)
        return out

    # ----------------------------------------------------------------- state
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state (arrays as lists of floats)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "public": bool(self.public),
            "nullable": bool(self.nullable),
            "categories": None if self.categories is None else [_plain(c) for c in self.categories],
            "low": None if self.low is None else float(self.low),
            "high": None if self.high is None else float(self.high),
            "integer": bool(self.integer),
            "edges": None if self.edges is None else [float(e) for e in self.edges],
            "counts": [float(c) for c in self.counts],
            "null_count": float(self.null_count),
            "epsilon": float(self.epsilon),
            "delta": float(self.delta),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnRelease:
        if not isinstance(data, dict):
            raise ModelFileError(f"a column release must be a dict, not {type(data).__name__}")
        required = {"name", "kind", "counts"}
        missing = sorted(required - set(data))
        if missing:
            raise ModelFileError(
                f"column release {data.get('name')!r} lacks field(s) {missing}; "
                "it was not written by ColumnRelease.to_dict"
            )
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelFileError(
                f"column release {data.get('name')!r} has unknown field(s) {unknown}; "
                f"allowed fields are {sorted(known)}"
            )
        if data["kind"] not in KINDS:
            raise ModelFileError(
                f"column release {data['name']!r}: unknown kind {data['kind']!r}; "
                f"expected one of {', '.join(KINDS)}"
            )
        fields_ = dict(data)
        fields_["counts"] = np.asarray(data["counts"], dtype=np.float64)
        if data.get("edges") is not None:
            fields_["edges"] = np.asarray(data["edges"], dtype=np.float64)
        if data.get("categories") is not None:
            fields_["categories"] = list(data["categories"])
        return cls(**fields_)

    # ----------------------------------------------------------------- sampling
    def _cell_probabilities(self) -> np.ndarray:
        """Probabilities of the value cells, then of the null cell when the column has one."""
        cells = np.asarray(self.counts, dtype=np.float64)
        if self.nullable:
            cells = np.append(cells, self.null_count)
        cells = np.clip(cells, 0.0, None)
        total = cells.sum()
        if total <= 0:
            return np.full(len(cells), 1.0 / len(cells))
        return cells / total

    @property
    def n_cells(self) -> int:
        """Cells of the released domain: the values or bins, then null when nullable.

        A discovered categorical column always has the null cell (``apply`` turns its
        unreleased values into nulls), whatever its spec says.
        """
        return len(self.counts) + int(self.nullable or self.discovered)

    def cells(self, series: pd.Series) -> np.ndarray:
        """The cell of each value of a frame already mapped by ``apply`` (int64).

        Categories by their released position, continuous values by their bin (a value
        equal to an atom falls in the atom, as in the released histogram), nulls in the
        last cell. The discretisation of the marginal-based backends: a fixed function
        of each row, so it is free post-processing of what ``apply`` already did.
        """
        if self.kind == ID:
            raise ConfigError(f"column {self.name!r} is an id column: it has no cells")
        null_cell = len(self.counts)
        if self.kind in (CATEGORICAL, BOOLEAN):
            keys = category_keys(series)
            categories = list(self.categories or [])
            codes = (
                pd.Index(categories, dtype=object).get_indexer(keys)
                if categories
                else np.full(len(keys), -1, dtype=np.int64)
            )
            codes = np.where(keys.isna().to_numpy() | (codes < 0), null_cell, codes)
        else:
            assert self.edges is not None
            x = _as_seconds(series, self.kind)
            missing = np.isnan(x)
            filled = np.clip(np.where(missing, self.edges[0], x), self.edges[0], self.edges[-1])
            n_bins = len(self.edges) - 1
            codes = np.clip(np.searchsorted(self.edges, filled, side="right") - 1, 0, n_bins - 1)
            for k in np.flatnonzero(np.diff(self.edges) == 0):
                codes[filled == self.edges[k]] = k
            codes = np.where(missing, null_cell, codes)
        if (codes == null_cell).any() and self.n_cells <= null_cell:
            raise DataError(
                f"column {self.name!r} holds nulls but was released without a null cell; "
                "set its schema nullable=True and fit again"
            )
        return codes.astype(np.int64)

    def decode_cells(self, cell: np.ndarray, rng: np.random.Generator) -> pd.Series:
        """Values for given cells: the category, or a value uniform inside the bin.

        Integers are rounded inside ``[low, high]`` (one bin per integer keeps them
        exact), an atom (zero-width bin) decodes to its value, the null cell to null.
        Dtypes as ``pseudo_frame``'s. ``rng`` is the only randomness.
        """
        cell = np.asarray(cell, dtype=np.int64)
        n = len(cell)
        if self.kind == ID:
            return _id_series(n, self.dtype, self.name)
        n_values = len(self.counts)
        missing = cell >= n_values
        if self.kind in (CATEGORICAL, BOOLEAN):
            pool = np.empty(n_values + 1, dtype=object)
            pool[:n_values] = list(self.categories or [])
            pool[n_values] = None
            values = pool[np.where(missing, n_values, cell)]
            return _discrete_series(values, missing, self)
        assert self.edges is not None and self.low is not None and self.high is not None
        if n_values == 0:
            x = np.full(n, np.nan)
        else:
            bin_ = np.clip(cell, 0, n_values - 1)
            left, right = self.edges[bin_], self.edges[bin_ + 1]
            x = left + rng.random(n) * (right - left)
        if self.integer:
            lo, hi = math.ceil(self.low), math.floor(self.high)
            x = np.clip(np.round(x), lo, hi) if lo <= hi else np.full(n, self.low)
        x = np.clip(x, self.low, self.high)
        x[missing] = np.nan
        return _continuous_series(x, missing, self)

    def draw(self, n: int, rng: np.random.Generator) -> pd.Series:
        """``n`` values drawn from this column's noisy histogram (see ``pseudo_frame``)."""
        if self.kind == ID:
            return _id_series(n, self.dtype, self.name)
        n_values = len(self.counts)
        if n_values == 0:  # no category released: every value becomes null under apply
            cell = np.full(n, 0, dtype=np.int64)
            missing = np.ones(n, dtype=bool)
        else:
            p = self._cell_probabilities()
            cell = rng.choice(len(p), size=n, p=p)
            missing = cell >= n_values
        return self.decode_cells(np.where(missing, n_values, cell), rng)


def _id_series(n: int, dtype: str, name: str) -> pd.Series:
    """Identifiers are not modelled: a range 0..n-1 in the column's dtype where it fits."""
    base = pd.Series(np.arange(n, dtype=np.int64), name=name)
    if dtype in ("object", "string", "str"):
        return base.astype(str).astype(dtype if dtype != "str" else object)
    try:
        return base.astype(dtype)
    except (TypeError, ValueError):
        return base


def _cast(series: pd.Series, dtype: str, has_nulls: bool) -> pd.Series:
    """Cast generated values to the column's dtype (ints with nulls become float64)."""
    try:
        target = pd.api.types.pandas_dtype(dtype)
    except TypeError:
        return series
    if isinstance(target, np.dtype) and target.kind in "iub" and has_nulls:
        return series.astype(np.float64) if target.kind in "iu" else series.astype(object)
    if isinstance(target, np.dtype) and target.kind in "iu":
        series = series.astype(np.float64).round()
        numbers = series.to_numpy()
        info = np.iinfo(target)
        if len(numbers) and (numbers.min() < info.min or numbers.max() > info.max):
            target = np.dtype(np.int64)  # released bounds beyond the dtype: keep them exact
    try:
        return series.astype(target)
    except (TypeError, ValueError, OverflowError):
        return series


def _discrete_series(values: np.ndarray, missing: np.ndarray, col: ColumnRelease) -> pd.Series:
    if col.dtype == "category":
        cat = pd.Categorical(values, categories=list(col.categories or []))
        return pd.Series(cat, name=col.name)
    series = pd.Series(values, dtype=object, name=col.name)
    if col.dtype in ("object", "str"):
        return series
    return _cast(series, col.dtype, bool(missing.any()))


def _continuous_series(x: np.ndarray, missing: np.ndarray, col: ColumnRelease) -> pd.Series:
    if col.kind == DATETIME or _is_duration(col.dtype):
        ns = np.zeros(len(x), dtype=np.int64)
        ok = ~missing
        ns[ok] = np.round(x[ok] * _NS).astype(np.int64)
        if col.kind == DATETIME:
            out = pd.Series(pd.to_datetime(ns, unit="ns"), name=col.name)
            out[missing] = pd.NaT
            tz = _tz_of(col.dtype)
            return out.dt.tz_localize("UTC").dt.tz_convert(tz) if tz else out
        out = pd.Series(pd.to_timedelta(ns, unit="ns"), name=col.name)
        out[missing] = pd.NaT
        return out
    return _cast(pd.Series(x, name=col.name), col.dtype, bool(missing.any()))


@dataclass(eq=False)
class PreprocessingRelease:
    """The DP release of a frame's per-column statistics, and its total cost.

    ``columns``: name -> ``ColumnRelease`` in schema order. ``epsilon`` / ``delta``:
    totals by basic composition (sums of the columns' costs, never above the budget).
    ``n_rows``: the private frame's row count (treated as public).
    """

    columns: dict[str, ColumnRelease]
    epsilon: float
    delta: float
    n_rows: int

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PreprocessingRelease) and self.to_dict() == other.to_dict()

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": _FORMAT_VERSION,
            "epsilon": float(self.epsilon),
            "delta": float(self.delta),
            "n_rows": int(self.n_rows),
            "columns": [c.to_dict() for c in self.columns.values()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessingRelease:
        if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
            raise ModelFileError(
                "a preprocessing release must be a dict with a 'columns' list "
                "(as written by PreprocessingRelease.to_dict)"
            )
        if data.get("version") != _FORMAT_VERSION:
            raise ModelFileError(
                f"preprocessing release version {data.get('version')!r} is not supported "
                f"(this synthgen reads version {_FORMAT_VERSION}); refit the model"
            )
        columns = [ColumnRelease.from_dict(c) for c in data["columns"]]
        try:
            return cls(
                columns={c.name: c for c in columns},
                epsilon=float(data["epsilon"]),
                delta=float(data["delta"]),
                n_rows=int(data["n_rows"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(
                f"preprocessing release lacks or garbles epsilon / delta / n_rows ({exc!r})"
            ) from None

    # ----------------------------------------------------------------- post-processing
    def pseudo_frame(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        """``n`` rows, each column drawn independently from its noisy histogram.

        Cell probabilities are the noisy counts over their sum (uniform if all are 0);
        continuous values are uniform inside the drawn bin, integers rounded inside
        ``[low, high]`` (one bin per integer keeps them exact), nulls at the released
        null share. Dtypes follow the schema: ints as their dtype (float64 when nulls are
        drawn), datetimes as ``datetime64[ns]`` (with the column's time zone), durations
        as ``timedelta64[ns]``, booleans as bool (object with None when nulls are
        drawn), categories as object (pandas category when the schema's dtype is
        ``category``), id columns as the range 0..n-1. A discrete column with no
        released category is all null. Pure post-processing: costs nothing more.
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ConfigError(f"n={n!r} must be an integer >= 0 (the number of rows to draw)")
        if not isinstance(rng, np.random.Generator):
            raise ConfigError(f"rng must be a numpy.random.Generator, not {type(rng).__name__}")
        data = {name: col.draw(int(n), rng) for name, col in self.columns.items()}
        return pd.DataFrame(data, index=pd.RangeIndex(int(n)))

    def apply(self, df: pd.DataFrame) -> pd.DataFrame:
        """The private frame mapped onto the released domain, row by row (input untouched).

        Continuous values are clipped into ``[low, high]``; a discrete value outside
        the released categories becomes null (rare categories DP could not release are
        generated as missing; a DP schema marks those columns nullable). A discrete
        value outside a PUBLIC domain raises ``DataError``: the public claim is wrong.
        Each output row is a fixed function of the same input row, so neighbouring
        frames map to neighbouring frames and a DP training run on the output keeps its
        guarantee. Columns the release does not know are passed through unchanged.
        """
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
        missing = [name for name in self.columns if name not in df.columns]
        if missing:
            raise DataError(
                f"column(s) {missing} of the release are not in the frame; "
                f"the frame has {list(df.columns)}"
            )
        out = df.copy()
        for name, col in self.columns.items():
            if col.kind == ID:
                continue
            if col.kind in (CATEGORICAL, BOOLEAN):
                out[name] = _map_discrete(df[name], col)
            else:
                out[name] = _clip_continuous(df[name], col)
        return out


def _map_discrete(series: pd.Series, col: ColumnRelease) -> pd.Series:
    categories = list(col.categories or [])
    keys = category_keys(series)
    codes = pd.Index(categories, dtype=object).get_indexer(keys) if categories else None
    outside = keys.notna().to_numpy()
    if codes is not None:
        outside &= codes < 0
    if col.public and outside.any():
        value = keys[outside].iloc[0]
        raise DataError(
            f"column {col.name!r} holds {value!r} (and {int(outside.sum()) - 1} more value(s)) "
            f"outside its public categories {categories[:10]}; add them to the schema's "
            "categories, or set public=False to release the categories with DP"
        )
    if isinstance(series.dtype, pd.CategoricalDtype):
        # the dtype's own category list may name unreleased values: replace it too
        return series.cat.set_categories(categories)
    if not outside.any():
        return series.copy()
    if series.dtype == object:
        return series.where(~outside, None)
    return series.where(~outside)


def _clip_continuous(series: pd.Series, col: ColumnRelease) -> pd.Series:
    low, high = col.low, col.high
    assert low is not None and high is not None
    dtype = series.dtype
    if col.kind == DATETIME:
        if not pd.api.types.is_datetime64_any_dtype(dtype):
            series = pd.to_datetime(series, errors="coerce")
        tz = getattr(series.dt, "tz", None)
        lower = pd.Timestamp(math.ceil(low * _NS), unit="ns")
        upper = pd.Timestamp(math.floor(high * _NS), unit="ns")
        if tz is not None:
            lower = lower.tz_localize("UTC").tz_convert(tz)
            upper = upper.tz_localize("UTC").tz_convert(tz)
        return series.clip(lower, max(lower, upper))
    if pd.api.types.is_timedelta64_dtype(dtype):
        lower = pd.Timedelta(math.ceil(low * _NS), unit="ns")
        upper = pd.Timedelta(math.floor(high * _NS), unit="ns")
        return series.clip(lower, max(lower, upper))
    if pd.api.types.is_integer_dtype(dtype):
        info = np.iinfo(str(dtype).lower())
        lo, hi = math.ceil(low), math.floor(high)
        lo, hi = max(lo, int(info.min)), min(hi, int(info.max))
        if lo <= hi:
            return series.clip(lo, hi)
    if pd.api.types.is_float_dtype(dtype):
        return series.clip(low, high)
    return pd.Series(
        np.clip(numeric_values(series), low, high), index=series.index, name=series.name
    )


# ----------------------------------------------------------------- which columns
def columns_needing_release(schema: Any) -> list[str]:
    """Names of the columns with no public domain, in schema order.

    A column needs a release unless its spec says ``public=True`` and declares its
    categories (categorical) or both bounds (numerical, datetime). Booleans never need
    one (their domain is {False, True}); id columns never do (their values are not
    modelled, new ones are minted).
    """
    return [spec.name for spec in schema if not _has_public_domain(spec)]


# ----------------------------------------------------------------- the mechanism
def _check_arguments(
    df: Any, specs: list[Any], epsilon: Any, delta: Any, rng: Any, bins: Any, integer_bins: Any
) -> None:
    if not isinstance(df, pd.DataFrame):
        raise DataError(
            f"expected a pandas DataFrame, got {type(df).__name__}; load files with pandas first"
        )
    if len(df) == 0:
        raise DataError("the frame has no rows; there is nothing to release")
    for label, value in (("epsilon", epsilon), ("delta", delta)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float | np.integer | np.floating)
            or not math.isfinite(float(value))
            or float(value) < 0
        ):
            raise ConfigError(
                f"preprocessing {label}={value!r} must be a finite number >= 0; pass the "
                f"preprocessing budget, e.g. DPConfig(preprocessing_epsilon=...)"
            )
    if float(delta) >= 1:
        raise ConfigError(f"preprocessing delta={delta!r} must be below 1 (e.g. 1e-6)")
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(
            f"rng must be a numpy.random.Generator (numpy.random.default_rng(seed)), "
            f"not {type(rng).__name__}"
        )
    for label, value in (("bins", bins), ("integer_bins", integer_bins)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ConfigError(f"{label}={value!r} must be an integer >= 1")
    names = [spec.name for spec in specs]
    dupes = sorted({str(n) for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"the schema names column(s) {dupes} more than once; keep one each")
    for spec in specs:
        if spec.kind not in KINDS:
            raise ConfigError(
                f"column {spec.name!r}: unknown kind {spec.kind!r}; use one of {', '.join(KINDS)}"
            )
    absent = [n for n in names if n not in df.columns]
    if absent:
        raise DataError(
            f"schema column(s) {absent} are not in the frame; the frame has {list(df.columns)}"
        )


def _refuse_budgetless(specs: list[Any], epsilon: float, delta: float) -> None:
    """ConfigError naming every column that needs a release the budget cannot pay for."""
    need = columns_needing_release(specs)
    if epsilon == 0 and need:
        raise ConfigError(
            f"column(s) {need} have no public domain and the preprocessing epsilon is 0, so "
            "their categories / bounds cannot be released with DP. Declare them in the "
            "schema (schema[col].categories = [...] or .min/.max, with "
            "schema[col].public = True) if they are public knowledge, or give a "
            "preprocessing budget: DPConfig(preprocessing_epsilon=...)"
        )
    discover = [s.name for s in specs if s.kind == CATEGORICAL and not _has_public_domain(s)]
    if delta == 0 and discover:
        raise ConfigError(
            f"categorical column(s) {discover} have no public categories, and discovering "
            "categories from the data needs a delta > 0 (a category seen in one row is "
            "released with probability delta); declare their categories in the schema "
            "with schema[col].public = True, or give a preprocessing delta > 0"
        )


def release_statistics(
    df: pd.DataFrame,
    schema: Any,
    epsilon: float,
    delta: float,
    rng: np.random.Generator,
    bins: int = DEFAULT_BINS,
    integer_bins: int = DEFAULT_INTEGER_BINS,
) -> PreprocessingRelease:
    """Release every column's domain and a noisy histogram, (epsilon, delta)-DP in total.

    ``schema``: any iterable of column specs (a ``synthgen.core.kinds.SchemaLike``);
    each spec's ``public`` flag (default False) says whether its categories / bounds
    are public knowledge. ``rng``: the only source of noise.

    Budget split (basic composition; the sums of the columns' costs never exceed
    ``epsilon`` / ``delta``):

    - epsilon: evenly over every non-id column (each gets a noisy histogram, public
      domain or not). Inside a continuous column whose bounds are not both public,
      ``RANGE_SHARE`` (1/2) of the column's share buys them (``noisy_range`` over
      ``candidate_grid``, with ``RANGE_BETA`` / ``RANGE_FAR_BETA`` / ``RANGE_REACH``;
      for datetimes and durations the grid stops at +-9.2e9 s, what int64 nanoseconds
      hold; when one bound is public the grid is cut at it, and only the other side is
      taken from the range), the histogram the rest. Nulls are one more cell of the same histogram:
      one row falls in exactly one cell, so they cost nothing extra.
    - delta: evenly over the categorical columns whose categories are discovered
      (``thresholded_histogram``); public domains (and booleans) use plain Laplace
      counts and no delta.

    Bounds: integer columns have them floored / ceiled; if the low bound is not below
    the high one, they are widened to the neighbouring candidates.

    ``epsilon == 0`` is allowed only when every column has a public domain: no noise,
    the counts are uniform placeholders (all ones, null cell included) and the release
    costs (0, 0). Otherwise ``ConfigError`` names the columns and what to supply. The
    released categories are exactly the keys that survived the threshold: no value
    that was not released is recorded anywhere.
    """
    specs = list(schema)
    _check_arguments(df, specs, epsilon, delta, rng, bins, integer_bins)
    epsilon, delta = float(epsilon), float(delta)
    _refuse_budgetless(specs, epsilon, delta)
    modelled = [s for s in specs if s.kind != ID]
    discover = {s.name for s in specs if s.kind == CATEGORICAL and not _has_public_domain(s)}
    eps_col = _share(epsilon, len(modelled)) if epsilon > 0 else 0.0
    delta_col = _share(delta, len(discover)) if discover else 0.0
    columns: dict[str, ColumnRelease] = {}
    for spec in specs:
        series = df[spec.name]
        nullable = bool(spec.nullable)
        if not nullable and series.isna().any():
            raise DataError(
                f"column {spec.name!r} has {int(series.isna().sum())} null(s) but its spec "
                "says nullable=False; set schema[col].nullable = True or fill them"
            )
        common = {
            "name": spec.name,
            "kind": spec.kind,
            "dtype": str(spec.dtype),
            "nullable": nullable,
        }
        if spec.kind == ID:
            columns[spec.name] = ColumnRelease(**common, public=True)
        elif spec.kind in (CATEGORICAL, BOOLEAN):
            share_d = delta_col if spec.name in discover else 0.0
            columns[spec.name] = _release_discrete(spec, series, common, eps_col, share_d, rng)
        else:
            columns[spec.name] = _release_continuous(
                spec, series, common, eps_col, rng, bins, integer_bins
            )
    total_eps = sum(c.epsilon for c in columns.values())
    total_delta = sum(c.delta for c in columns.values())
    return PreprocessingRelease(columns, float(total_eps), float(total_delta), len(df))


def _noisy_cells(cells: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """Laplace counts clipped at 0, or all-ones placeholders when nothing may be spent."""
    if epsilon <= 0:
        return np.ones(len(cells))
    return np.clip(laplace_counts(cells, epsilon, rng), 0.0, None)


def _release_discrete(
    spec: Any,
    series: pd.Series,
    common: dict[str, Any],
    epsilon: float,
    delta: float,
    rng: np.random.Generator,
) -> ColumnRelease:
    keys = category_keys(series)
    nulls = float(keys.isna().sum())
    present = keys[keys.notna()]
    if _has_public_domain(spec):
        categories = [False, True] if spec.kind == BOOLEAN else [_plain(c) for c in spec.categories]
        if len(set(categories)) < len(categories):
            raise ConfigError(
                f"column {spec.name!r}: the public categories {categories} repeat a value; "
                "list each category once"
            )
        codes = (
            pd.Index(categories, dtype=object).get_indexer(present)
            if categories
            else np.full(len(present), -1, dtype=np.int64)
        )
        outside = codes < 0
        if outside.any():
            raise DataError(
                f"column {spec.name!r} holds {present[outside].iloc[0]!r}, which is not among "
                f"its public categories {categories[:10]}; add it to the schema's categories, "
                "or set public=False to release the categories with DP"
            )
        counts = np.bincount(codes, minlength=len(categories)).astype(np.float64)
        cells = np.append(counts, nulls) if common["nullable"] else counts
        noisy = _noisy_cells(cells, epsilon, rng)
        values, null_count = (noisy[:-1], noisy[-1]) if common["nullable"] else (noisy, 0.0)
        return ColumnRelease(
            **common,
            public=True,
            categories=categories,
            counts=values,
            null_count=float(null_count),
            epsilon=epsilon,
        )
    # discovered domain: observed keys only, in a fixed order so a seed reproduces it
    observed = present.value_counts(sort=False)
    tally = {_plain(k): int(v) for k, v in zip(observed.index, observed.to_numpy(), strict=True)}
    ordered = _sorted(tally)
    kept = thresholded_histogram({k: tally[k] for k in ordered}, epsilon, delta, rng)
    categories = [k for k in ordered if k in kept]
    null_count = 0.0
    if common["nullable"]:
        # null is a cell known in advance: plain Laplace, in parallel with the keys
        null_count = float(np.clip(laplace_counts(np.array([nulls]), epsilon, rng), 0, None)[0])
    return ColumnRelease(
        **common,
        public=False,
        categories=categories,
        counts=np.array([kept[k] for k in categories], dtype=np.float64),
        null_count=null_count,
        epsilon=epsilon,
        delta=delta,
    )


def _grid_for(spec: Any) -> np.ndarray:
    grid = candidate_grid()
    if spec.kind == DATETIME or _is_duration(spec.dtype):
        grid = grid[np.abs(grid) <= _MAX_TIME_SECONDS]
    return grid


def _step(grid: np.ndarray, value: float, up: bool) -> float:
    """The neighbouring candidate strictly above (``up``) or below ``value``."""
    if up:
        i = int(np.searchsorted(grid, value, side="right"))
        return float(grid[i]) if i < len(grid) else value + max(1.0, abs(value))
    i = int(np.searchsorted(grid, value, side="left")) - 1
    return float(grid[i]) if i >= 0 else value - max(1.0, abs(value))


def _settle_bounds(
    low: float, high: float, free_low: bool, free_high: bool, integer: bool, grid: np.ndarray
) -> tuple[float, float]:
    """Order released bounds, round integer ones outwards, widen an empty range.

    Only released bounds move (public ones are the user's); all of it is
    post-processing of the released values and the public grid.
    """
    if free_low and free_high and low > high:
        low, high = high, low

    def rounded(lo: float, hi: float) -> tuple[float, float]:
        if integer:
            lo = float(math.floor(lo)) if free_low else lo
            hi = float(math.ceil(hi)) if free_high else hi
        return lo, hi

    low, high = rounded(low, high)
    if low >= high and (free_low or free_high):
        if free_low and free_high:
            low, high = _step(grid, low, up=False), _step(grid, high, up=True)
        elif free_high:
            high = _step(grid, low, up=True)
        else:
            low = _step(grid, high, up=False)
        low, high = rounded(low, high)
    return low, high


def _edges(low: float, high: float, integer: bool, bins: int, integer_bins: int) -> np.ndarray:
    """Bin edges over ``[low, high]``; a repeated edge is a zero-width bin, an *atom*.

    Equal-width bins get atoms at both bounds and at 0 when it lies inside: real columns
    pile up exactly there (92% of Adult's capital-gain is 0; clipping piles the tail on
    a bound), and a bin drawn uniformly would smear such a pile into a ramp. The atoms
    are placed by public rules and the released bounds, so they cost nothing.
    """
    if integer:
        lo, hi = math.ceil(low), math.floor(high)
        if lo <= hi and hi - lo + 1 <= integer_bins:
            return np.arange(lo, hi + 2, dtype=np.float64) - 0.5
    if low == high:
        return np.array([low, high], dtype=np.float64)
    edges = np.linspace(low, high, bins + 1)
    atoms = [low, high] + ([0.0] if low < 0.0 < high else [])
    return np.sort(np.concatenate([edges, atoms]))


def _bin_counts(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Rows per bin; a value equal to an atom counts in the atom (each row in one bin)."""
    n_bins = len(edges) - 1
    index = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, n_bins - 1)
    for k in np.flatnonzero(np.diff(edges) == 0):
        index[x == edges[k]] = k
    return np.bincount(index, minlength=n_bins).astype(np.float64)


def _release_continuous(
    spec: Any,
    series: pd.Series,
    common: dict[str, Any],
    epsilon: float,
    rng: np.random.Generator,
    bins: int,
    integer_bins: int,
) -> ColumnRelease:
    x = _as_seconds(series, spec.kind)
    missing = np.isnan(x) & series.isna().to_numpy()
    garbled = np.isnan(x) & ~missing
    if garbled.any():
        raise DataError(
            f"column {spec.name!r} is {spec.kind} but holds {series[garbled].iloc[0]!r}; "
            "cast or clean it"
        )
    present = x[~missing]
    if np.isinf(present).any():
        raise DataError(
            f"column {spec.name!r} holds infinite values; replace them with NaN "
            "(df[col].replace([np.inf, -np.inf], np.nan)) or drop those rows"
        )
    integer = bool(getattr(spec, "integer", False)) and spec.kind == NUMERICAL
    low, high = _public_bound(spec, "min"), _public_bound(spec, "max")
    if low is not None and high is not None and low > high:
        raise ConfigError(
            f"column {spec.name!r}: public min={spec.min!r} is above max={spec.max!r}; swap them"
        )
    free_low, free_high = low is None, high is None
    spent: list[float] = []
    if free_low or free_high:
        grid = _grid_for(spec)
        candidates = grid
        # a public bound is a public candidate, and nothing beyond it is one
        if not free_low:
            candidates = np.union1d(candidates[candidates > low], [low])
        if not free_high:
            candidates = np.union1d(candidates[candidates < high], [high])
        eps_range = epsilon * RANGE_SHARE
        range_low, range_high = noisy_range(
            present, eps_range, rng, candidates, RANGE_BETA, RANGE_FAR_BETA, RANGE_REACH
        )
        spent.append(eps_range)
        low = range_low if free_low else low
        high = range_high if free_high else high
        low, high = _settle_bounds(low, high, free_low, free_high, integer, grid)
    assert low is not None and high is not None
    eps_hist = _rest(epsilon, spent) if epsilon > 0 else 0.0
    edges = _edges(low, high, integer, bins, integer_bins)
    counts = _bin_counts(np.clip(present, low, high), edges)
    cells = np.append(counts, float(missing.sum())) if common["nullable"] else counts
    noisy = _noisy_cells(cells, eps_hist, rng)
    values, null_count = (noisy[:-1], noisy[-1]) if common["nullable"] else (noisy, 0.0)
    return ColumnRelease(
        **common,
        public=not (free_low or free_high),
        low=float(low),
        high=float(high),
        integer=integer,
        edges=edges,
        counts=values,
        null_count=float(null_count),
        epsilon=epsilon,
    )

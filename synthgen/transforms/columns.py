"""Per-column encoders: each turns one column into a block of float32 features and back.

Every encoder describes its block as a list of ``Span``s so that backends can apply
the right activation and loss to each part without knowing about column kinds:
``alpha`` spans are continuous scalars, every other span is a one-hot group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
import pandas as pd

from synthgen.core.values import category_codes, datetime_to_float
from synthgen.errors import DataError
from synthgen.schema import ColumnSpec, is_timedelta_dtype, numeric_values
from synthgen.transforms.numerical import (
    ModeNormalizerState,
    decode_modes,
    encode_modes,
    fit_mode_normalizer,
)

_NS_PER_SECOND = 1_000_000_000
#: Datetime units tried, coarsest first, when guessing the resolution of a column.
_DATETIME_UNITS_NS = (
    86_400 * _NS_PER_SECOND,
    3600 * _NS_PER_SECOND,
    60 * _NS_PER_SECOND,
    _NS_PER_SECOND,
    1_000_000,
    1_000,
    1,
)


@dataclass(frozen=True)
class Span:
    """A slice of the encoded row that belongs to one column.

    ``role`` is ``"alpha"`` (a continuous value), ``"mode"`` (the mixture component),
    ``"category"`` (the category one-hot, null included as the last slot when the
    column is nullable) or ``"null"`` (2-way present / missing indicator of a number).
    """

    column: str
    role: str
    start: int
    width: int

    @property
    def continuous(self) -> bool:
        return self.role == "alpha"

    @property
    def stop(self) -> int:
        return self.start + self.width


def _one_hot(codes: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((len(codes), width), dtype=np.float32)
    out[np.arange(len(codes)), codes] = 1.0
    return out


class ColumnEncoder(Protocol):
    """What ``TableTransformer`` needs from a per-column encoder."""

    #: True when ``fit`` is the slow mixture fit, which the transformer runs in threads as
    #: ``fit(series, max_components, max_fit_rows, seed)``. Otherwise the transformer calls
    #: ``fit(series, max_fit_rows=..., seed=...)`` and the encoder ignores unused keywords.
    fits_mixture: ClassVar[bool]
    spec: ColumnSpec

    def fit(self, series: pd.Series, *args: Any, **kwargs: Any) -> None: ...

    def widths(self) -> list[tuple[str, int]]: ...

    def encode(self, series: pd.Series, rng: np.random.Generator) -> np.ndarray: ...

    def decode(self, block: np.ndarray) -> pd.Series: ...

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]: ...

    def load_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None: ...


#: Encoder classes by class name: saved transforms name each column's encoder, and
#: ``TableTransformer.from_state_dict`` rebuilds it from here.
ENCODER_REGISTRY: dict[str, type] = {}

_E = TypeVar("_E", bound=type)


def register_encoder(cls: _E) -> _E:
    """Class decorator: make an encoder loadable from a saved transform by its name."""
    ENCODER_REGISTRY[cls.__name__] = cls
    return cls


@register_encoder
class NumericalEncoder:
    """Mode-specific normalisation plus a null indicator; also serves datetimes."""

    fits_mixture: ClassVar[bool] = True

    def __init__(self, spec: ColumnSpec) -> None:
        self.spec = spec
        self.state: ModeNormalizerState | None = None
        self.fill_value = 0.0
        self.resolution_ns = 1  # datetimes: round decoded values to the observed unit

    # -- conversion between the column's own values and float64 numbers
    def to_numbers(self, series: pd.Series) -> np.ndarray:
        if self.spec.kind == "datetime":
            as_dt = pd.to_datetime(series, errors="coerce")
            if getattr(as_dt.dt, "tz", None) is not None:
                as_dt = as_dt.dt.tz_convert("UTC").dt.tz_localize(None)
            return datetime_to_float(as_dt, unit="s")
        # durations (timedelta64 columns) become seconds, as their schema bounds are
        return numeric_values(series).to_numpy(dtype=np.float64, na_value=np.nan)

    def fit(self, series: pd.Series, max_components: int, max_fit_rows: int, seed: int) -> None:
        present = self.fit_present(series)
        self.state = fit_mode_normalizer(present, max_components, max_fit_rows, seed)

    def fit_present(self, series: pd.Series) -> np.ndarray:
        """Learn what every numerical encoding shares (datetime unit, fill value for
        nulls) and return the present values as float64 (a single 0 if none are)."""
        numbers = self.to_numbers(series)
        present = numbers[~np.isnan(numbers)]
        if len(present) == 0:
            present = np.zeros(1)
        self.fit_resolution(present)
        self.fill_value = float(np.median(present))
        return present

    def fit_resolution(self, present: np.ndarray) -> None:
        """Datetimes: remember the coarsest unit every value is a multiple of.

        Decoded datetimes are rounded to it, so a date column stays a date column.
        ``present`` holds the non-null values in seconds; durations (timedelta columns)
        are treated alike; other kinds are left at 1 ns.
        """
        if self.spec.kind != "datetime" and not is_timedelta_dtype(self.spec.dtype):
            return
        ns = (present * _NS_PER_SECOND).astype(np.int64)
        for unit in _DATETIME_UNITS_NS:
            if np.all(ns % unit == 0):
                self.resolution_ns = unit
                break

    def missing_mask(self, numbers: np.ndarray) -> np.ndarray:
        """Null positions of ``numbers``; refuses nulls in a column fitted without them."""
        missing = np.isnan(numbers)
        if missing.any() and not self.spec.nullable:
            raise DataError(
                f"column {self.spec.name!r} has {int(missing.sum())} null(s) but was fitted "
                "without nulls; set its schema nullable=True and fit again"
            )
        return missing

    def widths(self) -> list[tuple[str, int]]:
        assert self.state is not None
        return [("alpha", 1), ("mode", self.state.n_modes), *self._null_widths()]

    def _null_widths(self) -> list[tuple[str, int]]:
        """The present / missing one-hot that follows the value when nulls are allowed."""
        return [("null", 2)] if self.spec.nullable else []

    def _null_blocks(self, missing: np.ndarray) -> list[np.ndarray]:
        return [_one_hot(missing.astype(np.int64), 2)] if self.spec.nullable else []

    def encode(self, series: pd.Series, rng: np.random.Generator) -> np.ndarray:
        assert self.state is not None
        numbers = self.to_numbers(series)
        missing = self.missing_mask(numbers)
        filled = np.where(missing, self.fill_value, numbers)
        alpha, modes = encode_modes(self.state, filled, rng)
        blocks = [alpha.astype(np.float32)[:, None], _one_hot(modes, self.state.n_modes)]
        return np.concatenate([*blocks, *self._null_blocks(missing)], axis=1)

    def decode(self, block: np.ndarray) -> pd.Series:
        assert self.state is not None
        k = self.state.n_modes
        modes = block[:, 1 : 1 + k].argmax(axis=1)
        # a diverged generator's NaN / inf must not become a null (or an overflow)
        alpha = np.nan_to_num(block[:, 0].astype(np.float64), nan=0.0, posinf=1.0, neginf=-1.0)
        values = decode_modes(self.state, alpha, modes)
        if self.spec.nullable:
            values[block[:, 1 + k + 1] > block[:, 1 + k]] = np.nan
        return self.restore(values)

    def restore(self, values: np.ndarray) -> pd.Series:
        """Numbers (seconds for datetimes and durations, NaN for null) -> the column's values.

        Rounds integers / fixed decimals / the datetime resolution, *then* clips to the
        schema bounds (rounding after clipping put values just outside them), and
        restores the training dtype.
        """
        spec = self.spec
        values = np.asarray(values, dtype=np.float64).copy()
        missing = np.isnan(values)
        if spec.kind == "datetime":
            return self._restore_datetime(values, missing)
        if is_timedelta_dtype(spec.dtype):
            return self._restore_timedelta(values, missing)
        if spec.integer or spec.decimals == 0:
            values = np.round(values)
        elif spec.decimals is not None:
            values = np.round(values, spec.decimals)
        if spec.min is not None or spec.max is not None:
            values = np.clip(values, spec.min, spec.max)
        return _restore_dtype(pd.Series(values, name=spec.name), spec.dtype)

    def _grid_ns(self, values: np.ndarray, low: int | None, high: int | None) -> np.ndarray:
        """Seconds -> int64 nanoseconds on the column's resolution, within [low, high].

        Works in integers after a first clip in floats, so that neither a wild generated
        value (int64 overflow) nor float rounding (256 ns steps near 2020) leaves the
        bounds; the bounds are moved inwards onto the resolution grid.
        """
        unit = max(1, int(self.resolution_ns))
        limit = float(np.iinfo(np.int64).max) / _NS_PER_SECOND / 2
        seconds = np.clip(np.nan_to_num(values), -limit, limit)
        if low is not None and high is not None:
            seconds = np.clip(seconds, low / _NS_PER_SECOND, high / _NS_PER_SECOND)
        ns = np.round(seconds * (_NS_PER_SECOND / unit)).astype(np.int64) * unit
        if low is not None:
            ns = np.maximum(ns, -(-low // unit) * unit if low % unit else low)
        if high is not None:
            ns = np.minimum(ns, (high // unit) * unit)
        if low is not None and high is not None and low > (high // unit) * unit:
            ns[:] = low  # no grid point inside the bounds: keep the bound itself
        return ns

    def _restore_datetime(self, values: np.ndarray, missing: np.ndarray) -> pd.Series:
        spec = self.spec
        low = _timestamp_ns(spec.min)
        high = _timestamp_ns(spec.max)
        ns = self._grid_ns(values, low, high)
        out = pd.Series(pd.to_datetime(ns, unit="ns"), name=spec.name)
        out[missing] = pd.NaT
        if "," in spec.dtype:
            tz = spec.dtype.split(",", 1)[1].rstrip("]").strip()
            out = out.dt.tz_localize("UTC").dt.tz_convert(tz)
        return _restore_dtype(out, spec.dtype)

    def _restore_timedelta(self, values: np.ndarray, missing: np.ndarray) -> pd.Series:
        spec = self.spec
        low = None if spec.min is None else int(round(float(spec.min) * _NS_PER_SECOND))
        high = None if spec.max is None else int(round(float(spec.max) * _NS_PER_SECOND))
        ns = self._grid_ns(values, low, high)
        out = pd.Series(pd.to_timedelta(ns, unit="ns"), name=spec.name)
        out[missing] = pd.NaT
        return _restore_dtype(out, spec.dtype)

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        assert self.state is not None
        meta = {"fill_value": self.fill_value, "resolution_ns": self.resolution_ns}
        arrays = {
            "means": self.state.means,
            "stds": self.state.stds,
            "weights": self.state.weights,
            "points": self.state.points.astype(np.float64),
        }
        return meta, arrays

    def load_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.fill_value = float(meta["fill_value"])
        self.resolution_ns = int(meta["resolution_ns"])
        self.state = ModeNormalizerState(
            np.asarray(arrays["means"], dtype=np.float64),
            np.asarray(arrays["stds"], dtype=np.float64),
            np.asarray(arrays["weights"], dtype=np.float64),
            # files written before point masses existed have none
            np.asarray(arrays.get("points", np.zeros(0)), dtype=np.float64) > 0.5,
        )


def _timestamp_ns(bound: Any) -> int | None:
    """A datetime bound of the schema (ISO text) as int64 UTC nanoseconds, or None."""
    if not bound:
        return None
    stamp = pd.Timestamp(bound)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return int(stamp.as_unit("ns").value)


def _restore_dtype(series: pd.Series, dtype: str) -> pd.Series:
    """Cast decoded values back to the dtype the column had in the training frame."""
    try:
        if dtype.startswith(("int", "uint")) and series.isna().any():
            return series.astype(dtype.replace("int", "Int").replace("uInt", "UInt"))
        return series.astype(dtype)
    except (TypeError, ValueError):
        return series


@register_encoder
class CategoricalEncoder:
    """One-hot over the known categories; null is one more category when allowed."""

    fits_mixture: ClassVar[bool] = False

    def __init__(self, spec: ColumnSpec) -> None:
        self.spec = spec
        self.categories: list[Any] = list(spec.categories or [])

    def fit(self, series: pd.Series, **_: Any) -> None:
        if self.spec.categories is None:
            values = pd.unique(series.dropna())
            self.categories = sorted(values.tolist(), key=lambda v: (str(type(v)), v))
        elif self.spec.dtype == "category":
            # a category dtype declares categories that may never occur: they keep the
            # decoded dtype equal to the training one, but get no one-hot slot to learn
            seen = set(pd.unique(series.dropna()).tolist())
            self.categories = [c for c in self.spec.categories if c in seen]

    @property
    def has_null_slot(self) -> bool:
        return self.spec.nullable or not self.categories

    def widths(self) -> list[tuple[str, int]]:
        return [("category", len(self.categories) + int(self.has_null_slot))]

    def codes(self, series: pd.Series) -> np.ndarray:
        """Category index of each value (nulls get the null slot); unseen values raise."""
        codes = category_codes(series, self.categories)
        missing = series.isna().to_numpy()
        unseen = (codes < 0) & ~missing
        if unseen.any():
            bad = series[unseen].iloc[0]
            shown = self.categories[:10]
            raise DataError(
                f"column {self.spec.name!r}: value {bad!r} is not one of the categories seen in "
                f"training ({shown}{' ...' if len(self.categories) > 10 else ''}); map it to a "
                "known category or refit with it included"
            )
        if missing.any():
            if not self.has_null_slot:
                raise DataError(
                    f"column {self.spec.name!r} has nulls but was fitted without nulls; "
                    "set its schema nullable=True and fit again"
                )
            codes[missing] = len(self.categories)
        return codes

    def encode(self, series: pd.Series, rng: np.random.Generator) -> np.ndarray:
        return _one_hot(self.codes(series), self.widths()[0][1])

    def decode(self, block: np.ndarray) -> pd.Series:
        codes = block.argmax(axis=1)
        lookup = np.array([*self.categories, np.nan], dtype=object)
        values = lookup[np.where(codes >= len(self.categories), len(self.categories), codes)]
        dtype = self.spec.dtype
        if dtype == "category":
            declared = self.categories if self.spec.categories is None else self.spec.categories
            return pd.Series(pd.Categorical(values, categories=declared), name=self.spec.name)
        series = pd.Series(values, name=self.spec.name)
        if dtype != "object":
            series = _restore_dtype(series, dtype)
        return series

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {
            "categories": [v.item() if isinstance(v, np.generic) else v for v in self.categories]
        }, {}

    def load_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.categories = list(meta["categories"])


@register_encoder
class DiscreteNumericEncoder(CategoricalEncoder):
    """A number with few distinct values (a 1-16 education level, a 0-8 count), one-hot.

    A mixture of Gaussians smears such a column over neighbouring values and blurs its
    exact links to other columns (education-num is a function of education); one-hot
    over the observed values keeps both exact.
    """

    def __init__(self, spec: ColumnSpec) -> None:
        super().__init__(spec)
        self.numbers = NumericalEncoder(spec)
        self.categories = []

    def fit(self, series: pd.Series, **_: Any) -> None:
        numbers = self.numbers.to_numbers(series)
        self.categories = sorted(float(v) for v in np.unique(numbers[~np.isnan(numbers)]))

    @property
    def has_null_slot(self) -> bool:
        return self.spec.nullable or not self.categories

    def codes(self, series: pd.Series) -> np.ndarray:
        numbers = pd.Series(self.numbers.to_numbers(series), index=series.index)
        return super().codes(numbers)

    def decode(self, block: np.ndarray) -> pd.Series:
        codes = block.argmax(axis=1)
        lookup = np.array([*self.categories, np.nan], dtype=np.float64)
        return self.numbers.restore(lookup[np.minimum(codes, len(self.categories))])

    def load_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.categories = [float(v) for v in meta["categories"]]


@register_encoder
class IdEncoder:
    """Identifiers carry no distribution: they are not encoded and are minted anew."""

    fits_mixture: ClassVar[bool] = False

    def __init__(self, spec: ColumnSpec) -> None:
        self.spec = spec

    def fit(self, series: pd.Series, **_: Any) -> None:
        return None

    def widths(self) -> list[tuple[str, int]]:
        return []

    def encode(self, series: pd.Series, rng: np.random.Generator) -> np.ndarray:
        return np.zeros((len(series), 0), dtype=np.float32)

    def decode(self, block: np.ndarray) -> pd.Series:
        n = len(block)
        if self.spec.dtype.lower().startswith(("int", "uint")):
            return pd.Series(np.arange(n, dtype=np.int64), name=self.spec.name).astype(
                self.spec.dtype
            )
        width = max(6, len(str(n)))
        minted = pd.Series([f"sg_{i:0{width}d}" for i in range(n)], name=self.spec.name)
        minted = minted.astype(object)
        return minted if self.spec.dtype == "object" else _restore_dtype(minted, self.spec.dtype)

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {}

    def load_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        return None


#: Default encoder class of each column kind.
ENCODERS: dict[str, type] = {
    "numerical": NumericalEncoder,
    "datetime": NumericalEncoder,
    "categorical": CategoricalEncoder,
    "boolean": CategoricalEncoder,
    "id": IdEncoder,
}

"""Quantile (Gaussianising) transform of numerical columns, for the diffusion backend.

TabDDPM (Kotelnikov et al. 2023) maps every numerical column through its empirical CDF
and the standard-normal quantile function before diffusion, so the Gaussian forward
process starts from data that is already marginally N(0, 1), whatever the column's
skew, heavy tail or point masses.

The functions here reproduce scikit-learn's
``QuantileTransformer(output_distribution="normal", subsample=None)`` ``transform`` and
``inverse_transform`` on one column, written against its documented behaviour rather
than by wrapping it: they are vectorised over plain float64 arrays and stateless (the
fitted state is one array of quantiles), so a fitted column saves into the model file's
tensors and JSON header without pickling an estimator, and reloads across versions.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from synthgen.errors import ConfigError
from synthgen.schema import ColumnSpec
from synthgen.transforms.columns import (
    ENCODERS,
    ColumnEncoder,
    NumericalEncoder,
    register_encoder,
)
from synthgen.transforms.table import TableTransformer

#: scikit-learn's ``BOUNDS_THRESHOLD``: values this close to an end quantile map to it.
BOUNDS_THRESHOLD = 1e-7
#: The normal scores of the two ends, clipped as scikit-learn does so that they stay
#: finite (about +-5.2) and map back to the end quantiles.
CLIP_MIN = float(stats.norm.ppf(BOUNDS_THRESHOLD - np.spacing(1)))
CLIP_MAX = float(stats.norm.ppf(1 - (BOUNDS_THRESHOLD - np.spacing(1))))


def _float32_outwards(value: float) -> np.float32:
    """The float32 nearest ``value`` on its far side from zero."""
    rounded = np.float32(value)
    if abs(float(rounded)) < abs(value):
        rounded = np.nextafter(rounded, np.float32(np.copysign(np.inf, value)))
    return rounded


#: The end scores as stored in the float32 matrix. Rounded to nearest they would fall
#: just inside the clip range, and decode short of the end quantiles (by 1e-4 of the
#: last quantile gap, which is wide in a heavy tail); rounded outwards they decode exactly.
CLIP_MIN_F32 = _float32_outwards(CLIP_MIN)
CLIP_MAX_F32 = _float32_outwards(CLIP_MAX)


def _references(quantiles: np.ndarray) -> np.ndarray:
    """Cumulative probabilities the quantiles were taken at (evenly spaced, ends included)."""
    return np.linspace(0.0, 1.0, len(quantiles))


def fit_quantiles(
    values: np.ndarray, n_quantiles: int = 1000, max_fit_rows: int | None = None, seed: int = 0
) -> np.ndarray:
    """Quantiles of one column at ``np.linspace(0, 1, n)``, ``n = min(n_quantiles, rows)``.

    NaNs are ignored. At most ``max_fit_rows`` values (``None``: all) drawn with ``seed``
    are used: a few thousand already pin down a thousand quantiles. When subsampling,
    the end quantiles are set to the full column's minimum and maximum so that no real
    value is clipped; without subsampling the result equals scikit-learn's
    ``quantiles_`` (up to a running maximum that keeps them non-decreasing against
    rounding, which ``np.interp`` requires).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    if len(values) == 0:
        raise ValueError("cannot fit quantiles to a column without values")
    sample = values
    if max_fit_rows is not None and len(values) > max_fit_rows:
        rng = np.random.default_rng(seed)
        sample = rng.choice(values, size=max(1, max_fit_rows), replace=False)
    n = max(1, min(int(n_quantiles), len(sample)))
    quantiles = np.maximum.accumulate(np.percentile(sample, np.linspace(0, 1, n) * 100))
    if sample is not values:
        quantiles[0] = min(quantiles[0], values.min())
        quantiles[-1] = max(quantiles[-1], values.max())
    return quantiles


def to_normal(values: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Map values to standard-normal scores through the fitted quantiles.

    The empirical CDF is interpolated in the increasing and the decreasing direction and
    averaged, so a value repeated over several quantiles (a point mass) maps to the
    middle of its probability range rather than to one end of it. Values at or beyond
    the end quantiles map to ``CLIP_MIN`` / ``CLIP_MAX``; NaN stays NaN.
    """
    x = np.asarray(values, dtype=np.float64)
    shape = x.shape
    x = x.ravel()
    q = np.asarray(quantiles, dtype=np.float64)
    refs = _references(q)
    with np.errstate(invalid="ignore"):
        low = x - BOUNDS_THRESHOLD < q[0]
        high = x + BOUNDS_THRESHOLD > q[-1]
    finite = ~np.isnan(x)
    u = np.full_like(x, np.nan)
    xf = x[finite]
    u[finite] = 0.5 * (np.interp(xf, q, refs) - np.interp(-xf, -q[::-1], -refs[::-1]))
    u[high] = 1.0
    u[low] = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.clip(stats.norm.ppf(u), CLIP_MIN, CLIP_MAX)
    return z.reshape(shape)


def from_normal(z: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Invert ``to_normal``: normal CDF, then the quantile function interpolated linearly.

    Any real score is valid (generated ones need not be in range): scores beyond the
    clipped ends map to the end quantiles, so outputs stay within the fitted range.
    """
    z = np.asarray(z, dtype=np.float64)
    shape = z.shape
    u = stats.norm.cdf(z.ravel())
    q = np.asarray(quantiles, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        low = u - BOUNDS_THRESHOLD < 0
        high = u + BOUNDS_THRESHOLD > 1
    finite = ~np.isnan(u)
    x = np.full_like(u, np.nan)
    x[finite] = np.interp(u[finite], _references(q), q)
    x[high] = q[-1]
    x[low] = q[0]
    return x.reshape(shape)


@register_encoder
class QuantileEncoder(NumericalEncoder):
    """A numerical or datetime column as one standard-normal score, plus a null one-hot.

    Spans: ``("alpha", 1)`` and, when the column is nullable, ``("null", 2)``. Nulls are
    filled with the median before the transform (their value is carried by the null
    flag). Conversion to numbers and back (datetimes, bounds, integer rounding, dtype)
    is ``NumericalEncoder``'s.
    """

    fits_mixture: ClassVar[bool] = False

    def __init__(self, spec: ColumnSpec, n_quantiles: int = 1000) -> None:
        super().__init__(spec)
        self.n_quantiles = n_quantiles
        self.quantiles: np.ndarray | None = None

    def fit(
        self, series: pd.Series, max_fit_rows: int | None = None, seed: int = 0, **_: Any
    ) -> None:
        present = self.fit_present(series)
        self.quantiles = fit_quantiles(present, self.n_quantiles, max_fit_rows, seed)

    @property
    def constant(self) -> bool:
        """One value only: every score decodes to it, so it is encoded as 0, not as -5.2."""
        assert self.quantiles is not None
        return bool(self.quantiles[0] == self.quantiles[-1])

    def widths(self) -> list[tuple[str, int]]:
        return [("alpha", 1), *self._null_widths()]

    def encode(self, series: pd.Series, rng: np.random.Generator) -> np.ndarray:
        assert self.quantiles is not None
        numbers = self.to_numbers(series)
        missing = self.missing_mask(numbers)
        filled = np.where(missing, self.fill_value, numbers)
        z = np.zeros(len(filled)) if self.constant else to_normal(filled, self.quantiles)
        z32 = z.astype(np.float32)
        z32[z >= CLIP_MAX] = CLIP_MAX_F32
        z32[z <= CLIP_MIN] = CLIP_MIN_F32
        return np.concatenate([z32[:, None], *self._null_blocks(missing)], axis=1)

    def decode(self, block: np.ndarray) -> pd.Series:
        assert self.quantiles is not None
        # a diverged generator's NaN must not become a null: it decodes to the median score
        values = from_normal(np.nan_to_num(block[:, 0].astype(np.float64)), self.quantiles)
        if self.spec.nullable:
            values[block[:, 2] > block[:, 1]] = np.nan
        return self.restore(values)

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        assert self.quantiles is not None
        meta = {"fill_value": self.fill_value, "resolution_ns": self.resolution_ns}
        return meta, {"quantiles": self.quantiles}

    def load_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.fill_value = float(meta["fill_value"])
        self.resolution_ns = int(meta["resolution_ns"])
        self.quantiles = np.asarray(arrays["quantiles"], dtype=np.float64)


class QuantileTableTransformer(TableTransformer):
    """``TableTransformer`` whose numerical and datetime columns are quantile-normalised.

    Each such column becomes one ``alpha`` span holding an N(0, 1) score (plus a
    ``null`` span when nullable), the input TabDDPM's Gaussian diffusion expects;
    few-valued numbers stay one-hot (``discrete_max_values``), and categorical, boolean
    and id columns are encoded as in ``TableTransformer``.

    Parameters are ``TableTransformer``'s, plus ``n_quantiles`` (quantiles kept per
    column, capped by its rows). ``max_fit_rows`` caps the rows of each quantile fit: a
    sort, cheap next to a mixture fit, hence the higher default (TabDDPM fits on all).
    ``max_components`` and ``n_jobs`` are accepted for a common vocabulary but unused,
    as there are no mixture fits.
    """

    kind_encoders: ClassVar[dict[str, type]] = {
        **ENCODERS,
        "numerical": QuantileEncoder,
        "datetime": QuantileEncoder,
    }

    def __init__(
        self,
        max_components: int = 10,
        max_fit_rows: int = 1_000_000,
        discrete_max_values: int = 32,
        max_categories: int = 1000,
        n_jobs: int = 2,
        seed: int = 0,
        n_quantiles: int = 1000,
    ) -> None:
        if n_quantiles < 2:
            raise ConfigError(f"n_quantiles must be at least 2, got {n_quantiles}")
        super().__init__(
            max_components=max_components,
            max_fit_rows=max_fit_rows,
            discrete_max_values=discrete_max_values,
            max_categories=max_categories,
            n_jobs=n_jobs,
            seed=seed,
        )
        self.n_quantiles = n_quantiles

    def _make_encoder(self, encoder_class: type, spec: ColumnSpec) -> ColumnEncoder:
        if issubclass(encoder_class, QuantileEncoder):
            return encoder_class(spec, n_quantiles=self.n_quantiles)
        return super()._make_encoder(encoder_class, spec)

    def _params(self) -> dict[str, Any]:
        return {**super()._params(), "n_quantiles": self.n_quantiles}

"""Mode-specific normalisation of one numerical column (CTGAN paper, Xu et al. 2019).

A column with several modes (an age distribution, an income that is mostly zero) is
badly served by min-max or z-scaling. Instead a variational Gaussian mixture is fitted
to the column; each value is represented by a one-hot of the mixture component it is
drawn from (sampled from the posterior, so the representation stays stochastic) and a
scalar ``alpha = (x - mu_k) / (4 sigma_k)`` within that component. Decoding is the
exact inverse, so real data round-trips within float precision.

Point masses: a single value that holds a large share of the rows (0 in Adult's
capital-gain, 92% of rows; 40 in hours-per-week, 47%) gets a mode of its own that
decodes to exactly that value, and the mixture is fitted to the other values. Why: as
one Gaussian component among the rest, the spike at 0 soaked up the few small values
next to it (a standard deviation of ~100 for capital-gain), so a generator had to hit
``alpha`` to within 0.001 to produce an exact 0; a GAN does not, and synthetic rows
came out as 4, 17, 22 ... where the real column has only zeros.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture

#: Components whose mixture weight falls below this are dropped as unused.
MIN_COMPONENT_WEIGHT = 0.005
#: Width of one component expressed in standard deviations (alpha stays in about [-1, 1]).
ALPHA_SCALE = 4.0
#: A value repeated in at least this share of the rows becomes an exact point-mass mode.
POINT_MASS_SHARE = 0.05
#: Spreads outside this range are standardised before the mixture fit (see _fit_mixture).
STANDARDISE_OUTSIDE = (1e-2, 1e100)


@dataclass
class ModeNormalizerState:
    """Learned parameters of one column: the retained mixture components.

    ``points`` flags point-mass modes: they decode to their ``mean`` exactly and take
    exactly the values equal to it (``alpha`` is 0 there and ignored when decoding).
    """

    means: np.ndarray
    stds: np.ndarray
    weights: np.ndarray
    points: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __post_init__(self) -> None:
        if len(self.points) != len(self.means):  # no point masses (older model files)
            self.points = np.zeros(len(self.means), dtype=bool)
        self.points = np.asarray(self.points, dtype=bool)

    @property
    def n_modes(self) -> int:
        return int(len(self.means))


def fit_mode_normalizer(
    values: np.ndarray,
    max_components: int = 10,
    max_fit_rows: int = 5000,
    seed: int = 0,
) -> ModeNormalizerState:
    """Fit the variational Gaussian mixture of one column.

    The mixture is fitted on at most ``max_fit_rows`` values: the modes of a column are
    stable well before that, and the fit is the dominant preprocessing cost.
    """
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if len(values) > max_fit_rows:
        values = rng.choice(values, size=max_fit_rows, replace=False)
    unique, counts = np.unique(values, return_counts=True)
    floor = _std_floor(values)
    if len(unique) <= 1:
        mean = float(unique[0]) if len(unique) else 0.0
        return ModeNormalizerState(np.array([mean]), np.array([max(floor, 1e-6)]), np.array([1.0]))
    share = counts / len(values)
    spikes = share >= POINT_MASS_SHARE
    rest = values[~np.isin(values, unique[spikes])] if spikes.any() else values
    means_list, stds_list, weights_list, points_list = [], [], [], []
    if len(rest):
        mixture = _fit_mixture(rest, max_components, seed, floor)
        rest_share = len(rest) / len(values)
        means_list.append(mixture.means)
        stds_list.append(mixture.stds)
        weights_list.append(mixture.weights * rest_share)
        points_list.append(np.zeros(mixture.n_modes, dtype=bool))
    if spikes.any():
        means_list.append(unique[spikes].astype(np.float64))
        stds_list.append(np.full(int(spikes.sum()), max(floor, 1e-6)))
        weights_list.append(share[spikes])
        points_list.append(np.ones(int(spikes.sum()), dtype=bool))
    means = np.concatenate(means_list)
    order = np.argsort(means, kind="stable")
    weights = np.concatenate(weights_list)[order]
    return ModeNormalizerState(
        means[order],
        np.concatenate(stds_list)[order],
        weights / weights.sum(),
        np.concatenate(points_list)[order],
    )


def _std_floor(values: np.ndarray) -> float:
    """The smallest standard deviation a mode may have: a thousandth of the column's spread.

    Relative to the column's own scale, so that a column of values around 1e-10 is not
    given modes a million times wider than itself (an absolute floor of 1e-6 did that,
    and every generated value landed on a bound); 1e-300 guards a constant column.
    """
    if not len(values):
        return 1e-6
    spread = float(np.std(values))
    if not np.isfinite(spread):  # magnitudes near the float64 limit: squares overflow
        spread = float(np.std(values / np.abs(values).max())) * float(np.abs(values).max())
    if spread > 0:
        return 1e-3 * spread
    return max(1e-3 * float(np.abs(values).max()), 1e-300)


def _standardiser(values: np.ndarray) -> tuple[float, float]:
    """``(center, scale)`` to fit the mixture on; ``(0, 1)`` for ordinary scales."""
    low, high = STANDARDISE_OUTSIDE
    with np.errstate(over="ignore", invalid="ignore"):
        center = float(np.mean(values))
        scale = float(np.std(values - center))
    if not np.isfinite(center) or not np.isfinite(scale):  # near the float64 limit
        return 0.0, float(np.abs(values).max())
    if scale > 0 and (scale < low or scale > high):
        return center, scale
    return 0.0, 1.0


def _fit_mixture(
    values: np.ndarray, max_components: int, seed: int, floor: float
) -> ModeNormalizerState:
    """The variational Gaussian mixture of ``values`` (no point masses among them).

    Columns of extreme scale are fitted standardised and scaled back: scikit-learn adds
    ``reg_covar`` (1e-6) to every variance, which swamps a column whose spread is 1e-10,
    and squares overflow near 1e154. Columns between (``STANDARDISE_OUTSIDE``) are fitted
    as they are, which keeps the fits of existing data sets (Adult ...) unchanged: the
    mixture priors are not exactly scale-free.
    """
    unique = np.unique(values)
    if len(unique) <= 1:
        return ModeNormalizerState(
            np.array([float(unique[0])]), np.array([max(floor, 1e-6)]), np.array([1.0])
        )
    n_components = int(min(max_components, len(unique)))
    center, scale = _standardiser(values)
    mixture = BayesianGaussianMixture(
        n_components=n_components,
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=1e-3,
        max_iter=100,
        n_init=1,
        random_state=seed,
    )
    # catch_warnings is not thread-safe (fits run in threads): filter by category instead
    warnings.filterwarnings("ignore", category=ConvergenceWarning, module="sklearn")
    mixture.fit(((values - center) / scale).reshape(-1, 1))
    weights = mixture.weights_
    keep = weights > MIN_COMPONENT_WEIGHT
    if not keep.any():
        keep = weights == weights.max()
    means = mixture.means_.reshape(-1)[keep] * scale + center
    stds = np.sqrt(mixture.covariances_.reshape(-1)[keep]) * scale
    stds = np.maximum(stds, floor)
    order = np.argsort(means)
    weights = weights[keep][order]
    return ModeNormalizerState(means[order], stds[order], weights / weights.sum())


def mode_posteriors(state: ModeNormalizerState, values: np.ndarray) -> np.ndarray:
    """Posterior probability of each component for each value, shape (n, n_modes).

    Point-mass modes get no probability here: they take exactly their own value (see
    ``encode_modes``). A column made only of point masses falls back to all modes.
    """
    z = (values[:, None] - state.means[None, :]) / state.stds[None, :]
    log_p = -0.5 * z * z - np.log(state.stds)[None, :] + np.log(state.weights)[None, :]
    if state.points.any() and not state.points.all():
        log_p[:, state.points] = -np.inf
    log_p -= log_p.max(axis=1, keepdims=True)
    p = np.exp(log_p)
    p /= p.sum(axis=1, keepdims=True)
    return p


def _point_mode(state: ModeNormalizerState, values: np.ndarray) -> np.ndarray:
    """Index of the point-mass mode equal to each value, or -1."""
    found = np.full(len(values), -1, dtype=np.int64)
    if not state.points.any():
        return found
    point_index = np.flatnonzero(state.points)
    point_values = state.means[point_index]  # ascending: means are sorted
    position = np.clip(np.searchsorted(point_values, values), 0, len(point_values) - 1)
    hit = point_values[position] == values
    found[hit] = point_index[position[hit]]
    return found


def encode_modes(
    state: ModeNormalizerState, values: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(alpha, mode_index)``: the mode is sampled from the posterior.

    A value equal to a point mass takes that mode with ``alpha`` 0.
    """
    values = np.asarray(values, dtype=np.float64)
    if state.n_modes == 1:
        modes = np.zeros(len(values), dtype=np.int64)
    else:
        cumulative = np.cumsum(mode_posteriors(state, values), axis=1)
        u = rng.random(len(values))[:, None] * cumulative[:, -1:]
        modes = np.minimum((cumulative < u).sum(axis=1), state.n_modes - 1)
    point = _point_mode(state, values)
    modes = np.where(point >= 0, point, modes)
    alpha = (values - state.means[modes]) / (ALPHA_SCALE * state.stds[modes])
    return alpha, modes


def decode_modes(state: ModeNormalizerState, alpha: np.ndarray, modes: np.ndarray) -> np.ndarray:
    """Invert ``encode_modes``: the value in the chosen component (exact for point masses)."""
    values = alpha.astype(np.float64) * ALPHA_SCALE * state.stds[modes] + state.means[modes]
    return np.where(state.points[modes], state.means[modes], values)

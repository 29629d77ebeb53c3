"""Mode-specific normalisation of one numerical column (CTGAN paper, Xu et al. 2019).

A column with several modes (an age distribution, an income that is mostly zero) is
badly served by min-max or z-scaling. Instead a variational Gaussian mixture is fitted
to the column; each value is represented by a one-hot of the mixture component it is
drawn from (sampled from the posterior, so the representation stays stochastic) and a
scalar ``alpha = (x - mu_k) / (4 sigma_k)`` within that component. Decoding is the
exact inverse, so real data round-trips within float precision.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture

#: Components whose mixture weight falls below this are dropped as unused.
MIN_COMPONENT_WEIGHT = 0.005
#: Width of one component expressed in standard deviations (alpha stays in about [-1, 1]).
ALPHA_SCALE = 4.0


@dataclass
class ModeNormalizerState:
    """Learned parameters of one column: the retained mixture components."""

    means: np.ndarray
    stds: np.ndarray
    weights: np.ndarray

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
    unique = np.unique(values)
    spread = float(values.std()) if len(values) else 0.0
    floor = 1e-3 * max(spread, 1e-3 * max(1.0, float(np.abs(values).max(initial=0.0))))
    if len(unique) <= 1:
        mean = float(unique[0]) if len(unique) else 0.0
        return ModeNormalizerState(np.array([mean]), np.array([max(floor, 1e-6)]), np.array([1.0]))
    n_components = int(min(max_components, len(unique)))
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
    mixture.fit(values.reshape(-1, 1))
    weights = mixture.weights_
    keep = weights > MIN_COMPONENT_WEIGHT
    if not keep.any():
        keep = weights == weights.max()
    means = mixture.means_.reshape(-1)[keep]
    stds = np.sqrt(mixture.covariances_.reshape(-1)[keep])
    stds = np.maximum(stds, floor)
    order = np.argsort(means)
    weights = weights[keep][order]
    return ModeNormalizerState(means[order], stds[order], weights / weights.sum())


def mode_posteriors(state: ModeNormalizerState, values: np.ndarray) -> np.ndarray:
    """Posterior probability of each component for each value, shape (n, n_modes)."""
    z = (values[:, None] - state.means[None, :]) / state.stds[None, :]
    log_p = -0.5 * z * z - np.log(state.stds)[None, :] + np.log(state.weights)[None, :]
    log_p -= log_p.max(axis=1, keepdims=True)
    p = np.exp(log_p)
    p /= p.sum(axis=1, keepdims=True)
    return p


def encode_modes(
    state: ModeNormalizerState, values: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(alpha, mode_index)``: the mode is sampled from the posterior."""
    values = np.asarray(values, dtype=np.float64)
    if state.n_modes == 1:
        modes = np.zeros(len(values), dtype=np.int64)
    else:
        cumulative = np.cumsum(mode_posteriors(state, values), axis=1)
        u = rng.random(len(values))[:, None] * cumulative[:, -1:]
        modes = np.minimum((cumulative < u).sum(axis=1), state.n_modes - 1)
    alpha = (values - state.means[modes]) / (ALPHA_SCALE * state.stds[modes])
    return alpha, modes


def decode_modes(state: ModeNormalizerState, alpha: np.ndarray, modes: np.ndarray) -> np.ndarray:
    """Invert ``encode_modes``: the value in the chosen component."""
    return alpha.astype(np.float64) * ALPHA_SCALE * state.stds[modes] + state.means[modes]

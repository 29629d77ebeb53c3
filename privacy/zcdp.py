"""Zero-concentrated DP (zCDP): the accounting and the two mechanisms of AIM and MST.

The marginal-based backends (``synthgen.backends.marginal``: AIM, McKenna, Mullins,
Sheldon, Miklau, VLDB 2022; MST, McKenna, Miklau, Sheldon, JPC 2021) spend a budget of
``rho`` (rho-zCDP, Bun & Steinke 2016) on two kinds of steps, and zCDP composes by
adding the rhos:

- Gaussian measurement of a marginal (a vector of counts, L2 sensitivity 1 when one
  row is added or removed) with noise ``N(0, sigma^2)`` per cell: ``1 / (2 sigma^2)``;
- one selection by the exponential mechanism at ``epsilon`` (scores of sensitivity
  ``Delta``, probabilities ``exp(epsilon * score / (2 Delta))``): ``epsilon^2 / 8``,
  the bounded-range analysis (Cesar & Rogers 2021, Durfee & Rogers 2019) AIM and MST
  use.

Conversion to (epsilon, delta), the one used everywhere here: Canonne, Kamath, Steinke
2020 ("The Discrete Gaussian for Differential Privacy", Proposition 12 / Corollary 13):
a mechanism with Renyi divergence ``D_alpha <= tau`` is (epsilon, delta)-DP for

    delta = exp((alpha - 1)(tau - epsilon)) / (alpha - 1) * (1 - 1/alpha)^alpha,

and rho-zCDP gives ``tau = alpha * rho`` for every ``alpha > 1``. ``zcdp_delta`` takes
the infimum over alpha: ``log delta(alpha)`` is strictly convex in alpha (its second
derivative is ``2 rho + 1 / (alpha (alpha - 1)) > 0``), so the minimiser is the root
of the derivative ``(2 alpha - 1) rho - epsilon + log(1 - 1/alpha)``, found by
bisection. ``zcdp_epsilon`` (the smallest epsilon with ``zcdp_delta <= delta``) and its
inverse ``zcdp_rho`` (the largest rho with ``zcdp_epsilon <= epsilon``) are bisections
over monotone functions, each answer checked so that it never errs on the unsafe side.
It is never worse than the simple bound ``epsilon = rho + 2 sqrt(rho log(1/delta))``
(Bun & Steinke 2016, Proposition 1.3), which ``zcdp_epsilon_simple`` keeps for
comparison (at rho = 0.1, delta = 1e-5: 1.914 against 2.246).

Composition with (epsilon, delta)-DP preprocessing (the DP bounds and category sets
of ``privacy.preprocessing``) is basic composition: the zCDP part is converted to
(epsilon_m, delta_m) first, and the totals are ``epsilon_p + epsilon_m`` and
``delta_p + delta_m``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from synthgen.core.errors import ConfigError

#: Bisections stop once the interval is this small relative to its upper end (or after
#: ``_STEPS`` halvings): far below any epsilon anyone reports, and fast enough to nest.
_TOLERANCE = 1e-12
_STEPS = 200


def _bisect(below: Any, low: float, high: float) -> tuple[float, float]:
    """The final (low, high) of a bisection where ``below(low)`` holds and ``below(high)``
    does not (``below`` is monotone: true up to a point, false after it)."""
    for _ in range(_STEPS):
        if high - low <= _TOLERANCE * max(abs(high), 1e-300):
            break
        mid = 0.5 * (low + high)
        if below(mid):
            low = mid
        else:
            high = mid
    return low, high


def _finite_positive(value: Any, name: str, fix: str, *, zero: bool = False) -> float:
    ok = (
        not isinstance(value, bool | np.bool_)
        and isinstance(value, int | float | np.integer | np.floating)
        and math.isfinite(float(value))
        and (float(value) >= 0 if zero else float(value) > 0)
    )
    if not ok:
        bound = ">= 0" if zero else "> 0"
        raise ConfigError(f"{name}={value!r} must be a finite number {bound}; {fix}")
    return float(value)


def _check_delta(delta: Any) -> float:
    ok = (
        not isinstance(delta, bool | np.bool_)
        and isinstance(delta, int | float | np.integer | np.floating)
        and 0 < float(delta) < 1
    )
    if not ok:
        raise ConfigError(f"delta={delta!r} must be a number in (0, 1), e.g. 1e-6")
    return float(delta)


def _log_delta(rho: float, epsilon: float, alpha: float) -> float:
    """log of CKS 2020's delta at order alpha for rho-zCDP (tau = alpha * rho)."""
    return (
        (alpha - 1.0) * (alpha * rho - epsilon)
        + alpha * math.log1p(-1.0 / alpha)
        - math.log(alpha - 1.0)
    )


def optimal_order(rho: float, epsilon: float) -> float:
    """The order alpha > 1 minimising CKS 2020's delta for rho-zCDP at ``epsilon``."""
    rho = _finite_positive(rho, "rho", "the zCDP budget")
    epsilon = _finite_positive(epsilon, "epsilon", "the DP epsilon", zero=True)

    def descending(alpha: float) -> bool:
        return (2.0 * alpha - 1.0) * rho - epsilon + math.log1p(-1.0 / alpha) < 0

    # the derivative is negative near 1 and positive past (epsilon + 1) / (2 rho) + 1
    low, high = _bisect(descending, 1.0 + 1e-12, (epsilon + 1.0) / (2.0 * rho) + 2.0)
    return 0.5 * (low + high)


def zcdp_delta(rho: float, epsilon: float) -> float:
    """The delta for which rho-zCDP implies (epsilon, delta)-DP (CKS 2020, see module)."""
    rho = _finite_positive(rho, "rho", "the zCDP budget", zero=True)
    epsilon = _finite_positive(epsilon, "epsilon", "the DP epsilon", zero=True)
    if rho == 0:
        return 0.0
    alpha = optimal_order(rho, epsilon)
    return min(1.0, math.exp(_log_delta(rho, epsilon, alpha)))


def zcdp_epsilon(rho: float, delta: float) -> float:
    """The smallest epsilon with rho-zCDP => (epsilon, delta)-DP (CKS 2020 conversion).

    The answer is the upper end of the final bisection interval, so
    ``zcdp_delta(rho, answer) <= delta`` always holds: it never understates epsilon.
    """
    rho = _finite_positive(rho, "rho", "the zCDP budget", zero=True)
    delta = _check_delta(delta)
    if rho == 0:
        return 0.0
    low, high = 0.0, zcdp_epsilon_simple(rho, delta)  # the simple bound is always valid
    if zcdp_delta(rho, low) <= delta:
        return 0.0
    _, high = _bisect(lambda eps: zcdp_delta(rho, eps) > delta, low, high)
    return high


def zcdp_rho(epsilon: float, delta: float) -> float:
    """The largest rho whose (CKS 2020) conversion stays within (epsilon, delta).

    The inverse of ``zcdp_epsilon`` by bisection (epsilon grows with rho); the answer is
    the lower end of the final interval, so ``zcdp_epsilon(answer, delta) <= epsilon``.
    """
    epsilon = _finite_positive(epsilon, "epsilon", "the (epsilon, delta) target to convert")
    delta = _check_delta(delta)
    low, high = 0.0, max(1.0, epsilon)
    while zcdp_epsilon(high, delta) <= epsilon:  # rho <= epsilon always: a short loop
        low, high = high, 2.0 * high
    low, _ = _bisect(lambda rho: zcdp_epsilon(rho, delta) <= epsilon, low, high)
    return low


def zcdp_epsilon_simple(rho: float, delta: float) -> float:
    """The simple conversion ``rho + 2 sqrt(rho log(1/delta))`` (Bun & Steinke 2016)."""
    rho = _finite_positive(rho, "rho", "the zCDP budget", zero=True)
    delta = _check_delta(delta)
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))


def gaussian_rho(sigma: float, sensitivity: float = 1.0) -> float:
    """zCDP cost of one Gaussian measurement: ``sensitivity^2 / (2 sigma^2)``."""
    sigma = _finite_positive(sigma, "sigma", "the Gaussian noise scale")
    sensitivity = _finite_positive(sensitivity, "sensitivity", "the L2 sensitivity")
    return sensitivity**2 / (2.0 * sigma**2)


def exponential_rho(epsilon: float) -> float:
    """zCDP cost of one epsilon-DP exponential-mechanism selection: ``epsilon^2 / 8``.

    The bounded-range analysis (Cesar & Rogers 2021): the exponential mechanism is
    epsilon-bounded-range, hence ``epsilon^2 / 8``-zCDP, as AIM's and MST's proofs use.
    """
    epsilon = _finite_positive(epsilon, "epsilon", "the selection's epsilon", zero=True)
    return epsilon**2 / 8.0


def gaussian_measure(counts: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``counts`` plus i.i.d. ``N(0, sigma^2)`` noise (float64): the Gaussian mechanism."""
    sigma = _finite_positive(sigma, "sigma", "the Gaussian noise scale")
    counts = np.asarray(counts, dtype=np.float64)
    return counts + rng.normal(0.0, sigma, size=counts.shape)


def exponential_mechanism(
    scores: np.ndarray, epsilon: float, sensitivity: float, rng: np.random.Generator
) -> int:
    """Index drawn with probability proportional to ``exp(epsilon * score / (2 Delta))``.

    ``sensitivity`` (Delta) bounds how much any score changes when one row is added or
    removed. Computed in log space (scores shifted by their maximum), so large scores
    do not overflow.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or len(scores) == 0 or not np.isfinite(scores).all():
        raise ConfigError("the exponential mechanism needs a non-empty vector of finite scores")
    epsilon = _finite_positive(epsilon, "epsilon", "the selection's epsilon", zero=True)
    sensitivity = _finite_positive(sensitivity, "sensitivity", "the scores' sensitivity")
    logits = 0.5 * epsilon / sensitivity * (scores - scores.max())
    weights = np.exp(logits)
    return int(rng.choice(len(scores), p=weights / weights.sum()))


class ZCDPBudget:
    """A rho budget and what has been spent of it, step by step (zCDP composes by sums).

    ``spend`` refuses a step that would go past the budget (beyond a relative 1e-9 for
    floating point), so a mechanism can never overspend by a bookkeeping slip.
    """

    def __init__(self, rho: float) -> None:
        self.rho = _finite_positive(rho, "rho", "the zCDP budget of the measurements")
        self.used = 0.0
        self.steps: list[tuple[str, float]] = []

    @property
    def remaining(self) -> float:
        return max(0.0, self.rho - self.used)

    def spend(self, what: str, rho: float) -> None:
        rho = _finite_positive(rho, "rho", "the step's zCDP cost", zero=True)
        if self.used + rho > self.rho * (1 + 1e-9):
            raise ConfigError(
                f"{what} would spend rho {rho:.4g} with {self.remaining:.4g} of "
                f"{self.rho:.4g} left; this is a bug in the mechanism's budget plan"
            )
        self.used += rho
        self.steps.append((what, rho))

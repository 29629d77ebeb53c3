"""Privacy accounting for DP-SGD: the user's DP settings, the accountant and the receipt.

A DP fit spends its budget in two places, and the receipt (``PrivacySpent``) counts both:

- preprocessing: DP statistics of columns the schema does not declare public (bounds,
  category sets), pure or approximate DP mechanisms composed by basic composition
  (epsilons add, deltas add);
- training: DP-SGD (Poisson sampling at rate q, per-sample clipping, Gaussian noise of
  std ``noise_multiplier * max_grad_norm``), accounted by opacus' RDP or PRV accountant
  at ``delta_train``.

The total is basic composition of the two parts. The numbers come from opacus (we wrap
its accountants instead of re-deriving the subsampled-Gaussian analysis); what this
module adds is what a training loop and a receipt need around them:

- ``Accountant.epsilon_after``: the epsilon the history plus ``k`` more steps would give,
  without touching the history, cheap enough (RDP: cached per-step RDP curves, ~50
  microseconds) to check before every step that the next one keeps epsilon <= target;
- a guarded PRV: opacus' PRV accountant can raise (``RuntimeError: Discrete mean
  differs...``, ``ValueError: Floating point errors will dominate...``), return ``inf``,
  or, worse, return a finite but wrong epsilon when the privacy-loss domain goes past
  ``t ~ 709`` where ``exp(t)`` overflows float64 (small noise: sigma=0.02, q=0.001, one
  step gives ~703 where the true epsilon is ~1360; see opacus issues #601/#602). Those
  histories are accounted with RDP, which is always a valid upper bound, and the
  accountant records a note saying so;
- ``solve_noise_multiplier``: opacus' bisection, then verified with the same accountant
  the training loop will use, so the planned run never ends above its target.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.analysis.prv import PoissonSubsampledGaussianPRV, compute_safe_domain_size
from opacus.accountants.utils import get_noise_multiplier

from synthgen.core.errors import ConfigError

#: When ``DPConfig.preprocessing_epsilon`` is None and some column has no public
#: domain, the DP statistics of those columns (bounds, category sets, histograms) get
#: ``min(PREPROCESSING_SHARE * epsilon, PREPROCESSING_CAP)``. Why this shape: what the
#: release needs is roughly a fixed amount (category discovery keeps a category once its
#: count clears ``ln(1/(2 delta)) / epsilon_column``), not a fraction of the total. On
#: Adult (TabularAR, harness of docs/benchmarks.md) a tenth of epsilon 1 lost most
#: categories (quality 0.785) where half of it kept them (0.876); at epsilon 10 a
#: preprocessing epsilon of 1 beat 5 (0.925 vs 0.906).
PREPROCESSING_SHARE = 0.5
PREPROCESSING_CAP = 1.0
#: Share of the total delta spent on category discovery (the only approximate-DP step).
PREPROCESSING_DELTA_SHARE = 0.1

ACCOUNTANTS = ("rdp", "prv")
#: Accountants a receipt may name: DP-SGD's, and "zcdp" for the marginal-based backends
#: (AIM, MST: Gaussian measurements and exponential-mechanism selections accounted in
#: zCDP and converted to (epsilon, delta) by ``privacy.zcdp``).
RECEIPT_ACCOUNTANTS = (*ACCOUNTANTS, "zcdp")

#: PRV's safe domain bound L (the largest privacy loss it discretises) above which its
#: float64 arithmetic (``exp(t)`` for t in [-L, L]) overflows near t = 709.78 and the
#: epsilon it returns can be finite but wrong; such histories are accounted with RDP.
PRV_MAX_DOMAIN = 700.0
#: Largest PRV grid (points) we let opacus build; beyond it the FFTs take minutes and
#: gigabytes, and RDP answers in milliseconds.
PRV_MAX_GRID = 20_000_000
#: opacus' own defaults for PRVAccountant.get_epsilon (eps_error, delta_error = delta/1000).
PRV_EPS_ERROR = 0.01

_RDP_ORDERS = tuple(RDPAccountant.DEFAULT_ALPHAS)
_CACHE_SIZE = 256


# ----------------------------------------------------------------- argument checks
def _is_number(value: object) -> bool:
    return not isinstance(value, bool | np.bool_) and isinstance(
        value, int | float | np.integer | np.floating
    )


def _positive(value: object, name: str, fix: str) -> float:
    if not _is_number(value) or not math.isfinite(float(value)) or float(value) <= 0:
        raise ConfigError(f"{name}={value!r} must be a finite number > 0; {fix}")
    return float(value)


def _probability(value: object, name: str, fix: str, *, closed_right: bool = False) -> float:
    ok = _is_number(value) and (0 < float(value) <= 1 if closed_right else 0 < float(value) < 1)
    if not ok:
        interval = "(0, 1]" if closed_right else "(0, 1)"
        raise ConfigError(f"{name}={value!r} must be a number in {interval}; {fix}")
    return float(value)


def _count(value: object, name: str, fix: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ConfigError(f"{name}={value!r} must be an integer >= {minimum}; {fix}")
    if int(value) < minimum:
        raise ConfigError(f"{name}={value!r} must be an integer >= {minimum}; {fix}")
    return int(value)


def _delta(value: object, name: str = "delta") -> float:
    return _probability(
        value, name, "use a delta well below 1/n_rows, e.g. 1/n_rows**1.5 (the default)"
    )


def _sigma(value: object) -> float:
    return _positive(
        value,
        "noise_multiplier",
        "DP-SGD needs Gaussian noise (noise_multiplier 0 means no privacy); "
        "use solve_noise_multiplier() to pick one for a target epsilon",
    )


def _rate(value: object) -> float:
    return _probability(
        value,
        "sample_rate",
        "the Poisson sampling rate is batch_size / n_rows",
        closed_right=True,
    )


def _kind(value: object) -> str:
    if not isinstance(value, str) or value not in ACCOUNTANTS:
        raise ConfigError(f"accountant={value!r} must be one of {ACCOUNTANTS} (rdp is the default)")
    return value


def _check_keys(d: object, allowed: Sequence[str], what: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{what} state must be a dict (from to_dict()), not {type(d).__name__}")
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{what} state has unknown keys {unknown}; allowed keys are {sorted(allowed)} "
            "(was it written by another version, or edited by hand?)"
        )
    return d


# ----------------------------------------------------------------- DPConfig
@dataclass(frozen=True)
class DPConfig:
    """What the user asks for: a total (epsilon, delta) for one fit.

    ``delta=None`` means 1/n^1.5 for the n rows of the training table (see
    ``resolve_delta``); ``preprocessing_epsilon=None`` means ``min(PREPROCESSING_SHARE *
    epsilon, PREPROCESSING_CAP)`` when some column needs DP statistics, else nothing.
    ``max_grad_norm`` is the per-sample clipping norm; ``accountant`` the one that turns
    the DP-SGD history into epsilon (PRV is tighter, RDP is the conservative, fast
    default).
    """

    epsilon: float
    delta: float | None = None
    max_grad_norm: float = 1.0
    accountant: str = "rdp"
    preprocessing_epsilon: float | None = None

    def __post_init__(self) -> None:
        eps = _positive(
            self.epsilon,
            "epsilon",
            "the total privacy budget of the fit, e.g. 1.0 (smaller is more private)",
        )
        object.__setattr__(self, "epsilon", eps)
        if self.delta is not None:
            if not _is_number(self.delta) or not 0 < float(self.delta) < 1:
                raise ConfigError(
                    f"delta={self.delta!r} must be None (1/n_rows**1.5) or a number in "
                    "(0, 1) well below 1/n_rows"
                )
            object.__setattr__(self, "delta", float(self.delta))
        object.__setattr__(
            self,
            "max_grad_norm",
            _positive(
                self.max_grad_norm,
                "max_grad_norm",
                "the per-sample gradient clipping norm, e.g. 1.0",
            ),
        )
        _kind(self.accountant)
        pre = self.preprocessing_epsilon
        if pre is not None:
            if not _is_number(pre) or not math.isfinite(float(pre)) or not 0 <= float(pre) < eps:
                raise ConfigError(
                    f"preprocessing_epsilon={pre!r} must be None (min({PREPROCESSING_SHARE:g} "
                    f"* epsilon, {PREPROCESSING_CAP:g})) or a number with 0 <= value < "
                    f"epsilon={eps:g}, "
                    "leaving some budget for training"
                )
            object.__setattr__(self, "preprocessing_epsilon", float(pre))

    def resolve_delta(self, n_rows: int) -> tuple[float, str]:
        """The delta of the fit and where it came from ("given" or "default 1/n^1.5").

        A delta of 1/n lets a mechanism publish one row in the clear and still be
        "(eps, delta)-DP", so a given delta must be below 1/n; the default 1/n^1.5 is
        well below it.
        """
        n = _count(n_rows, "n_rows", "DP needs a table of at least 2 rows", minimum=2)
        default = 1.0 / n**1.5
        if self.delta is None:
            return default, "default 1/n^1.5"
        if self.delta >= 1.0 / n:
            raise ConfigError(
                f"delta={self.delta:g} is not below 1/n_rows = 1/{n} = {1.0 / n:.3g}: delta "
                f"must be well below 1/n, e.g. 1/n^1.5 = {default:.3g} (or leave delta=None "
                "for that default)"
            )
        return self.delta, "given"

    def preprocessing_budget(self, needs_release: bool) -> float:
        """Epsilon for the DP statistics of non-public columns (see ``PREPROCESSING_SHARE``)."""
        if self.preprocessing_epsilon is not None:
            return self.preprocessing_epsilon
        if not needs_release:
            return 0.0
        return min(PREPROCESSING_SHARE * self.epsilon, PREPROCESSING_CAP)

    def preprocessing_delta(self, delta: float, needs_release: bool) -> float:
        """Delta for the preprocessing release out of the fit's total ``delta``.

        ``PREPROCESSING_DELTA_SHARE`` of delta when something is released with a nonzero
        epsilon (approximate-DP mechanisms such as a thresholded histogram need one),
        else 0; the rest is the training delta.
        """
        total = _delta(delta)
        if not needs_release or self.preprocessing_budget(needs_release) == 0.0:
            return 0.0
        return PREPROCESSING_DELTA_SHARE * total

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DPConfig:
        d = _check_keys(d, [f.name for f in fields(cls)], "DPConfig")
        if "epsilon" not in d:
            raise ConfigError("DPConfig state lacks 'epsilon' (the total privacy budget)")
        return cls(**d)


# ----------------------------------------------------------------- the accountant
History = list[tuple[float, float, int]]


def _merge(history: History, sigma: float, rate: float, steps: int) -> History:
    """``history`` plus ``steps`` steps at (sigma, rate), merged as opacus' step() does."""
    out = list(history)
    if out and out[-1][0] == sigma and out[-1][1] == rate:
        out[-1] = (sigma, rate, out[-1][2] + steps)
    else:
        out.append((sigma, rate, steps))
    return out


class Accountant:
    """opacus' RDP / PRV accountant with a guarded PRV and a cheap look-ahead.

    ``history`` is opacus' list of (noise_multiplier, sample_rate, steps); ``get_epsilon``
    gives exactly what ``RDPAccountant`` / ``PRVAccountant`` give for that history, except
    where PRV is known to fail (then RDP, with a note in ``notes``). ``used`` says which
    accountant produced the last ``get_epsilon``.
    """

    def __init__(self, kind: str = "rdp") -> None:
        self.kind = _kind(kind)
        self._history: History = []
        self.notes: list[str] = []
        self.used: str = self.kind
        self._unit_rdp: OrderedDict[tuple[float, float], np.ndarray] = OrderedDict()
        self._prv_cache: OrderedDict[tuple, tuple[float, str, str | None]] = OrderedDict()

    # ---- history
    @property
    def history(self) -> History:
        return list(self._history)

    @property
    def steps(self) -> int:
        return sum(n for _, _, n in self._history)

    def step(self, noise_multiplier: float, sample_rate: float, steps: int = 1) -> None:
        """Record ``steps`` DP-SGD steps at (noise_multiplier, sample_rate)."""
        sigma, rate = _sigma(noise_multiplier), _rate(sample_rate)
        n = _count(steps, "steps", "the number of optimiser steps to record")
        self._history = _merge(self._history, sigma, rate, n)

    # ---- epsilon
    def get_epsilon(self, delta: float) -> float:
        """Epsilon of the whole history at ``delta`` (0 for an empty history)."""
        eps, used, note = self._epsilon(self._history, _delta(delta))
        self.used = used
        if note is not None and note not in self.notes:
            self.notes.append(note)
        return eps

    def epsilon_after(
        self, noise_multiplier: float, sample_rate: float, extra_steps: int, delta: float
    ) -> float:
        """Epsilon the history plus ``extra_steps`` more steps would give; changes nothing.

        With RDP this costs a vector sum (per-step RDP curves are cached), so a training
        loop can ask it before every step. With PRV every call is a fresh numerical
        composition (0.1-1 s); ask ``steps_affordable`` once instead.
        """
        sigma, rate = _sigma(noise_multiplier), _rate(sample_rate)
        k = _count(extra_steps, "extra_steps", "the number of steps to look ahead", minimum=0)
        history = _merge(self._history, sigma, rate, k) if k else self._history
        eps, _, _ = self._epsilon(history, _delta(delta))
        return eps

    def steps_affordable(
        self,
        noise_multiplier: float,
        sample_rate: float,
        target_epsilon: float,
        delta: float,
        max_steps: int,
    ) -> int:
        """The most extra steps (<= max_steps) keeping epsilon <= target_epsilon.

        Epsilon grows with the number of steps, so a bisection over ``epsilon_after``
        answers it in O(log max_steps) evaluations; the answer is verified, never
        extrapolated.
        """
        target = _positive(target_epsilon, "target_epsilon", "the epsilon not to exceed")
        hi = _count(max_steps, "max_steps", "the most steps to consider", minimum=0)
        if self.epsilon_after(noise_multiplier, sample_rate, 0, delta) > target:
            return 0
        if self.epsilon_after(noise_multiplier, sample_rate, hi, delta) <= target:
            return hi
        lo = 0  # invariant: lo affordable, hi not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.epsilon_after(noise_multiplier, sample_rate, mid, delta) <= target:
                lo = mid
            else:
                hi = mid
        return lo

    def _epsilon(self, history: History, delta: float) -> tuple[float, str, str | None]:
        """(epsilon, accountant used, note or None) for ``history``; mutates nothing."""
        if not history:
            return 0.0, self.kind, None
        if self.kind == "rdp":
            return self._rdp_epsilon(history, delta), "rdp", None
        return self._prv_epsilon(history, delta)

    def _rdp_epsilon(self, history: History, delta: float) -> float:
        # Same arithmetic as RDPAccountant.get_privacy_spent (compute_rdp is the per-step
        # curve times steps, summed over the history), with the per-step curves cached.
        rdp = sum(self._unit(sigma, rate) * n for sigma, rate, n in history)
        with warnings.catch_warnings():
            # "Optimal order is the smallest/largest alpha": the bound stays valid (only
            # looser than a wider order range could give); not worth a warning per step
            warnings.filterwarnings("ignore", message="Optimal order", category=UserWarning)
            eps, _ = rdp_analysis.get_privacy_spent(orders=list(_RDP_ORDERS), rdp=rdp, delta=delta)
        return float(eps)

    def _unit(self, sigma: float, rate: float) -> np.ndarray:
        key = (sigma, rate)
        curve = self._unit_rdp.get(key)
        if curve is None:
            curve = rdp_analysis.compute_rdp(
                q=rate, noise_multiplier=sigma, steps=1, orders=list(_RDP_ORDERS)
            )
            self._unit_rdp[key] = curve
            if len(self._unit_rdp) > _CACHE_SIZE:
                self._unit_rdp.popitem(last=False)
        return curve

    def _prv_epsilon(self, history: History, delta: float) -> tuple[float, str, str | None]:
        key = (tuple(history), delta)
        cached = self._prv_cache.get(key)
        if cached is not None:
            return cached
        reason = _prv_unreliable(history, delta)
        eps = math.nan
        if reason is None:
            prv = PRVAccountant()
            prv.history = list(history)
            try:
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    # the PRV's cdf takes log(0) on purpose below log(1 - q); its domain
                    # bound comes from RDP, whose "optimal order" hint is noise here
                    warnings.simplefilter("ignore", RuntimeWarning)
                    warnings.filterwarnings("ignore", message="Optimal order")
                    eps = float(prv.get_epsilon(delta))
            except Exception as error:  # opacus' PRV fails in several ways, see module doc
                reason = f"{type(error).__name__}: {error}"
            else:
                if not math.isfinite(eps) or eps < 0:
                    reason = f"it returned epsilon={eps!r}"
        if reason is None:
            result: tuple[float, str, str | None] = (eps, "prv", None)
        else:
            note = f"PRV accountant failed ({reason}); RDP used"
            result = (self._rdp_epsilon(history, delta), "rdp", note)
        self._prv_cache[key] = result
        if len(self._prv_cache) > _CACHE_SIZE:
            self._prv_cache.popitem(last=False)
        return result

    # ---- state
    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "history": [[sigma, rate, n] for sigma, rate, n in self._history],
            "notes": list(self.notes),
            "used": self.used,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = _check_keys(state, ["kind", "history", "notes", "used"], "Accountant")
        if state.get("kind", self.kind) != self.kind:
            raise ConfigError(
                f"Accountant state is for accountant={state.get('kind')!r} but this accountant "
                f"is {self.kind!r}; build Accountant(kind={state.get('kind')!r}) to load it"
            )
        raw = state.get("history", [])
        if not isinstance(raw, list | tuple):
            raise ConfigError("Accountant state 'history' must be a list of [sigma, q, steps]")
        history: History = []
        for entry in raw:
            if not isinstance(entry, list | tuple) or len(entry) != 3:
                raise ConfigError(
                    f"Accountant history entry {entry!r} must be [noise_multiplier, "
                    "sample_rate, steps]"
                )
            sigma, rate = _sigma(entry[0]), _rate(entry[1])
            n = _count(entry[2], "steps", "history steps are positive integers")
            history.append((sigma, rate, n))
        notes = state.get("notes", [])
        if not isinstance(notes, list | tuple) or not all(isinstance(s, str) for s in notes):
            raise ConfigError("Accountant state 'notes' must be a list of strings")
        used = state.get("used", self.kind)
        if used not in ACCOUNTANTS:
            raise ConfigError(f"Accountant state 'used'={used!r} must be one of {ACCOUNTANTS}")
        self._history, self.notes, self.used = history, list(notes), used
        self._prv_cache.clear()

    def copy(self) -> Accountant:
        other = Accountant(self.kind)
        other._history = list(self._history)
        other.notes = list(self.notes)
        other.used = self.used
        other._unit_rdp = self._unit_rdp  # immutable curves, safe to share
        return other

    def __repr__(self) -> str:
        return f"Accountant(kind={self.kind!r}, steps={self.steps}, history={self._history!r})"


def _prv_unreliable(history: History, delta: float) -> str | None:
    """Why opacus' PRV cannot be trusted for this history, or None.

    PRV discretises the privacy loss on [-L, L] with mesh ``eps_error / sqrt(T log(12 /
    delta_error) / 2)`` (opacus' ``PRVAccountant._get_domain``); L comes from RDP. Past
    L ~ 709 ``exp(t)`` overflows and the answer may be finite but wrong; a huge grid
    takes minutes. Both are found from the domain bound alone, before any FFT.
    """
    delta_error = delta / 1000
    prvs = [PoissonSubsampledGaussianPRV(rate, sigma) for sigma, rate, _ in history]
    counts = [n for _, _, n in history]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order", category=UserWarning)
        bound = float(compute_safe_domain_size(prvs, counts, PRV_EPS_ERROR, delta_error))
    if not math.isfinite(bound) or bound > PRV_MAX_DOMAIN:
        return (
            f"its privacy-loss domain bound L={bound:.4g} exceeds {PRV_MAX_DOMAIN:g}, where "
            "float64 exp() overflows and opacus' PRV can return a wrong epsilon "
            "(opacus issues #601/#602; noise too small)"
        )
    mesh = PRV_EPS_ERROR / math.sqrt(sum(counts) * math.log(12 / delta_error) / 2)
    grid = 2 * bound / mesh
    if grid > PRV_MAX_GRID:
        return f"its grid would need {grid:.3g} points (limit {PRV_MAX_GRID:.3g})"
    return None


# ----------------------------------------------------------------- planning
def planned_epsilon(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str = "rdp",
) -> float:
    """Epsilon of ``steps`` DP-SGD steps at (noise_multiplier, sample_rate)."""
    acc = Accountant(accountant)
    acc.step(noise_multiplier, sample_rate, _count(steps, "steps", "the planned number of steps"))
    return acc.get_epsilon(delta)


def solve_noise_multiplier(
    epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str = "rdp",
) -> float:
    """The noise multiplier for which ``steps`` steps at ``sample_rate`` spend <= epsilon.

    opacus' ``get_noise_multiplier`` bisects (tolerance ``min(0.01, epsilon / 100)``);
    the answer is then checked with ``Accountant(accountant)``, the accountant training
    will use (its PRV falls back to RDP where opacus' PRV is unreliable, and opacus'
    bisection cannot know that), and raised by 1% at a time until it passes.
    """
    eps = _positive(epsilon, "epsilon", "the training epsilon to reach")
    d = _delta(delta)
    q = _rate(sample_rate)
    n = _count(steps, "steps", "the planned number of optimiser steps")
    kind = _kind(accountant)
    tolerance = min(0.01, eps / 100)

    def unreachable() -> ConfigError:
        return ConfigError(
            f"epsilon={eps:g} (delta={d:.3g}) cannot be reached with steps={n} at sample "
            f"rate {q:.4g}, even with noise multiplier 1e6: train for fewer epochs/steps, "
            "use a smaller batch (lower sample rate), or allow a larger epsilon"
        )

    def bisect(mechanism: str) -> float:
        with warnings.catch_warnings():
            # RDP's "optimal order" hint at the extreme sigmas of the search, PRV's log(0)
            warnings.filterwarnings("ignore", message="Optimal order", category=UserWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(
                get_noise_multiplier(
                    target_epsilon=eps,
                    target_delta=d,
                    sample_rate=q,
                    steps=n,
                    accountant=mechanism,
                    epsilon_tolerance=tolerance,
                )
            )

    checker = Accountant(kind)
    if kind == "rdp":
        sigma = _bisect_or_none(bisect, "rdp")
    else:
        # RDP first: opacus' PRV bisection probes noise down to half its answer (which is
        # below RDP's), where PRV can take minutes or be wrong; skip it where it would.
        rdp_sigma = _bisect_or_none(bisect, "rdp")
        sigma = rdp_sigma
        if rdp_sigma is not None and _prv_unreliable([(rdp_sigma / 2.5, q, n)], d) is None:
            sigma = _bisect_or_none(bisect, "prv") or rdp_sigma
            if checker.epsilon_after(sigma, q, n, d) > eps:
                sigma = max(sigma, rdp_sigma)  # guarded PRV answered with RDP
    if sigma is None:
        raise unreachable()
    for _ in range(2000):
        if checker.epsilon_after(sigma, q, n, d) <= eps:
            return sigma
        sigma *= 1.01
    raise unreachable()


def _bisect_or_none(bisect, mechanism: str) -> float | None:
    """opacus' bisection for ``mechanism``; None when the target is out of reach.

    opacus raises ``ValueError("The privacy budget is too low.")`` past sigma = 1e6; with
    PRV the bisection can also die inside the PRV (then the caller bisects with RDP).
    """
    try:
        return bisect(mechanism)
    except Exception as error:
        out_of_reach = isinstance(error, ValueError) and "too low" in str(error)
        if mechanism == "rdp" and not out_of_reach:
            raise
        return None


# ----------------------------------------------------------------- the receipt
@dataclass(frozen=True)
class PrivacySpent:
    """What a DP fit spent: totals and their two parts (basic composition).

    ``epsilon = preprocessing_epsilon + training_epsilon`` and ``delta =
    preprocessing_delta + training_delta``; ``accountant`` is the accountant that
    produced ``training_epsilon`` ("prv" or, also after a PRV fallback, "rdp");
    ``delta_source`` says whether delta was given or the 1/n^1.5 default.
    """

    epsilon: float
    delta: float
    accountant: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    preprocessing_epsilon: float
    training_epsilon: float
    preprocessing_delta: float = 0.0
    training_delta: float = 0.0
    delta_source: str = "given"
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in (
            "epsilon",
            "delta",
            "preprocessing_epsilon",
            "training_epsilon",
            "preprocessing_delta",
            "training_delta",
            "noise_multiplier",
            "sample_rate",
        ):
            value = getattr(self, name)
            if not _is_number(value) or not float(value) >= 0 or math.isnan(float(value)):
                raise ConfigError(f"PrivacySpent.{name}={value!r} must be a number >= 0")
            object.__setattr__(self, name, float(value))
        object.__setattr__(
            self, "steps", _count(self.steps, "steps", "steps taken is >= 0", minimum=0)
        )
        if self.accountant not in RECEIPT_ACCOUNTANTS:
            raise ConfigError(
                f"PrivacySpent.accountant={self.accountant!r} must be one of {RECEIPT_ACCOUNTANTS}"
            )
        if not isinstance(self.delta_source, str):
            raise ConfigError(f"PrivacySpent.delta_source={self.delta_source!r} must be a string")
        notes = self.notes
        if isinstance(notes, str) or not all(isinstance(s, str) for s in notes):
            raise ConfigError(f"PrivacySpent.notes={notes!r} must be a sequence of strings")
        object.__setattr__(self, "notes", tuple(notes))
        for total, parts in (
            ("epsilon", ("preprocessing_epsilon", "training_epsilon")),
            ("delta", ("preprocessing_delta", "training_delta")),
        ):
            expected = math.fsum(getattr(self, p) for p in parts)
            if not math.isclose(getattr(self, total), expected, rel_tol=1e-9, abs_tol=0.0):
                raise ConfigError(
                    f"PrivacySpent.{total}={getattr(self, total)!r} is not the sum of "
                    f"{parts[0]} + {parts[1]} = {expected!r} (basic composition); build it "
                    "with PrivacySpent.compose()"
                )

    @classmethod
    def compose(
        cls,
        preprocessing_epsilon: float,
        preprocessing_delta: float,
        accountant: Accountant,
        training_delta: float,
        noise_multiplier: float,
        sample_rate: float,
        delta_source: str = "given",
    ) -> PrivacySpent:
        """Preprocessing cost + the accountant's epsilon for its history at training_delta."""
        if not isinstance(accountant, Accountant):
            raise ConfigError(
                f"accountant must be a privacy.accounting.Accountant, not "
                f"{type(accountant).__name__}"
            )
        pre_eps = _nonnegative(preprocessing_epsilon, "preprocessing_epsilon")
        pre_delta = _nonnegative(preprocessing_delta, "preprocessing_delta")
        train_delta = _delta(training_delta, "training_delta")
        train_eps = accountant.get_epsilon(train_delta)
        return cls(
            epsilon=pre_eps + train_eps,
            delta=pre_delta + train_delta,
            accountant=accountant.used,
            noise_multiplier=noise_multiplier,
            sample_rate=sample_rate,
            steps=accountant.steps,
            preprocessing_epsilon=pre_eps,
            training_epsilon=train_eps,
            preprocessing_delta=pre_delta,
            training_delta=train_delta,
            delta_source=delta_source,
            notes=tuple(accountant.notes),
        )

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["notes"] = list(self.notes)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PrivacySpent:
        names = [f.name for f in fields(cls)]
        d = _check_keys(d, names, "PrivacySpent")
        required = [f.name for f in fields(cls)][:8]
        missing = [k for k in required if k not in d]
        if missing:
            raise ConfigError(f"PrivacySpent state lacks {missing}")
        d = dict(d)
        if "notes" in d:
            if not isinstance(d["notes"], list | tuple):
                raise ConfigError("PrivacySpent state 'notes' must be a list of strings")
            d["notes"] = tuple(d["notes"])
        return cls(**d)

    def __str__(self) -> str:
        text = (
            f"epsilon {self.epsilon:.3f} (preprocessing {self.preprocessing_epsilon:.3f} + "
            f"training {self.training_epsilon:.3f}, {self.accountant}), delta "
            f"{self.delta:.2g} ({self.delta_source}), noise multiplier "
            f"{self.noise_multiplier:.3g}, sample rate {self.sample_rate:.3g}, "
            f"{self.steps} steps"
        )
        if self.notes:
            text += "; " + "; ".join(self.notes)
        return text


def _nonnegative(value: object, name: str) -> float:
    if not _is_number(value) or not math.isfinite(float(value)) or float(value) < 0:
        raise ConfigError(f"{name}={value!r} must be a finite number >= 0")
    return float(value)

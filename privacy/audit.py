"""Empirical lower bound on epsilon from one training run with canaries.

A DP claim ("this generator is (epsilon, delta)-DP") can be *refuted* by data but never
confirmed; this module turns one training run into a statistical test of the claim,
after Steinke, Nasr and Jagielski (2023), "Privacy auditing with one (1) training run"
(NeurIPS 2023):

1. make ``m`` canary rows (:func:`make_canaries`);
2. include each one in the training data independently with probability 1/2
   (:func:`draw_inclusion`; the hidden bits are ``S_i`` in {-1, +1});
3. train once on the real rows plus the included canaries, then score every canary,
   higher meaning "more likely a member" (the model's log-likelihood of the row, minus
   the distance to the closest synthetic record, ...);
4. guess "member" for the ``k_plus`` highest scores, "non-member" for the ``k_minus``
   lowest, abstain on the rest, and count the correct guesses ``v`` of ``r`` guesses
   (:func:`guess_counts`);
5. report the largest epsilon the count refutes at confidence ``1 - beta``
   (:func:`epsilon_lower_bound`).

Why this is sound (the paper's Theorem 3.1 and its approximate-DP form): the guesses
are post-processing of the trained model, and the model is (epsilon, delta)-DP with
respect to each canary's inclusion bit (adding or removing one row), so under the claim

- pure DP: the number of correct guesses is stochastically dominated by
  ``Binomial(r, q)``, ``q = e^eps / (1 + e^eps)`` (the accuracy of randomized response);
- delta > 0: ``P[W >= v] <= f(v) + 2 m delta * max_{1 <= i <= v} (f(v - i) - f(v)) / i``,
  ``f(v) = P[Binomial(r, q) >= v]``; this is the paper's numerical procedure for
  approximate DP, implemented as written there (:func:`audit_p_value`). Note the
  ``m``: it is the number of *randomised canaries*, not the number of guesses, so the
  delta term needs ``delta << 1 / m`` to leave room for a non-zero bound.

The reported bound is the result of a bisection that keeps an epsilon whose p-value is
below ``beta``; any such epsilon is a valid lower bound (if the mechanism is
``eps*``-DP it is also ``eps``-DP for every ``eps >= eps*``, so an epsilon above
``eps*`` is refuted with probability at most ``beta``), so the bound errs only low.

What the number means: with probability at least ``1 - beta`` over the inclusion bits
and the training randomness, the true epsilon is at least the bound. It is a *lower*
bound: a weak attack (a score that barely separates members) gives a small bound and
says nothing about the claim being tight. Stronger canaries (outliers far from the real
rows) and stronger scores give tighter audits; :func:`make_canaries` makes modest ones.

Layering: ``privacy`` imports no backend, so the caller passes ``fit`` and ``score``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from synthgen.core.errors import ConfigError, DataError

#: Fewest canaries an audit accepts. Even ten all-correct guesses refute only
#: epsilon ~ 1.1 at beta = 0.05; meaningful audits use hundreds or thousands.
MIN_CANARIES = 10

#: Bisection stops when the bracket is this narrow (the lower end is reported).
_TOLERANCE = 1e-6
#: Largest epsilon searched. Past ~40 the randomized-response accuracy rounds to 1.0 in
#: float64, so no count can refute more.
_EPSILON_CAP = 64.0
#: Attempts to redraw canaries that coincide with a real row or another canary.
_REDRAW_ROUNDS = 10


# ------------------------------------------------------------------ validation helpers
def _check_int(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"{name}={value!r} must be an integer; pass a whole number >= {minimum}.")
    if value < minimum:
        raise ConfigError(f"{name}={value!r} is too small; pass an integer >= {minimum}.")
    return int(value)


def _check_beta(beta: Any) -> float:
    if isinstance(beta, bool) or not isinstance(beta, int | float | np.floating | np.integer):
        raise ConfigError(f"beta={beta!r} must be a number in (0, 1), e.g. 0.05.")
    beta = float(beta)
    if not 0.0 < beta < 1.0:
        raise ConfigError(
            f"beta={beta!r} is outside (0, 1); it is the chance the bound is wrong, pass e.g. 0.05."
        )
    return beta


def _check_delta(delta: Any) -> float:
    if isinstance(delta, bool) or not isinstance(delta, int | float | np.floating | np.integer):
        raise ConfigError(f"delta={delta!r} must be a number in [0, 1), e.g. 1e-5.")
    delta = float(delta)
    if not (math.isfinite(delta) and 0.0 <= delta < 1.0):
        raise ConfigError(
            f"delta={delta!r} is outside [0, 1); pass the delta of the DP claim under "
            "test (0 for pure DP)."
        )
    return delta


def _check_epsilon(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ConfigError(f"{name}={value!r} must be a finite number >= 0.")
    value = float(value)
    if not (math.isfinite(value) and value >= 0.0):
        raise ConfigError(f"{name}={value!r} must be a finite number >= 0.")
    return value


def _check_rng(rng: Any) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ConfigError(
        f"rng={rng!r} must be a numpy Generator or an integer seed; "
        "pass np.random.default_rng(seed)."
    )


def _check_m(m: Any, name: str = "m") -> int:
    m = _check_int(name, m, minimum=1)
    if m < MIN_CANARIES:
        raise ConfigError(
            f"{name}={m} canaries are too few for an audit; pass at least {MIN_CANARIES} "
            "(hundreds or thousands for a useful bound)."
        )
    return m


# ---------------------------------------------------------------------- the statistics
def audit_p_value(
    correct: int,
    guesses: int,
    epsilon: float,
    delta: float = 0.0,
    *,
    m: int | None = None,
) -> float:
    """Upper bound on ``P[>= correct right of guesses]`` for an (epsilon, delta)-DP run.

    Pure DP: ``f(v) = P[Binomial(guesses, q) >= v]`` with ``q = e^eps / (1 + e^eps)``.
    With ``delta > 0`` the paper's approximate-DP bound adds
    ``2 m delta max_i (f(v - i) - f(v)) / i``; ``m`` (all randomised canaries, not only
    the guessed ones) is then required. Capped at 1.
    """
    v = _check_int("correct", correct)
    r = _check_int("guesses", guesses)
    if v > r:
        raise ConfigError(
            f"correct={v} exceeds guesses={r}; pass the number of right guesses out of "
            "the guesses made."
        )
    epsilon = _check_epsilon("epsilon", epsilon)
    delta = _check_delta(delta)
    if delta > 0.0:
        if m is None:
            raise ConfigError(
                f"m is required when delta={delta} > 0: the delta term scales with the "
                "number of randomised canaries; pass m=<number of canaries>."
            )
        m = _check_int("m", m, minimum=1)
        if m < r:
            raise ConfigError(
                f"m={m} is smaller than guesses={r}; m counts every canary, guessed or not."
            )
    return _p_value(v, r, epsilon, delta, 0 if m is None else int(m))


def _p_value(v: int, r: int, epsilon: float, delta: float, m: int) -> float:
    if v == 0:
        return 1.0
    q = float(special.expit(epsilon))
    tail = float(stats.binom.sf(v - 1, r, q))  # f(v) = P[Bin(r, q) >= v]
    if delta == 0.0:
        return min(tail, 1.0)
    # f(v - i) - f(v) = P[v - i <= Bin < v] = sum of pmf(v-1), ..., pmf(v-i): a cumulative
    # sum of the pmf read downwards from v - 1.
    pmf = stats.binom.pmf(np.arange(v - 1, -1, -1), r, q)
    slack = np.cumsum(pmf) / np.arange(1, v + 1)
    return min(tail + 2.0 * m * delta * float(slack.max()), 1.0)


def epsilon_lower_bound(
    correct: int,
    guesses: int,
    delta: float = 0.0,
    beta: float = 0.05,
    *,
    m: int | None = None,
) -> float:
    """Largest epsilon refuted at confidence ``1 - beta`` by ``correct`` of ``guesses``.

    That is, the largest epsilon for which an (epsilon, delta)-DP mechanism gets at
    least ``correct`` guesses right with probability below ``beta``; 0.0 when even
    epsilon = 0 is not refuted (e.g. guessing at random). Bisection on epsilon with the
    binomial tail (:func:`audit_p_value`); the reported value always has a p-value
    below ``beta``, so the rounding of the search only lowers the bound. ``m`` (the
    number of canaries) is required when ``delta > 0``.
    """
    v = _check_int("correct", correct)
    r = _check_int("guesses", guesses)
    beta = _check_beta(beta)
    delta = _check_delta(delta)
    # validates the remaining arguments (v <= r, m given and >= r when delta > 0)
    if audit_p_value(v, r, 0.0, delta, m=m) >= beta:
        return 0.0
    mm = 0 if m is None else int(m)
    lo, hi = 0.0, 1.0
    while _p_value(v, r, hi, delta, mm) < beta:
        lo, hi = hi, 2.0 * hi
        if hi > _EPSILON_CAP:
            return lo
    while hi - lo > _TOLERANCE:
        mid = 0.5 * (lo + hi)
        if _p_value(v, r, mid, delta, mm) < beta:
            lo = mid
        else:
            hi = mid
    return lo


# ----------------------------------------------------------------------- the guessing
def _check_scores(scores: Any, included: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores)
    inc = np.asarray(included)
    if s.ndim != 1 or inc.ndim != 1:
        raise ConfigError(
            f"scores (shape {s.shape}) and included (shape {inc.shape}) must be 1-D, "
            "one entry per canary."
        )
    if len(s) != len(inc):
        raise ConfigError(
            f"scores has {len(s)} entries but included has {len(inc)}; pass one score "
            "and one inclusion bit per canary, in the same order."
        )
    if inc.dtype != np.bool_:
        if inc.size and not np.isin(inc, (0, 1)).all():
            raise ConfigError(
                "included must hold booleans (True = the canary was trained on); "
                f"got values {np.unique(inc)[:5].tolist()}."
            )
        inc = inc.astype(bool)
    try:
        s = s.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"scores must be numbers (higher = member); got dtype {s.dtype}."
        ) from exc
    bad = np.flatnonzero(np.isnan(s))
    if bad.size:
        raise DataError(
            f"scores are NaN for {bad.size} canaries (first at index {int(bad[0])}); "
            "the score function must give every canary a number (use -inf for "
            "'certainly not a member')."
        )
    return s, inc


def _check_k(k_plus: Any, k_minus: Any, m: int) -> tuple[int, int]:
    kp = _check_int("k_plus", k_plus)
    km = _check_int("k_minus", k_minus)
    if kp + km == 0:
        raise ConfigError("k_plus=0 and k_minus=0 make no guesses; pass k_plus >= 1.")
    if kp + km > m:
        raise ConfigError(
            f"k_plus={kp} + k_minus={km} exceeds the {m} canaries; the highest and the "
            "lowest scored sets must not overlap."
        )
    return kp, km


def guess_counts(scores: Any, included: Any, k_plus: int, k_minus: int) -> tuple[int, int]:
    """Guess "member" for the ``k_plus`` highest scores and "non-member" for the
    ``k_minus`` lowest; return ``(correct, guesses)``.

    Ties are broken by canary position (a stable sort), which depends only on the scores
    and the public order, never on the hidden bits, so the guesses stay post-processing
    of the model and the DP bound applies.
    """
    s, inc = _check_scores(scores, included)
    kp, km = _check_k(k_plus, k_minus, len(s))
    order = np.argsort(-s, kind="stable")  # highest score first, ties by position
    top = order[:kp]
    bottom = order[len(s) - km :]
    correct = int(inc[top].sum()) + int((~inc[bottom]).sum())
    return correct, kp + km


def draw_inclusion(m: int, rng: Any) -> np.ndarray:
    """Each of ``m`` canaries is trained on independently with probability 1/2.

    The fair coin is what the bound assumes; a different inclusion rate is not covered.
    """
    m = _check_m(m)
    return _check_rng(rng).random(m) < 0.5


# ----------------------------------------------------------------------------- result
@dataclass(frozen=True)
class CanaryAudit:
    """Outcome of one canary audit (JSON-safe through ``to_dict``/``from_dict``).

    ``epsilon_lower_bound`` holds with probability ``1 - beta``: the true epsilon (at
    this ``delta``) is at least it. ``k_candidates`` > 1 means the best of that many
    ``(k_plus, k_minus)`` choices was kept, each tested at ``beta / k_candidates``
    (Bonferroni), so ``beta`` is still the overall error rate.
    """

    m: int
    k_plus: int
    k_minus: int
    guesses: int
    correct: int
    epsilon_lower_bound: float
    delta: float
    beta: float
    claimed_epsilon: float | None = None
    k_candidates: int = 1

    @property
    def consistent(self) -> bool:
        """True when the audit does not refute the claim (or there is no claim)."""
        return self.claimed_epsilon is None or self.epsilon_lower_bound <= self.claimed_epsilon

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["consistent"] = self.consistent
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CanaryAudit:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        missing = [
            k
            for k in (
                "m",
                "k_plus",
                "k_minus",
                "guesses",
                "correct",
                "epsilon_lower_bound",
                "delta",
                "beta",
            )
            if k not in known
        ]
        if missing:
            raise ConfigError(f"CanaryAudit.from_dict: missing keys {missing}.")
        return cls(**known)


# ---------------------------------------------------------------------------- audits
def audit_from_scores(
    scores: Any,
    included: Any,
    delta: float,
    beta: float = 0.05,
    k_plus: int | None = None,
    k_minus: int | None = None,
    claimed_epsilon: float | None = None,
    *,
    k_grid: Sequence[tuple[int, int]] | None = None,
) -> CanaryAudit:
    """Audit from per-canary scores (higher = member) and the hidden inclusion bits.

    Default guesses: ``k_plus = k_minus = max(1, m // 10)`` (a fixed choice, so no
    correction for trying several is needed). Either one given alone sets the other to
    the same default. ``k_grid`` instead tries each ``(k_plus, k_minus)`` pair and keeps
    the best bound, testing each at ``beta / len(k_grid)`` (Bonferroni), which keeps the
    overall error rate at ``beta``; choose the grid before seeing the scores.
    """
    s, inc = _check_scores(scores, included)
    m = _check_m(len(s), name="number of canaries (len(scores))")
    beta = _check_beta(beta)
    delta = _check_delta(delta)
    if claimed_epsilon is not None:
        claimed_epsilon = _check_epsilon("claimed_epsilon", claimed_epsilon)
    default = max(1, m // 10)
    if k_grid is not None:
        if k_plus is not None or k_minus is not None:
            raise ConfigError("pass either k_plus/k_minus or k_grid, not both.")
        grid = list(k_grid)
        if not grid:
            raise ConfigError("k_grid is empty; pass (k_plus, k_minus) pairs or None.")
        pairs = []
        for pair in grid:
            if not (isinstance(pair, tuple | list) and len(pair) == 2):
                raise ConfigError(f"k_grid entry {pair!r} must be a (k_plus, k_minus) pair.")
            pairs.append(_check_k(pair[0], pair[1], m))
    else:
        pairs = [
            _check_k(
                default if k_plus is None else k_plus,
                default if k_minus is None else k_minus,
                m,
            )
        ]
    beta_each = beta / len(pairs)
    best: tuple[float, int, int, int, int] | None = None
    for kp, km in pairs:
        correct, guesses = guess_counts(s, inc, kp, km)
        eps = epsilon_lower_bound(correct, guesses, delta, beta_each, m=m)
        if best is None or eps > best[0]:
            best = (eps, kp, km, correct, guesses)
    assert best is not None
    eps, kp, km, correct, guesses = best
    return CanaryAudit(
        m=m,
        k_plus=kp,
        k_minus=km,
        guesses=guesses,
        correct=correct,
        epsilon_lower_bound=float(eps),
        delta=delta,
        beta=beta,
        claimed_epsilon=claimed_epsilon,
        k_candidates=len(pairs),
    )


def run_canary_audit(
    train: pd.DataFrame,
    canaries: pd.DataFrame,
    fit: Callable[[pd.DataFrame], Any],
    score: Callable[[Any, pd.DataFrame], Any],
    rng: Any,
    delta: float,
    beta: float = 0.05,
    claimed_epsilon: float | None = None,
) -> CanaryAudit:
    """Draw inclusion bits, train once on ``train`` + the included canaries, score all.

    ``fit(frame) -> model`` must be the whole DP mechanism whose claim is audited
    (preprocessing included); ``score(model, canaries)`` sees only the model and the
    canaries, never the inclusion bits. The training frame is shuffled so the canaries
    do not sit together at its end. Guesses use the fixed default ``k`` of
    :func:`audit_from_scores`.
    """
    if not isinstance(train, pd.DataFrame) or not isinstance(canaries, pd.DataFrame):
        raise ConfigError(
            f"train and canaries must be DataFrames; got {type(train).__name__} and "
            f"{type(canaries).__name__}."
        )
    if list(train.columns) != list(canaries.columns):
        raise DataError(
            f"canaries columns {list(canaries.columns)} differ from train columns "
            f"{list(train.columns)}; build them with make_canaries(train, m, rng)."
        )
    if not callable(fit) or not callable(score):
        raise ConfigError("fit and score must be callables: fit(frame) and score(model, rows).")
    beta = _check_beta(beta)
    delta = _check_delta(delta)
    generator = _check_rng(rng)
    m = _check_m(len(canaries), name="number of canaries (len(canaries))")
    included = draw_inclusion(m, generator)
    frame = pd.concat([train, canaries.loc[included]], ignore_index=True)
    frame = frame.iloc[generator.permutation(len(frame))].reset_index(drop=True)
    model = fit(frame)
    scores = np.asarray(score(model, canaries.reset_index(drop=True)))
    if scores.shape != (m,):
        raise DataError(
            f"score(model, canaries) returned shape {scores.shape}; it must return one "
            f"number per canary, shape ({m},)."
        )
    return audit_from_scores(scores, included, delta, beta, claimed_epsilon=claimed_epsilon)


# --------------------------------------------------------------------------- canaries
def _row_hashes(frame: pd.DataFrame) -> np.ndarray | None:
    try:
        return pd.util.hash_pandas_object(frame, index=False).to_numpy()
    except TypeError:  # unhashable cells (lists, dicts): skip the duplicate check
        return None


def make_canaries(df: pd.DataFrame, m: int, rng: Any) -> pd.DataFrame:
    """``m`` canary rows: every column's value drawn independently from that column.

    Each canary recombines existing values, so every cell is valid for its column (same
    dtype, same categories, nulls as often as the column has them) while the row as a
    whole is unusual and unlikely to equal a real row. Canaries that do coincide with a
    real row or with another canary are redrawn a few times (a duplicate of a real row
    is "in" whatever its inclusion bit, which only weakens the audit). These are modest
    canaries: outliers far from the data, or rows a generator finds hard to produce,
    make a tighter audit. Id columns are recombined like the others; overwrite them if
    ids must be unique.
    """
    if not isinstance(df, pd.DataFrame):
        raise ConfigError(f"df must be a DataFrame; got {type(df).__name__}.")
    if len(df) == 0 or df.shape[1] == 0:
        raise DataError(
            f"df has shape {df.shape}; canaries are drawn from its values, pass a non-empty table."
        )
    m = _check_m(m)
    generator = _check_rng(rng)
    n = len(df)
    source = df.reset_index(drop=True)

    def draw(count: int) -> pd.DataFrame:
        cols = {
            c: source[c].iloc[generator.integers(0, n, count)].reset_index(drop=True)
            for c in source.columns
        }
        return pd.DataFrame(cols, columns=source.columns)

    out = draw(m)
    real = _row_hashes(source)
    if real is None:
        return out
    for _ in range(_REDRAW_ROUNDS):
        hashes = _row_hashes(out)
        if hashes is None:
            break
        clash = pd.Series(hashes).duplicated().to_numpy() | np.isin(hashes, real)
        if not clash.any():
            break
        out = pd.concat([out.loc[~clash], draw(int(clash.sum()))], ignore_index=True)
    return out

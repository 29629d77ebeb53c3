"""One-run canary audit (privacy.audit): the epsilon lower bound and the audit around it.

The bound's math is checked against independent computations (the Clopper-Pearson
limit for pure DP, a plain loop over the paper's approximate-DP formula), and its
soundness statistically on mechanisms whose epsilon is known exactly: randomized
response is pure eps-DP, and "reveal the bit with probability delta, else randomized
response" is (eps, delta)-DP.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from privacy.audit import (
    MIN_CANARIES,
    CanaryAudit,
    audit_from_scores,
    audit_p_value,
    draw_inclusion,
    epsilon_lower_bound,
    guess_counts,
    make_canaries,
    run_canary_audit,
)
from synthgen.core.errors import ConfigError, DataError


# ---------------------------------------------------------------- reference mechanisms
def randomized_response(
    m: int, eps: float, rng: np.random.Generator, delta: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of an (eps, delta)-DP mechanism on the inclusion bits.

    Each canary's score is its bit S_i in {-1, +1}, flipped with probability
    1 / (1 + e^eps) (pure eps-DP); with probability ``delta`` the bit is revealed outright
    (score +-10, always ranked first / last), which makes it (eps, delta)-DP.
    """
    included = draw_inclusion(m, rng)
    s = np.where(included, 1.0, -1.0)
    flip = rng.random(m) < 1.0 / (1.0 + math.exp(eps))
    scores = np.where(flip, -s, s)
    reveal = rng.random(m) < delta
    scores[reveal] = 10.0 * s[reveal]
    return scores, included


def reference_p_value(v: int, r: int, eps: float, delta: float, m: int) -> float:
    """The paper's approximate-DP p-value, written as a plain loop over the tail."""
    q = 1.0 / (1.0 + math.exp(-eps))

    def f(k: int) -> float:  # P[Binomial(r, q) >= k]
        return 1.0 if k <= 0 else float(stats.binom.sf(k - 1, r, q))

    alpha = max([(f(v - i) - f(v)) / i for i in range(1, v + 1)], default=0.0)
    return min(f(v) + 2 * m * delta * alpha, 1.0)


# ----------------------------------------------------------------------- the bound
@pytest.mark.parametrize(
    ("correct", "guesses"), [(10, 10), (40, 40), (150, 200), (1762, 2000), (70, 100)]
)
def test_pure_dp_bound_is_the_clopper_pearson_limit(correct: int, guesses: int) -> None:
    # P[Bin(r, q) >= v] = beta has the closed-form root q = Beta(v, r - v + 1).ppf(beta)
    q = stats.beta.ppf(0.05, correct, guesses - correct + 1)
    expected = max(0.0, float(special.logit(q)))
    assert epsilon_lower_bound(correct, guesses, beta=0.05) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    ("correct", "guesses", "m", "delta"),
    [(40, 40, 200, 1e-5), (150, 200, 1000, 1e-4), (1762, 2000, 10_000, 1e-5), (9, 10, 10, 0.01)],
)
def test_approximate_dp_p_value_matches_the_paper_formula(
    correct: int, guesses: int, m: int, delta: float
) -> None:
    for eps in (0.0, 0.5, 1.0, 2.0, 4.0):
        assert audit_p_value(correct, guesses, eps, delta, m=m) == pytest.approx(
            reference_p_value(correct, guesses, eps, delta, m), rel=1e-9, abs=1e-12
        )
    bound = epsilon_lower_bound(correct, guesses, delta, 0.05, m=m)
    if bound > 0:  # the bound sits at the crossing: refuted just below, not just above
        assert reference_p_value(correct, guesses, bound, delta, m) < 0.05
        assert reference_p_value(correct, guesses, bound + 1e-4, delta, m) >= 0.05


def test_random_guessing_gives_zero() -> None:
    assert epsilon_lower_bound(50, 100) == 0.0
    assert epsilon_lower_bound(0, 100) == 0.0
    assert epsilon_lower_bound(0, 0) == 0.0
    rng = np.random.default_rng(0)
    zeros = 0
    for _ in range(40):
        included = draw_inclusion(500, rng)
        scores = rng.normal(size=500)  # independent of the bits
        zeros += audit_from_scores(scores, included, 0.0).epsilon_lower_bound == 0.0
    assert zeros >= 34  # each run is positive with probability <= 0.05


def test_bound_is_monotone_in_correct_and_reaches_the_all_correct_value() -> None:
    bounds = [epsilon_lower_bound(v, 200) for v in range(0, 201, 5)]
    assert all(a <= b for a, b in zip(bounds, bounds[1:], strict=False))
    assert bounds[20] == 0.0 and bounds[-1] > bounds[-2] > 0.0
    # all 200 right: q^200 = 0.05
    assert bounds[-1] == pytest.approx(special.logit(0.05 ** (1 / 200)), abs=1e-5)


def test_delta_lowers_the_bound() -> None:
    pure = epsilon_lower_bound(180, 200, 0.0)
    slight = epsilon_lower_bound(180, 200, 1e-6, m=1000)
    more = epsilon_lower_bound(180, 200, 1e-4, m=1000)
    assert pure > slight > more > 0.0
    # 2 m delta large: nothing can be refuted
    assert epsilon_lower_bound(180, 200, 0.01, m=1000) == 0.0


# ------------------------------------------------- soundness on known mechanisms
def test_randomized_response_bound_stays_below_epsilon() -> None:
    eps, runs, beta = 1.0, 200, 0.05
    rng = np.random.default_rng(1)
    over = 0
    bounds = []
    for _ in range(runs):
        scores, included = randomized_response(1000, eps, rng)
        audit = audit_from_scores(scores, included, 0.0, beta)
        bounds.append(audit.epsilon_lower_bound)
        over += audit.epsilon_lower_bound > eps
    # over ~ Binomial(runs, <= beta); the limit is that law's 99.9% quantile
    assert over <= stats.binom.ppf(0.999, runs, beta)
    assert np.median(bounds) > 0.5 * eps  # and the audit is not trivially zero


def test_randomized_response_bound_approaches_epsilon_for_many_canaries() -> None:
    eps = 2.0
    scores, included = randomized_response(10_000, eps, np.random.default_rng(2))
    audit = audit_from_scores(scores, included, 0.0)
    assert audit.m == 10_000 and audit.k_plus == audit.k_minus == 1000
    assert 0.6 * eps <= audit.epsilon_lower_bound <= eps
    with_delta = audit_from_scores(scores, included, 1e-5)
    assert 0.6 * eps <= with_delta.epsilon_lower_bound < audit.epsilon_lower_bound


def test_delta_term_is_needed_for_an_approximate_dp_mechanism() -> None:
    # revealing ~5% of the bits: (1, 0.05)-DP but far from 1-DP; analysing it as pure
    # DP over-claims, the delta analysis does not
    eps, delta, runs = 1.0, 0.05, 50
    rng = np.random.default_rng(3)
    over_pure = over_delta = 0
    for _ in range(runs):
        scores, included = randomized_response(1000, eps, rng, delta=delta)
        over_pure += audit_from_scores(scores, included, 0.0).epsilon_lower_bound > eps
        over_delta += audit_from_scores(scores, included, delta).epsilon_lower_bound > eps
    assert over_pure > runs // 2
    assert over_delta <= stats.binom.ppf(0.999, runs, 0.05)


# ----------------------------------------------------------------------- guessing
def test_guess_counts_by_hand() -> None:
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.5, 0.3])
    included = np.array([True, False, False, False, True, True])
    # top 2: indices 0 (in, right), 2 (out, wrong); bottom 2: 1 (out, right), 3 (out, right)
    assert guess_counts(scores, included, 2, 2) == (3, 4)
    assert guess_counts(scores, included, 1, 0) == (1, 1)
    assert guess_counts(scores, included, 0, 3) == (2, 3)  # 1, 3 right; 5 (in) wrong
    # ties break by position, never by the bits
    assert guess_counts(np.zeros(4), [False, True, True, True], 1, 1) == (0, 2)
    assert guess_counts(np.zeros(4), [True, True, False, False], 1, 1) == (2, 2)
    assert guess_counts(-np.zeros(4), [True, False, True, False], 2, 1) == (2, 3)


def test_k_grid_is_bonferroni_corrected() -> None:
    scores, included = randomized_response(1000, 2.0, np.random.default_rng(4))
    grid = [(50, 50), (100, 100), (200, 200)]
    audit = audit_from_scores(scores, included, 0.0, 0.05, k_grid=grid)
    expected = max(
        epsilon_lower_bound(*guess_counts(scores, included, kp, km), 0.0, 0.05 / 3)
        for kp, km in grid
    )
    assert audit.epsilon_lower_bound == pytest.approx(expected)
    assert audit.k_candidates == 3 and audit.beta == 0.05
    assert (audit.k_plus, audit.k_minus) in grid
    # each candidate at the full beta would have given a larger bound: the correction bites
    fixed = audit_from_scores(scores, included, 0.0, 0.05, audit.k_plus, audit.k_minus)
    assert fixed.epsilon_lower_bound > audit.epsilon_lower_bound


def test_default_k_and_result_round_trip() -> None:
    scores, included = randomized_response(300, 1.0, np.random.default_rng(5))
    audit = audit_from_scores(scores, included, 1e-5, claimed_epsilon=1.0)
    assert (audit.k_plus, audit.k_minus, audit.guesses) == (30, 30, 60)
    assert audit.correct == guess_counts(scores, included, 30, 30)[0]
    data = json.loads(json.dumps(audit.to_dict()))
    assert data["consistent"] == audit.consistent
    assert CanaryAudit.from_dict(data) == audit
    assert CanaryAudit.from_dict({**data, "claimed_epsilon": None}).consistent
    one_sided = audit_from_scores(scores, included, 0.0, k_plus=12)
    assert (one_sided.k_plus, one_sided.k_minus) == (12, 30)


def test_draw_inclusion_is_a_fair_coin() -> None:
    bits = draw_inclusion(20_000, np.random.default_rng(6))
    assert bits.dtype == np.bool_ and bits.shape == (20_000,)
    assert abs(bits.mean() - 0.5) < 0.015
    assert np.array_equal(draw_inclusion(50, 7), draw_inclusion(50, np.random.default_rng(7)))


# ------------------------------------------------------------------------ end to end
def _row_keys(frame: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def test_memorising_model_gives_a_large_bound(mixed_frame: pd.DataFrame) -> None:
    train = mixed_frame
    canaries = make_canaries(train, 200, np.random.default_rng(8))
    seen: dict[str, int] = {}

    def fit(frame: pd.DataFrame) -> set[int]:
        seen["rows"] = len(frame)
        return set(_row_keys(frame).tolist())

    def score(model: set[int], rows: pd.DataFrame) -> np.ndarray:
        return np.isin(_row_keys(rows), list(model)).astype(float)

    audit = run_canary_audit(
        train, canaries, fit, score, np.random.default_rng(9), delta=1e-5, claimed_epsilon=1.0
    )
    assert audit.correct == audit.guesses == 40
    assert seen["rows"] > len(train)  # the included canaries were trained on
    assert audit.epsilon_lower_bound > 2.0
    assert not audit.consistent  # a memoriser refutes a claim of epsilon = 1


def test_model_that_ignores_data_gives_about_zero(mixed_frame: pd.DataFrame) -> None:
    canaries = make_canaries(mixed_frame, 200, np.random.default_rng(10))
    bounds = [
        run_canary_audit(
            mixed_frame,
            canaries,
            fit=lambda frame: None,
            score=lambda model, rows: np.zeros(len(rows)),
            rng=np.random.default_rng(seed),
            delta=1e-5,
            claimed_epsilon=1.0,
        ).epsilon_lower_bound
        for seed in range(20)
    ]
    assert sum(b > 0 for b in bounds) <= 3
    assert max(bounds) < 1.0


def test_make_canaries_recombines_column_values(mixed_frame: pd.DataFrame) -> None:
    canaries = make_canaries(mixed_frame, 150, np.random.default_rng(11))
    assert len(canaries) == 150
    assert list(canaries.columns) == list(mixed_frame.columns)
    assert (canaries.dtypes == mixed_frame.dtypes).all()
    for column in mixed_frame.columns:
        real = set(mixed_frame[column].dropna().tolist())
        assert set(canaries[column].dropna().tolist()) <= real, column
    keys = _row_keys(canaries)
    assert not np.isin(keys, _row_keys(mixed_frame)).any()  # no canary is a real row
    assert len(set(keys.tolist())) == 150  # and no two canaries are the same
    again = make_canaries(mixed_frame, 150, np.random.default_rng(11))
    pd.testing.assert_frame_equal(canaries, again)


def test_make_canaries_redraws_clashes() -> None:
    # 10 real rows on the diagonal of a 10 x 10 grid: about one draw in ten is a real
    # row, and 40 draws from 100 cells collide with each other often
    df = pd.DataFrame({"x": np.arange(10), "y": [f"s{i}" for i in range(10)]})
    for seed in range(10):
        keys = _row_keys(make_canaries(df, 40, seed))
        assert len(keys) == 40 and len(set(keys.tolist())) == 40
        assert not np.isin(keys, _row_keys(df)).any()
    # when every combination is a real row, clashes cannot be avoided: still m rows
    full = pd.DataFrame({"a": [0, 1, 0, 1], "b": [0, 0, 1, 1]})
    assert len(make_canaries(full, 12, 0)) == 12


def test_make_canaries_keeps_categorical_dtype() -> None:
    df = pd.DataFrame(
        {
            "c": pd.Categorical(["a", "b", "c", "a"] * 5, categories=["a", "b", "c", "z"]),
            "x": np.arange(20, dtype="int16"),
            "n": pd.array([1, None, 3, 4] * 5, dtype="Int64"),
        }
    )
    canaries = make_canaries(df, 30, 0)
    assert canaries["c"].dtype == df["c"].dtype
    assert canaries["x"].dtype == np.int16 and canaries["n"].dtype == "Int64"


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: epsilon_lower_bound(5, 4), "correct=5 exceeds guesses=4"),
        (lambda: epsilon_lower_bound(5, 10, beta=0.0), "beta"),
        (lambda: epsilon_lower_bound(5, 10, beta=1.5), "beta"),
        (lambda: epsilon_lower_bound(5, 10, delta=1e-5), "m is required"),
        (lambda: epsilon_lower_bound(5, 10, delta=1e-5, m=5), "m=5 is smaller"),
        (lambda: epsilon_lower_bound(5, 10, delta=-0.1), "delta"),
        (lambda: epsilon_lower_bound(-1, 10), "correct"),
        (lambda: epsilon_lower_bound(2.5, 10), "correct"),
        (lambda: audit_p_value(5, 10, -1.0), "epsilon"),
        (lambda: guess_counts([1.0, 2.0], [True], 1, 0), "scores has 2 entries"),
        (lambda: guess_counts([1.0, 2.0], [True, False], 2, 1), "exceeds the 2 canaries"),
        (lambda: guess_counts([1.0, 2.0], [True, False], 0, 0), "no guesses"),
        (lambda: guess_counts([1.0, 2.0], [2, 0], 1, 0), "included must hold booleans"),
        (lambda: audit_from_scores(np.zeros(5), np.ones(5, bool), 0.0), "too few"),
        (lambda: audit_from_scores(np.zeros(50), np.ones(50, bool), 0.0, beta=1), "beta"),
        (
            lambda: audit_from_scores(np.zeros(50), np.ones(50, bool), 0.0, k_grid=[]),
            "k_grid is empty",
        ),
        (
            lambda: audit_from_scores(np.zeros(50), np.ones(50, bool), 0.0, claimed_epsilon=-1),
            "claimed_epsilon",
        ),
        (lambda: draw_inclusion(3, 0), "too few"),
        (lambda: draw_inclusion(100, "seed"), "rng"),
        (lambda: make_canaries(pd.DataFrame({"a": [1, 2]}), 5, 0), "too few"),
    ],
)
def test_bad_arguments_raise_config_error(call, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        call()


def test_bad_data_raises_data_error() -> None:
    with pytest.raises(DataError, match="NaN for 1 canaries"):
        guess_counts([1.0, np.nan, 0.0], [True, False, True], 1, 1)
    with pytest.raises(DataError, match="non-empty"):
        make_canaries(pd.DataFrame({"a": []}), 20, 0)
    train = pd.DataFrame({"a": np.arange(30)})
    canaries = make_canaries(train, 20, 0)
    with pytest.raises(DataError, match="differ from train columns"):
        run_canary_audit(train, canaries.rename(columns={"a": "b"}), len, len, 0, 0.0)
    with pytest.raises(DataError, match="one number per canary"):
        run_canary_audit(train, canaries, lambda f: None, lambda mo, r: np.zeros(3), 0, 0.0)
    assert MIN_CANARIES == 10

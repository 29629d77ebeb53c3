"""DP preprocessing: the mechanisms against independent computations, and the release.

The mechanisms are checked against what the papers say they are: the threshold
formula against scipy's Laplace tail, the survival of a key seen once against a
binomial bound, the Laplace scale against its variance, and the exponential mechanism's
output distribution against exact probabilities computed here with plain Python, and
``noisy_range``'s cells, threshold and post-processing against a recomputation here. The
release is checked for what a privacy argument relies on: public domains leak nothing and
cost no delta, rare categories are dropped (and made null by ``apply``), costs never
exceed the budget, and a missing budget is refused by column name.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from privacy.mechanisms import (
    candidate_grid,
    exponential_bound,
    exponential_quantile,
    laplace_counts,
    noisy_range,
    noisy_range_histogram,
    range_cells,
    range_threshold,
    threshold,
    thresholded_histogram,
)
from privacy.preprocessing import (
    RANGE_BETA,
    RANGE_FAR_BETA,
    RANGE_REACH,
    RANGE_SHARE,
    ColumnRelease,
    PreprocessingRelease,
    columns_needing_release,
    release_statistics,
)
from synthgen.core.errors import ConfigError, DataError, ModelFileError


@dataclass
class Spec:
    """A duck-typed column spec, as ``synthgen.schema.ColumnSpec`` plus ``public``."""

    name: str
    kind: str
    dtype: str = "object"
    nullable: bool = False
    min: Any = None
    max: Any = None
    integer: bool = False
    categories: list[Any] | None = None
    public: bool = False


#: Ranks for the exponential-mechanism tests (those mechanisms are kept, not released).
P_LOW, P_HIGH = 0.005, 0.995


# ----------------------------------------------------------------- mechanisms
def test_threshold_formula_matches_the_laplace_tail():
    for eps, delta in [(0.5, 1e-6), (1.0, 0.05), (3.0, 1e-9)]:
        t = threshold(eps, delta)
        assert t == pytest.approx(1 + math.log(1 / (2 * delta)) / eps, rel=1e-12)
        # P[1 + Laplace(1/eps) > t] computed by scipy is exactly delta
        assert stats.laplace.sf(t - 1, scale=1 / eps) == pytest.approx(delta, rel=1e-9)
    with pytest.raises(ConfigError, match="delta"):
        threshold(1.0, 0.0)
    with pytest.raises(ConfigError, match="epsilon"):
        threshold(0.0, 1e-6)


def test_a_key_seen_once_survives_in_at_most_delta_of_trials():
    eps, delta, trials = 1.0, 0.05, 4000
    rng = np.random.default_rng(0)
    survived = sum(
        "once" in thresholded_histogram({"once": 1}, eps, delta, rng) for _ in range(trials)
    )
    # Binomial(4000, delta) at the worst case; 1e-6 tails on either side
    assert survived <= stats.binom.ppf(1 - 1e-6, trials, delta)
    assert survived >= stats.binom.ppf(1e-6, trials, delta)  # the threshold is not wasteful
    # a key seen in many rows is (almost surely) released, with a noisy count near its own
    out = thresholded_histogram({"many": 500, "once": 1}, eps, 1e-6, np.random.default_rng(1))
    assert set(out) == {"many"} and abs(out["many"] - 500) < 20
    assert thresholded_histogram({}, eps, delta, rng) == {}


def test_laplace_noise_has_scale_one_over_epsilon():
    eps = 0.5
    counts = np.full(20_000, 7.0)
    noisy = laplace_counts(counts, eps, np.random.default_rng(2))
    assert noisy.shape == counts.shape and np.all(counts == 7.0)  # input untouched
    noise = noisy - 7.0
    assert np.std(noise) == pytest.approx(math.sqrt(2) / eps, rel=0.05)
    assert np.mean(np.abs(noise)) == pytest.approx(1 / eps, rel=0.05)
    assert stats.kstest(noise, stats.laplace(scale=1 / eps).cdf).pvalue > 1e-3
    with pytest.raises(ConfigError, match="epsilon"):
        laplace_counts(counts, -1.0, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="rng"):
        laplace_counts(counts, 1.0, np.random.RandomState(0))


def test_exponential_quantile_draws_from_exp_eps_u_over_2():
    candidates = [-1.0, 0.0, 1.0, 2.0, 3.0, 4.0]
    values = [0.5, 1.5, 1.5, 2.5, 3.5]
    p, eps = 0.5, 1.0
    # exact probabilities, computed independently with plain Python
    weights = []
    for c in candidates:
        rank = sum(1 for v in values if v <= c)
        weights.append(math.exp(eps * -abs(rank - p * len(values)) / 2))
    exact = np.array(weights) / sum(weights)
    rng = np.random.default_rng(3)
    draws = 12_000
    picked = [exponential_quantile(values, p, eps, rng, candidates) for _ in range(draws)]
    observed = np.array([picked.count(c) for c in candidates], dtype=float)
    assert stats.chisquare(observed, exact * draws).pvalue > 1e-4
    assert 0.5 * np.abs(observed / draws - exact).sum() < 0.03


def test_exponential_quantile_is_close_for_many_rows():
    rng = np.random.default_rng(4)
    values = rng.normal(50, 10, 20_000)
    grid = candidate_grid()
    ranks = np.searchsorted(np.sort(values), grid, side="right")
    for p in (P_LOW, 0.5, P_HIGH):
        out = exponential_quantile(values, p, 1.0, rng)
        utility = -np.abs(ranks - p * len(values))
        gap = utility.max() - utility[np.searchsorted(grid, out)]
        # P[gap > 2 (ln |C| + t) / eps] <= exp(-t) (McSherry-Talwar); t = 10
        assert gap <= 2 * (math.log(len(grid)) + 10)
        truth = np.quantile(values, p)
        assert abs(math.log10(out / truth)) <= 1 / 8 + 1e-9  # within one grid step


def test_exponential_quantile_edge_cases():
    rng = np.random.default_rng(5)
    # no values: every candidate equally good, still a candidate
    assert exponential_quantile([], 0.5, 1.0, rng, [1.0, 2.0]) in (1.0, 2.0)
    # utilities of -1e7 do not underflow the draw (Gumbel-max, no exp)
    big = np.arange(20_000_000 // 1000, dtype=float)
    assert exponential_quantile(big, 0.5, 50.0, rng, [0.0, 10_000.0, 1e9]) == 10_000.0
    with pytest.raises(ConfigError, match="NaN"):
        exponential_quantile([1.0, np.nan], 0.5, 1.0, rng)
    with pytest.raises(ConfigError, match="p="):
        exponential_quantile([1.0], 1.5, 1.0, rng)


def _interval_probabilities(candidates, values, p, eps, side):
    """exp(eps * u / 2) / Z of ``exponential_bound``, computed with plain Python."""
    n, weights = len(values), []
    for i, c in enumerate(candidates):
        if side == "low":
            nxt = candidates[i + 1] if i + 1 < len(candidates) else math.inf
            a = sum(1 for v in values if v < c)
            b = sum(1 for v in values if v < nxt)
        else:
            prev = candidates[i - 1] if i > 0 else -math.inf
            a = sum(1 for v in values if v <= prev)
            b = sum(1 for v in values if v <= c)
        distance = max(0.0, a - p * n, p * n - b)
        weights.append(math.exp(-eps * distance / 2))
    return np.array(weights) / sum(weights)


@pytest.mark.parametrize("side", ["low", "high"])
def test_exponential_bound_draws_from_its_interval_utility(side):
    candidates = [-1.0, 0.0, 1.0, 2.0, 3.0]
    values = [0.0, 0.0, 0.0, 1.5, 2.5, 2.5]  # an atom on a candidate
    p, eps, draws = (0.1 if side == "low" else 0.9), 1.5, 12_000
    exact = _interval_probabilities(candidates, values, p, eps, side)
    rng = np.random.default_rng(13)
    picked = [exponential_bound(values, p, eps, rng, side, candidates) for _ in range(draws)]
    observed = np.array([picked.count(c) for c in candidates], dtype=float)
    assert stats.chisquare(observed, exact * draws).pvalue > 1e-4
    assert 0.5 * np.abs(observed / draws - exact).sum() < 0.03
    with pytest.raises(ConfigError, match="side"):
        exponential_bound(values, p, eps, rng, "middle", candidates)


def test_exponential_bound_stays_next_to_an_atom_where_the_rank_utility_does_not():
    """Why the release uses ``exponential_bound``: half the values are 0 (a zero-inflated
    amount). Every candidate below 0 has rank 0, which beats the rank of 0 itself, so
    the plain rank utility draws the low bound from anywhere down to -1e19."""
    rng = np.random.default_rng(14)
    n = 20_000
    values = np.where(rng.random(n) < 0.5, 0.0, rng.lognormal(3, 1, n))
    ages = rng.integers(17, 90, n).astype(float)  # an atom of 1.4% at the minimum
    plain = [exponential_quantile(values, P_LOW, 1.0, rng) for _ in range(20)]
    assert sum(v < -1.0 for v in plain) >= 10  # most draws are far from the data
    assert all(exponential_bound(values, P_LOW, 1.0, rng, "low") == 0.0 for _ in range(20))
    grid = candidate_grid()
    below_17 = grid[np.searchsorted(grid, 17.0) - 1]  # 13.34: the candidate under 17
    assert all(exponential_bound(ages, P_LOW, 1.0, rng, "low") == below_17 for _ in range(20))
    top = exponential_bound(values, P_HIGH, 1.0, rng, "high")
    assert np.quantile(values, P_HIGH) <= top <= np.quantile(values, P_HIGH) * 10 ** (1 / 8)


def test_candidate_grid_is_public_sorted_and_symmetric():
    grid = candidate_grid()
    assert np.all(np.diff(grid) > 0)
    assert np.allclose(grid, -grid[::-1]) and 0.0 in grid
    positive = grid[grid > 0]
    assert positive.min() == pytest.approx(1e-6) and positive.max() == pytest.approx(1e19)
    assert np.allclose(positive[1:] / positive[:-1], 10 ** (1 / 8))
    assert grid.min() < -1.7e9 < 1.7e9 < grid.max()  # datetimes in seconds fit
    assert np.array_equal(grid, candidate_grid())  # data-independent


# ----------------------------------------------------------------- noisy range
def _cell_of(value: float, grid: list[float]) -> tuple[float, float]:
    """The edges of the cell holding ``value``, found by a plain scan of the grid."""
    value = min(max(value, grid[0]), grid[-1])
    for c in grid:
        if value == c:
            return c, c
    for a, b in zip(grid, grid[1:], strict=False):
        if a < value < b:
            return a, b
    raise AssertionError("unreachable")


def test_range_cells_partition_the_line_with_a_cell_per_candidate():
    grid = [-1.0, 0.0, 1.0, 10.0]
    values = [-5.0, -1.0, -0.5, 0.0, 0.0, 0.0, 0.3, 1.0, 7.0, 10.0, 99.0]
    counts, lower, upper = range_cells(values, [10.0, 0.0, 1.0, -1.0, 1.0])  # unsorted, dupe
    assert len(counts) == 2 * len(grid) - 1
    assert lower.tolist() == [-1, -1, 0, 0, 1, 1, 10] and upper.tolist() == [-1, 0, 0, 1, 1, 10, 10]
    expected = [0.0] * len(counts)
    for v in values:  # independently: which (lower, upper) pair holds v
        cell = _cell_of(v, grid)
        expected[list(zip(lower, upper, strict=True)).index(cell)] += 1
    assert counts.tolist() == expected
    assert counts[2] == 3  # the zeros have the point cell {0} to themselves
    assert counts.sum() == len(values)  # every row in exactly one cell: sensitivity 1
    # adding one row changes exactly one cell by exactly 1
    more, _, _ = range_cells([*values, 0.5], grid)
    assert np.abs(more - counts).sum() == 1
    with pytest.raises(ConfigError, match="NaN"):
        range_cells([np.nan], grid)
    with pytest.raises(ConfigError, match="candidates"):
        range_cells([1.0], [])


def test_noisy_range_histogram_adds_laplace_one_over_epsilon_to_every_cell():
    eps = 0.4
    values = np.random.default_rng(20).lognormal(3, 1, 500)
    exact, lower, upper = range_cells(values)
    rng = np.random.default_rng(21)
    noise = []
    for _ in range(30):
        noisy, lo, hi = noisy_range_histogram(values, eps, rng)
        assert np.array_equal(lo, lower) and np.array_equal(hi, upper)
        noise.append(noisy - exact)
    noise = np.concatenate(noise)  # empty cells included: 30 * 805 draws
    assert np.std(noise) == pytest.approx(math.sqrt(2) / eps, rel=0.05)
    assert stats.kstest(noise, stats.laplace(scale=1 / eps).cdf).pvalue > 1e-3


def test_range_threshold_formula():
    for k, eps, beta in [(805, 1.0, 0.05), (7, 0.01, 0.2), (1001, 3.0, 1e-3)]:
        tau = range_threshold(k, eps, beta)
        assert tau == pytest.approx(math.log(k / (2 * beta)) / eps, rel=1e-12)
        # K empty cells, each above tau with P = Laplace tail: union bound is exactly beta
        assert k * stats.laplace.sf(tau, scale=1 / eps) == pytest.approx(beta, rel=1e-9)
    with pytest.raises(ConfigError, match="beta"):
        range_threshold(10, 1.0, 0.0)
    with pytest.raises(ConfigError, match="n_cells"):
        range_threshold(0, 1.0, 0.05)
    with pytest.raises(ConfigError, match="beta"):
        noisy_range([1.0], 1.0, np.random.default_rng(0), beta=1.5)


def test_noisy_range_is_post_processing_of_its_histogram():
    """Recompute the threshold, the selection and the fallback here from the same draw."""
    values = np.random.default_rng(22).normal(100, 30, 300)
    for eps, seed in [(0.5, 1), (0.05, 2), (0.002, 3), (0.002, 4)]:
        noisy, lower, upper = noisy_range_histogram(values, eps, np.random.default_rng(seed))
        tau = math.log(len(noisy) / (2 * 0.05)) / eps
        above = [j for j, v in enumerate(noisy) if v > tau]
        if above:
            expected = (lower[above[0]], upper[above[-1]])
        else:
            j = int(np.argmax(noisy))
            expected = (lower[j], upper[j])
        assert noisy_range(values, eps, np.random.default_rng(seed)) == expected


def _grouped_range(noisy, lower, upper, eps, beta, far_beta, reach):
    """``noisy_range``'s far_beta rule, recomputed with plain loops."""
    k = len(noisy)
    tau, tau_far = math.log(k / (2 * beta)) / eps, math.log(k / (2 * far_beta)) / eps
    fullest = max(range(k), key=lambda j: noisy[j])
    occupied = [j for j in range(k) if noisy[j] > tau]
    if not occupied:
        return lower[fullest], upper[fullest]
    groups, current = [], [occupied[0]]
    for j in occupied[1:]:
        if j - current[-1] <= reach:
            current.append(j)
        else:
            groups.append(current)
            current = [j]
    groups.append(current)
    kept = [
        g
        for g in groups
        if len(g) >= 2 or any(noisy[j] > tau_far for j in g) or fullest in range(g[0], g[-1] + 1)
    ]
    return lower[kept[0][0]], upper[kept[-1][-1]]


def test_noisy_range_far_beta_rule_is_post_processing_of_its_histogram():
    rng = np.random.default_rng(26)
    # a bulk, a spike three decades up, and a thin tail: every branch of the rule
    values = np.concatenate([rng.normal(100, 20, 400), np.full(40, 2e5), rng.uniform(0, 10, 8)])
    for eps, seed, reach in [(0.5, 1, 16), (0.1, 2, 16), (0.05, 3, 4), (0.003, 4, 16), (2, 5, 0)]:
        noisy, lower, upper = noisy_range_histogram(values, eps, np.random.default_rng(seed))
        expected = _grouped_range(noisy, lower, upper, eps, 0.05, 1e-3, reach)
        out = noisy_range(values, eps, np.random.default_rng(seed), None, 0.05, 1e-3, reach)
        assert out == expected, (eps, seed, reach)
    # the spike is kept when it clears the strict threshold, cut when it only clears tau
    # (seeded draws; at 0.3, tau = 30 < 40 rows < tau_far = 43)
    assert noisy_range(values, 5.0, rng, far_beta=1e-3)[1] > 2e5
    assert noisy_range(values, 0.3, np.random.default_rng(0), far_beta=1e-3)[1] < 1e3
    assert noisy_range(values, 0.3, np.random.default_rng(0))[1] > 2e5  # the plain rule
    with pytest.raises(ConfigError, match="far_beta"):
        noisy_range(values, 1.0, rng, beta=0.01, far_beta=0.05)
    with pytest.raises(ConfigError, match="reach"):
        noisy_range(values, 1.0, rng, far_beta=1e-3, reach=-1)


def test_noisy_range_with_a_large_epsilon_spans_the_cells_of_min_and_max():
    grid = candidate_grid().tolist()
    rng = np.random.default_rng(23)
    datasets = [
        rng.normal(50, 10, 400),
        rng.uniform(-3e4, 2e3, 50),
        np.array([0.0, 0.0, 3.7, 10.0]),  # exact candidates at both ends
        np.array([-1e25, 5.0, 1e30]),  # beyond the grid: clipped onto its ends
        np.array([42.0]),
    ]
    for values in datasets:
        out = noisy_range(values, 1e4, rng, beta=1e-6)
        assert out == (_cell_of(values.min(), grid)[0], _cell_of(values.max(), grid)[1])
    assert noisy_range([0.0, 0.0, 10.0], 1e4, rng, beta=1e-6) == (0.0, 10.0)
    assert noisy_range([0.5, 0.7], 1e4, rng, [0.0, 1.0], beta=1e-6) == (0.0, 1.0)


def test_noisy_range_empty_cells_are_rarely_taken_for_data():
    """One occupied cell of 60 rows: a wider range means an empty cell crossed tau."""
    eps, beta, trials = 2.0, 0.05, 1500
    values = np.full(60, 5.0)  # in (4.22, 5.62); tau = ln(805 / 0.1) / 2 = 4.5 rows
    rng = np.random.default_rng(24)
    cell = _cell_of(5.0, candidate_grid().tolist())
    wider = sum(noisy_range(values, eps, rng, beta=beta) != cell for _ in range(trials))
    assert wider <= stats.binom.ppf(1 - 1e-6, trials, beta)
    assert wider >= stats.binom.ppf(1e-6, trials, beta / 2)  # the union bound is nearly tight
    # with far_beta, an edge more than reach cells away needs the strict threshold (or two
    # false positives next to each other): rarer still
    far_beta, reach = 2e-3, 16
    step = 10 ** (reach / 2 / 8)  # reach cells = reach / 2 grid steps of 10**(1/8)
    far = 0
    for _ in range(trials):
        low, high = noisy_range(values, eps, rng, beta=beta, far_beta=far_beta, reach=reach)
        far += low < cell[0] / step or high > cell[1] * step
    n_cells = 2 * len(candidate_grid()) - 1
    assert far <= stats.binom.ppf(1 - 1e-6, trials, far_beta + 2 * reach * beta**2 / n_cells)


def test_noisy_range_keeps_zero_as_the_low_bound_of_a_zero_heavy_column():
    rng = np.random.default_rng(25)
    n = 5000
    values = np.where(rng.random(n) < 0.9, 0.0, rng.lognormal(6, 0.5, n))  # 0 or ~400
    plain = [noisy_range(values, 0.5, rng) for _ in range(20)]
    assert sum(low == 0.0 and 500 < high < 1e4 for low, high in plain) >= 16  # 1 - beta
    for _ in range(20):  # the release's rule: a far false positive is 50 times rarer
        low, high = noisy_range(values, 0.5, rng, far_beta=RANGE_FAR_BETA)
        assert low == 0.0 and 500 < high < 1e4
    # the exponential mechanism at the same cost does not (the reason for noisy_range)
    plain = [exponential_quantile(values, P_LOW, 0.05, rng) for _ in range(20)]
    assert sum(v < -1.0 for v in plain) >= 10


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    import synthgen as sg

    return sg.datasets.load("adult")


#: (low range, high range) a sensible bound falls in, per Adult column.
_ADULT_SENSIBLE = {
    "age": ((10, 20), (70, 140)),  # true range 17 .. 90
    # 92% zeros, max 99999; at 0.1 no positive cell holds tau = 2,700 rows, so [0, 0]
    "capital-gain": ((0, 0), (1e3, 1.4e5)),
    "fnlwgt": ((1e4, 1.4e5), (2e5, 2e6)),  # 12285 .. 1.48e6
    "hours-per-week": ((1, 32), (42, 140)),  # 1 .. 99, 55% at 40
}


@pytest.mark.parametrize("preprocessing_epsilon", [0.1, 1.0])
@pytest.mark.parametrize("rule", ["plain", "release"])
def test_noisy_range_is_sensible_on_adult_at_realistic_budgets(adult, preprocessing_epsilon, rule):
    """Adult: 15 columns share the preprocessing epsilon, half of a column's goes to range.

    ``plain``: the default rule (beta = 0.05 for every cell); ``release``: the far_beta
    rule the release uses, which also keeps every bound within a decade of the data."""
    eps = preprocessing_epsilon / 15 * RANGE_SHARE
    options = {"beta": RANGE_BETA}
    if rule == "release":
        options.update(far_beta=RANGE_FAR_BETA, reach=RANGE_REACH)
    for name, ((lo_min, lo_max), (hi_min, hi_max)) in _ADULT_SENSIBLE.items():
        values = adult[name].to_numpy(dtype=float)
        if name == "capital-gain" and preprocessing_epsilon < 1:
            hi_min = 0.0
        good = wild = 0
        for seed in range(20):
            low, high = noisy_range(values, eps, np.random.default_rng(seed), **options)
            low, high = math.floor(low), math.ceil(high)  # integer columns
            good += lo_min <= low <= lo_max and hi_min <= high <= hi_max and low <= high
            wild += low < min(-1.0, values.min() / 10) or high > 10 * values.max()
        assert good >= (16 if rule == "plain" else 18), (name, preprocessing_epsilon, good)
        if rule == "release":
            assert wild == 0, (name, preprocessing_epsilon, wild)


# ----------------------------------------------------------------- the release
def _frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "color": rng.choice(["red", "green"], n),
            "flag": rng.random(n) < 0.4,
            "amount": rng.uniform(0, 100, n),
        }
    )


PUBLIC_SPECS = [
    Spec("color", "categorical", categories=["red", "green", "blue"], public=True),
    Spec("flag", "boolean", "bool", categories=[False, True]),
    Spec("amount", "numerical", "float64", min=0.0, max=100.0, public=True),
]


def test_public_domains_cost_no_delta_and_leak_no_category():
    df = _frame()
    release = release_statistics(df, PUBLIC_SPECS, 1.0, 1e-6, np.random.default_rng(0))
    assert release.delta == 0 and all(c.delta == 0 for c in release.columns.values())
    assert release.epsilon == pytest.approx(1.0)
    color = release.columns["color"]
    assert color.public and color.categories == ["red", "green", "blue"]  # declared order
    assert len(color.counts) == 3 and np.all(color.counts >= 0)
    assert release.columns["flag"].categories == [False, True]
    amount = release.columns["amount"]
    assert (amount.low, amount.high, amount.public) == (0.0, 100.0, True)
    assert columns_needing_release(PUBLIC_SPECS) == []


def test_a_rare_category_is_dropped_and_apply_makes_it_null():
    values = ["a"] * 400 + ["b"] * 300 + ["SECRET_RARE"]
    df = pd.DataFrame({"city": values, "n": np.arange(len(values)) % 7})
    before = df.copy()
    specs = [Spec("city", "categorical"), Spec("n", "numerical", "int64", integer=True)]
    release = release_statistics(df, specs, 2.0, 1e-6, np.random.default_rng(1))
    city = release.columns["city"]
    assert city.categories == ["a", "b"] and not city.public
    assert city.delta == 1e-6 and release.delta == 1e-6
    assert "SECRET_RARE" not in json.dumps(release.to_dict())
    assert city.spec_fields() == {"nullable": True, "categories": ["a", "b"]}
    out = release.apply(df)
    pd.testing.assert_frame_equal(df, before)  # input untouched
    assert out["city"].iloc[-1] is None
    assert out["city"].iloc[:-1].tolist() == values[:-1]
    # a public domain that does not hold the data is an error naming column and value
    wrong = [Spec("city", "categorical", categories=["a", "b"], public=True), specs[1]]
    with pytest.raises(DataError, match=r"'city'.*'SECRET_RARE'"):
        release_statistics(df, wrong, 2.0, 1e-6, np.random.default_rng(1))
    public_release = release_statistics(df.iloc[:-1], wrong, 2.0, 0.0, np.random.default_rng(1))
    with pytest.raises(DataError, match=r"'city'.*'SECRET_RARE'"):
        public_release.apply(df)


def test_apply_clips_continuous_values_into_the_bounds():
    stamps = pd.to_datetime(["2019-06-01", "2020-06-01", "2022-01-01", None])
    df = pd.DataFrame(
        {
            "count": np.array([-5, 3, 20, 7], dtype=np.int64),
            "rate": [-0.5, 0.25, np.nan, 2.0],
            "when": stamps,
            "wait": pd.to_timedelta([-10, 30, 100, 5], unit="s"),
        }
    )
    specs = [
        Spec("count", "numerical", "int64", min=0, max=10, integer=True, public=True),
        Spec("rate", "numerical", "float64", nullable=True, min=0.0, max=1.0, public=True),
        Spec("when", "datetime", "datetime64[ns]", True, "2020-01-01", "2021-01-01", public=True),
        Spec("wait", "numerical", "timedelta64[ns]", min=0.0, max=60.0, public=True),
    ]
    release = release_statistics(df, specs, 1.0, 0.0, np.random.default_rng(2))
    out = release.apply(df)
    assert out["count"].tolist() == [0, 3, 10, 7] and out["count"].dtype == np.int64
    assert out["rate"].iloc[[0, 1, 3]].tolist() == [0.0, 0.25, 1.0] and np.isnan(out["rate"][2])
    assert (
        out["when"].iloc[:3].tolist()
        == pd.to_datetime(["2020-01-01", "2020-06-01", "2021-01-01"]).tolist()
    )
    assert pd.isna(out["when"][3]) and out["when"].dtype == "datetime64[ns]"
    assert out["wait"].dt.total_seconds().tolist() == [0.0, 30.0, 60.0, 5.0]
    assert release.columns["when"].spec_fields()["min"] == "2020-01-01T00:00:00"


def _mixed_frame(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    member = pd.Series(rng.random(n) < 0.3, dtype=object)
    member[rng.random(n) < 0.2] = None
    return pd.DataFrame(
        {
            "user_id": np.arange(1000, 1000 + n),
            "age": rng.integers(18, 90, n),
            "kids": rng.integers(0, 6, n),
            "score": np.where(rng.random(n) < 0.25, np.nan, rng.normal(0, 1, n)),
            "city": rng.choice(["Paris", "Lyon", "Nice", None], n, p=[0.5, 0.3, 0.15, 0.05]),
            "tier": pd.Categorical(rng.choice(["gold", "silver"], n)),
            "member": member,
            "joined": pd.to_datetime("2020-01-01")
            + pd.to_timedelta(rng.integers(0, 1000, n), unit="D"),
            "wait": pd.to_timedelta(rng.integers(0, 3600, n), unit="s"),
        }
    )


def test_pseudo_frame_dtypes_null_share_and_ranges():
    from synthgen.schema import Schema  # the real schema: no ``public`` attribute yet

    df = _mixed_frame()
    schema = Schema.infer(df)
    assert schema["member"].kind == "boolean" and schema["user_id"].kind == "id"
    release = release_statistics(df, schema, 400.0, 1e-6, np.random.default_rng(3))
    n = 20_000
    pseudo = release.pseudo_frame(n, np.random.default_rng(4))
    assert list(pseudo.columns) == list(df.columns) and len(pseudo) == n
    expected = {
        "user_id": "int64",
        "age": "int64",
        "kids": "int64",
        "score": "float64",
        "city": "object",
        "tier": "category",
        "member": "object",  # nullable boolean: object with None
        "joined": "datetime64[ns]",
        "wait": "timedelta64[ns]",
    }
    assert {c: str(t) for c, t in pseudo.dtypes.items()} == expected
    assert pseudo["user_id"].tolist() == list(range(n))
    for name in ("age", "kids", "score", "joined", "wait"):
        col = release.columns[name]
        lo, hi = col.low, col.high
        numbers = pseudo[name].dropna()
        if name == "joined":
            numbers = numbers.astype("int64") / 1e9
        elif name == "wait":
            numbers = numbers.dt.total_seconds()
        assert numbers.min() >= lo and numbers.max() <= hi, name
    # with a large budget the bounds bracket the data's central ranks
    assert release.columns["age"].low <= 19 and release.columns["age"].high >= 88
    kids = release.columns["kids"]
    assert kids.edges is not None and np.allclose(np.diff(kids.edges), 1.0)  # a bin per integer
    assert set(pseudo["kids"]) <= set(range(int(kids.low), int(kids.high) + 1))
    assert np.all(pseudo["age"] == np.round(pseudo["age"]))
    for name in ("score", "city", "member"):
        share = release.columns[name].null_share
        drawn = pseudo[name].isna().mean()
        assert abs(drawn - share) <= 5 * math.sqrt(share * (1 - share) / n) + 1e-9, name
    assert abs(release.columns["score"].null_share - 0.25) < 0.03
    assert set(pseudo["city"].dropna()) <= {"Paris", "Lyon", "Nice"}
    assert set(pseudo["member"].dropna()) == {False, True}
    assert list(pseudo["tier"].cat.categories) == release.columns["tier"].categories
    # booleans without nulls stay bool; ints with nulls become float64
    no_null = release_statistics(
        df[["kids"]].assign(flag=df["age"] > 50),
        [Spec("kids", "numerical", "int64", True, integer=True), Spec("flag", "boolean", "bool")],
        50.0,
        0.0,
        np.random.default_rng(5),
    )
    drawn = no_null.pseudo_frame(3000, np.random.default_rng(6))
    assert drawn["flag"].dtype == bool
    assert drawn["kids"].dtype == (np.float64 if drawn["kids"].isna().any() else np.int64)


def test_zero_epsilon_needs_public_domains_and_names_the_columns():
    df = _frame()
    specs = [Spec("color", "categorical"), Spec("amount", "numerical", "float64")]
    with pytest.raises(ConfigError) as caught:
        release_statistics(df, specs, 0.0, 1e-6, np.random.default_rng(0))
    message = str(caught.value)
    assert "'color'" in message and "'amount'" in message
    assert "public = True" in message and "preprocessing_epsilon" in message
    with pytest.raises(ConfigError, match=r"'color'.*delta"):
        release_statistics(df, specs, 1.0, 0.0, np.random.default_rng(0))
    # every domain public: nothing spent, uniform placeholders
    free = release_statistics(df, PUBLIC_SPECS, 0.0, 0.0, np.random.default_rng(0))
    assert (free.epsilon, free.delta) == (0.0, 0.0)
    assert all(np.all(c.counts == 1.0) for c in free.columns.values())


def test_columns_needing_release():
    specs = [
        Spec("a", "categorical", categories=["x"]),  # learned from the data: private
        Spec("b", "categorical", public=True),  # public but no categories given
        Spec("c", "categorical", categories=["x"], public=True),
        Spec("d", "numerical", min=0.0, max=1.0, public=True),
        Spec("e", "numerical", min=0.0, public=True),  # one bound missing
        Spec("f", "boolean", "bool"),
        Spec("g", "id", "int64"),
        Spec("h", "datetime", "datetime64[ns]", min="2020-01-01", max="2021-01-01"),
    ]
    assert columns_needing_release(specs) == ["a", "b", "e", "h"]


def test_one_public_bound_is_kept_and_the_other_released():
    df = pd.DataFrame({"x": np.random.default_rng(0).uniform(0, 50, 5000)})
    specs = [Spec("x", "numerical", "float64", min=0.0, public=True)]
    release = release_statistics(df, specs, 4.0, 0.0, np.random.default_rng(1))
    col = release.columns["x"]
    assert col.low == 0.0 and not col.public and 40 < col.high < 80
    assert col.epsilon == 4.0
    # a public max: the grid is cut there, values above it land on it, only low is released
    specs = [Spec("x", "numerical", "float64", max=30.0, public=True)]
    col = release_statistics(df, specs, 4.0, 0.0, np.random.default_rng(2)).columns["x"]
    assert col.high == 30.0 and 0.0 <= col.low <= 1.0  # where the uniform's cells thin out
    assert np.all(
        release_statistics(df, specs, 4.0, 0.0, np.random.default_rng(3)).apply(df)["x"] <= 30
    )


def test_release_bounds_on_adult_are_sensible(adult):
    """End to end: the reported failure (age as [-2.4e7, 1.3e15]) at epsilon 1 and 0.1."""
    from synthgen.schema import Schema

    schema = Schema.infer(adult)
    for epsilon in (1.0, 0.1):
        release = release_statistics(adult, schema, epsilon, 1e-8, np.random.default_rng(0))
        assert release.epsilon <= epsilon and release.delta <= 1e-8
        age = release.columns["age"]
        assert 10 <= age.low <= 20 and 70 <= age.high <= 140, (epsilon, age.low, age.high)
        assert age.epsilon == pytest.approx(epsilon / 15)
        assert release.columns["capital-gain"].low in (0.0, -1.0)  # -1: [0, 0] widened
        fnlwgt = release.columns["fnlwgt"]
        assert 1e4 <= fnlwgt.low <= 1.4e5 and 2e5 <= fnlwgt.high <= 2e6


def test_argument_validation():
    df, rng = _frame(), np.random.default_rng(0)
    with pytest.raises(ConfigError, match="epsilon"):
        release_statistics(df, PUBLIC_SPECS, -1.0, 0.0, rng)
    with pytest.raises(ConfigError, match="delta"):
        release_statistics(df, PUBLIC_SPECS, 1.0, 1.5, rng)
    with pytest.raises(ConfigError, match="rng"):
        release_statistics(df, PUBLIC_SPECS, 1.0, 0.0, 0)
    with pytest.raises(ConfigError, match="bins"):
        release_statistics(df, PUBLIC_SPECS, 1.0, 0.0, rng, bins=0)
    with pytest.raises(DataError, match="'nope'"):
        release_statistics(df, [*PUBLIC_SPECS, Spec("nope", "numerical")], 1.0, 0.0, rng)
    with pytest.raises(DataError, match="'amount'.*null"):
        release_statistics(df.assign(amount=np.nan), PUBLIC_SPECS, 1.0, 0.0, rng)


_KINDS = ["num", "num_public", "int", "cat", "cat_public", "bool", "id", "when"]


def _column(kind: str, name: str, n: int, rng: np.random.Generator) -> tuple[Spec, pd.Series]:
    if kind == "num":
        return Spec(name, "numerical", "float64"), pd.Series(rng.normal(0, 1, n))
    if kind == "num_public":
        spec = Spec(name, "numerical", "float64", min=-1.0, max=1.0, public=True)
        return spec, pd.Series(rng.uniform(-2, 2, n))
    if kind == "int":
        return Spec(name, "numerical", "int64", integer=True), pd.Series(rng.integers(0, 9, n))
    if kind == "cat":
        return Spec(name, "categorical", nullable=True), pd.Series(rng.choice(["u", "v", None], n))
    if kind == "cat_public":
        spec = Spec(name, "categorical", categories=["u", "v"], public=True)
        return spec, pd.Series(rng.choice(["u", "v"], n))
    if kind == "bool":
        return Spec(name, "boolean", "bool"), pd.Series(rng.random(n) < 0.5)
    if kind == "id":
        return Spec(name, "id", "int64"), pd.Series(np.arange(n))
    stamps = pd.to_datetime("2021-01-01") + pd.to_timedelta(rng.integers(0, 99, n), unit="D")
    return Spec(name, "datetime", "datetime64[ns]"), pd.Series(stamps)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kinds=st.lists(st.sampled_from(_KINDS), min_size=1, max_size=6),
    epsilon=st.floats(1e-3, 50.0),
    delta=st.floats(1e-12, 0.5),
    seed=st.integers(0, 2**16),
)
def test_costs_never_exceed_the_budget(kinds, epsilon, delta, seed):
    rng = np.random.default_rng(seed)
    columns = [_column(kind, f"c{i}", 25, rng) for i, kind in enumerate(kinds)]
    specs = [spec for spec, _ in columns]
    df = pd.DataFrame({spec.name: series for spec, series in columns})
    release = release_statistics(df, specs, epsilon, delta, rng)
    eps = [c.epsilon for c in release.columns.values()]
    deltas = [c.delta for c in release.columns.values()]
    for total, parts, budget in ((release.epsilon, eps, epsilon), (release.delta, deltas, delta)):
        assert total <= budget and sum(parts) <= budget and math.fsum(parts) <= budget
        assert sum(Fraction(x) for x in parts) <= Fraction(budget)
    if any(k != "id" for k in kinds):
        assert release.epsilon >= epsilon * (1 - 1e-12)
    else:
        assert release.epsilon == 0.0
    if "cat" in kinds:
        assert release.delta >= delta * (1 - 1e-12)
    else:
        assert release.delta == 0.0


def test_to_dict_from_dict_round_trip():
    df = _mixed_frame(800)
    from synthgen.schema import Schema

    release = release_statistics(df, Schema.infer(df), 30.0, 1e-5, np.random.default_rng(7))
    text = json.dumps(release.to_dict())  # JSON-safe
    back = PreprocessingRelease.from_dict(json.loads(text))
    assert back == release and back.to_dict() == release.to_dict()
    assert list(back.columns) == list(release.columns)
    assert isinstance(back.columns["age"].edges, np.ndarray)
    pd.testing.assert_frame_equal(
        back.pseudo_frame(300, np.random.default_rng(8)),
        release.pseudo_frame(300, np.random.default_rng(8)),
    )
    col = release.columns["city"]
    assert ColumnRelease.from_dict(col.to_dict()) == col
    with pytest.raises(ModelFileError, match="columns"):
        PreprocessingRelease.from_dict({"version": 1})
    with pytest.raises(ModelFileError, match="unknown field"):
        ColumnRelease.from_dict({**col.to_dict(), "bogus": 1})


def test_a_fixed_seed_reproduces_the_release():
    df = _mixed_frame(500)
    from synthgen.schema import Schema

    schema = Schema.infer(df)
    first = release_statistics(df, schema, 5.0, 1e-6, np.random.default_rng(11))
    again = release_statistics(df, schema, 5.0, 1e-6, np.random.default_rng(11))
    other = release_statistics(df, schema, 5.0, 1e-6, np.random.default_rng(12))
    assert first == again and first != other
    pd.testing.assert_frame_equal(
        first.pseudo_frame(100, np.random.default_rng(0)),
        again.pseudo_frame(100, np.random.default_rng(0)),
    )


def test_piles_at_zero_and_at_the_bounds_stay_exact_in_the_pseudo_frame():
    import synthgen as sg

    rng = np.random.default_rng(0)
    gain = np.where(rng.random(20_000) < 0.9, 0.0, rng.uniform(100, 5000, 20_000))
    df = pd.DataFrame({"gain": gain})
    schema = sg.Schema.infer(df)
    release = release_statistics(df, schema, 5.0, 1e-6, np.random.default_rng(1))
    pseudo = release.pseudo_frame(20_000, np.random.default_rng(2))
    assert (pseudo["gain"] == 0).mean() == pytest.approx(0.9, abs=0.02)
    edges = release.columns["gain"].edges
    assert (np.diff(edges) == 0).sum() >= 1  # at least the atom at 0 (the low bound)

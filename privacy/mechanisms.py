"""The DP primitives the preprocessing release is built from.

Neighbouring datasets differ by adding or removing one row (the relation opacus's
accountant assumes for DP-SGD, so the two costs compose). Each function is one
mechanism with one cost; the cost bookkeeping (which epsilon goes where, and the
totals) lives in ``privacy.preprocessing``.

- ``laplace_counts``: a histogram over a domain fixed in advance (epsilon-DP).
- ``thresholded_histogram``: a histogram over a domain discovered from the data
  (stability-based, (epsilon, delta)-DP).
- ``exponential_quantile``: a quantile chosen from a public grid of candidates
  (``candidate_grid``) by the exponential mechanism (epsilon-DP).
- ``exponential_bound``: the same mechanism with a utility that scores grid
  *intervals*, for the bounds of a column (epsilon-DP). ``exponential_quantile``'s rank
  utility ties every candidate outside the data: below the minimum all have rank 0, so
  when the lowest value is an atom heavier than twice ``p`` (zeros of a zero-inflated
  amount, the 17 of an age column, any small-range integer column) the ~200 candidates
  below the data all beat every candidate inside it, and the "bound" is drawn uniformly
  from them, anywhere down to -1e19, whatever epsilon and n are. Scoring the interval
  between neighbouring candidates instead gives the interval that holds the quantile the
  best score (0), atoms included.
- ``noisy_range``: the bounds of a column from ONE Laplace histogram over the cells of
  the public grid (epsilon-DP). What the release uses: the exponential mechanisms above
  are correct, but their bound sits among ~400 tied candidates beyond the data unless
  ``epsilon * p * n`` is large, so at the budgets preprocessing really gets (a few
  hundredths of epsilon per column) they return bounds like ``[-2e7, 1e15]`` for an age
  column. A histogram pays the noise once per cell instead of once per tied candidate:
  a cell is released when its noisy count clears a threshold that empty cells cross
  with probability at most ``beta`` in total, so the range is the span of the cells
  that clearly hold data.

No library of the field ships these for numpy (opacus covers DP-SGD only), so they
are written here from the papers; ``tests/test_privacy_preprocessing.py`` checks each
against an independent computation (the noise law, the survival probability of a key,
the exact output distribution of the exponential mechanism, the range's cells and
threshold). ``noisy_range`` follows the histogram-based range finding of Karwa and Vadhan
2018 ("Finite sample differentially private confidence intervals"), with a Laplace
histogram over a fixed public grid in place of their stability-based one.

Randomness comes from the ``numpy.random.Generator`` the caller passes, so a fixed seed
reproduces a release. numpy's generators are NOT cryptographically secure: as with opacus
run without ``secure_mode``, an attacker who can predict the generator's state can
subtract the noise. That is the usual trade-off for experiments; a deployment that
releases to adversaries should seed the generator from ``secrets`` / the OS entropy
pool and keep the seed private.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

import numpy as np

from synthgen.core.errors import ConfigError

#: Steps per decade of the default grid ``+-10**(k / 8)`` (10**-6 .. 10**19).
_GRID_STEPS_PER_DECADE = 8


# ----------------------------------------------------------------- argument checks
def _check_epsilon(epsilon: float, name: str = "epsilon") -> float:
    if (
        isinstance(epsilon, bool)
        or not isinstance(epsilon, int | float | np.integer | np.floating)
        or not math.isfinite(float(epsilon))
        or float(epsilon) <= 0
    ):
        raise ConfigError(
            f"{name}={epsilon!r} must be a finite number > 0 (the privacy cost of this "
            "mechanism); a smaller epsilon means more noise"
        )
    return float(epsilon)


def _check_probability(name: str, value: float, why: str) -> float:
    """``value`` as a float strictly inside (0, 1), else a ConfigError saying ``why``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.integer | np.floating)
        or not 0 < float(value) < 1
    ):
        raise ConfigError(f"{name}={value!r} must be a number in (0, 1), {why}")
    return float(value)


def _check_delta(delta: float) -> float:
    return _check_probability(
        "delta",
        delta,
        "typically well below 1/n_rows (e.g. 1e-6): it bounds the chance that a key seen "
        "in one row is released",
    )


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(
            f"rng must be a numpy.random.Generator (numpy.random.default_rng(seed)), "
            f"not {type(rng).__name__}"
        )
    return rng


# ----------------------------------------------------------------- Laplace histogram
def laplace_counts(counts: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """``counts`` plus independent Laplace(1/epsilon) noise per cell, as float64.

    Why epsilon-DP: the cells of one histogram partition the rows, so adding or
    removing one row changes exactly one cell by 1 (L1 sensitivity 1), and the
    Laplace mechanism with scale sensitivity/epsilon is epsilon-DP (Dwork, McSherry,
    Nissim, Smith 2006). The domain (which cells exist) must not depend on the data;
    for a domain found in the data use ``thresholded_histogram``.

    The noisy counts can be negative or fractional; clipping or rounding them is
    post-processing and left to the caller.
    """
    epsilon = _check_epsilon(epsilon)
    rng = _check_rng(rng)
    values = np.asarray(counts, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ConfigError("counts must be finite numbers (one count per histogram cell)")
    return values + rng.laplace(0.0, 1.0 / epsilon, size=values.shape)


# ----------------------------------------------------------------- unknown domain
def threshold(epsilon: float, delta: float) -> float:
    """The release threshold of ``thresholded_histogram``: ``1 + ln(1/(2 delta)) / epsilon``.

    A key's true count is 1 in the worst case; Laplace(1/epsilon) noise exceeds ``t``
    with probability ``exp(-epsilon t) / 2``, which equals ``delta`` at
    ``t = ln(1/(2 delta)) / epsilon``.
    """
    epsilon = _check_epsilon(epsilon)
    delta = _check_delta(delta)
    return 1.0 + math.log(1.0 / (2.0 * delta)) / epsilon


def thresholded_histogram(
    counts: Mapping[Hashable, int | float],
    epsilon: float,
    delta: float,
    rng: np.random.Generator,
) -> dict[Hashable, float]:
    """Noisy counts of the keys whose noisy count exceeds ``threshold(epsilon, delta)``.

    The stability-based histogram for a domain that is not known in advance
    (Korolova, Kenthapadi, Mishra, Ntoulas 2009, "Releasing search queries and clicks
    privately"; Bun, Nissim, Stemmer 2016, "Simultaneous private learning of multiple
    concepts"): Laplace(1/epsilon) noise is added to the count of every key observed,
    and only keys whose noisy count is above the threshold are released, with that
    noisy count. Keys with a zero count are never candidates (they are not in the
    data), so pass only observed keys.

    Why (epsilon, delta)-DP under add/remove of one row: the row falls in one key.

    - If that key is observed in both neighbours, the two histograms differ by 1 in
      that one cell, and releasing all noisy counts would be epsilon-DP (Laplace);
      thresholding is post-processing of those counts.
    - If the key is observed in only one neighbour, its count there is 1; everything
      else is identically distributed, and the outputs differ only when that key is
      released, which needs ``1 + Laplace(1/epsilon) > threshold``: probability
      ``exp(-(threshold - 1) epsilon) / 2 = delta``. So for any set S of outputs,
      ``P[D in S] <= P[D' in S] + delta`` (and the other direction holds with 0).

    Which keys survive is random; a key seen in many rows survives almost surely, a
    key seen once survives with probability at most ``delta``. The output's keys are
    exactly those released: never report the dropped ones.
    """
    epsilon = _check_epsilon(epsilon)
    cut = threshold(epsilon, delta)
    rng = _check_rng(rng)
    keys = list(counts)
    if not keys:
        return {}
    values = np.array([counts[k] for k in keys], dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ConfigError("counts must map each observed key to a finite count >= 0")
    noisy = values + rng.laplace(0.0, 1.0 / epsilon, size=len(keys))
    return {k: float(v) for k, v in zip(keys, noisy, strict=True) if v > cut}


# ----------------------------------------------------------------- quantiles
def candidate_grid(steps_per_decade: int = _GRID_STEPS_PER_DECADE) -> np.ndarray:
    """A public, data-independent, sorted grid of candidate bounds (float64).

    ``0`` and ``+-10**(k / steps_per_decade)`` for every k with 10**-6 <= |c| <= 10**19:
    the same grid for every dataset, symmetric around 0, dense in relative terms
    (neighbours differ by a factor 10**(1/8) ~ 1.33 at the default) across 25 orders
    of magnitude, so it holds a reasonable bound for amounts of money, counts, physical
    measurements and datetimes in seconds since the epoch (~1.7e9). 403 candidates at
    the default.

    Why a grid: the exponential mechanism must choose among outputs fixed before the
    data is seen; a relative (log-spaced) grid needs no assumption on the scale of a
    column. The price is resolution: a bound lands on a grid point, up to ~33% from the
    true quantile (coarse for datetimes, where a factor 1.33 is years; declare public
    bounds for those when you can). A finer grid costs no privacy, only about
    ``2 ln(len(grid)) / epsilon`` rows of rank accuracy.
    """
    if isinstance(steps_per_decade, bool) or not isinstance(steps_per_decade, int | np.integer):
        raise ConfigError(f"steps_per_decade={steps_per_decade!r} must be a positive integer")
    if steps_per_decade < 1:
        raise ConfigError(f"steps_per_decade={steps_per_decade!r} must be a positive integer")
    k = np.arange(-6 * steps_per_decade, 19 * steps_per_decade + 1, dtype=np.float64)
    positive = 10.0 ** (k / steps_per_decade)
    return np.concatenate([-positive[::-1], [0.0], positive])


def _quantile_inputs(
    values: np.ndarray, p: float, candidates: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Checked values (float64, no NaN), sorted unique candidates and p."""
    if (
        isinstance(p, bool)
        or not isinstance(p, int | float | np.integer | np.floating)
        or not 0 <= float(p) <= 1
    ):
        raise ConfigError(f"p={p!r} must be a probability in [0, 1]")
    x = np.asarray(values, dtype=np.float64).ravel()
    if np.isnan(x).any():
        raise ConfigError("values hold NaN: drop the nulls before asking for a quantile")
    grid = candidate_grid() if candidates is None else np.asarray(candidates, dtype=np.float64)
    grid = np.unique(grid.ravel())  # sorted, and a candidate is not counted twice
    if not len(grid) or not np.all(np.isfinite(grid)):
        raise ConfigError("candidates must be a non-empty array of finite numbers")
    return x, grid, float(p)


def exponential_quantile(
    values: np.ndarray,
    p: float,
    epsilon: float,
    rng: np.random.Generator,
    candidates: np.ndarray | None = None,
) -> float:
    """The candidate chosen by the exponential mechanism for the ``p``-quantile of ``values``.

    Utility of a candidate c: ``u(c) = -| #{x <= c} - p * n |`` (n = len(values)), so the
    candidates closest in rank to the quantile score highest; candidate c is drawn with
    probability ``exp(epsilon * u(c) / 2) / Z`` (McSherry and Talwar 2007), which is
    epsilon-DP when u has sensitivity 1.

    Sensitivity 1 under add/remove: adding a row x changes ``#{x <= c}`` by
    ``b = [x <= c]`` (0 or 1) and ``p * n`` by ``p``, so ``u(c)`` moves by at most
    ``|b - p| <= max(p, 1 - p) <= 1`` for every c at once (removing a row is the same
    argument backwards). n itself need not be public for this.

    ``candidates``: a data-independent set of outputs (default ``candidate_grid()``);
    they are sorted and deduplicated here. Vectorised (one ``searchsorted`` over the
    sorted values) and numerically stable: the draw is ``argmax(epsilon * u / 2 +
    Gumbel noise)`` (the Gumbel-max trick), which never exponentiates the utilities.
    With no values every candidate has the same utility and the draw is uniform.
    """
    epsilon = _check_epsilon(epsilon)
    rng = _check_rng(rng)
    x, grid, p = _quantile_inputs(values, p, candidates)
    at_or_below = np.searchsorted(np.sort(x), grid, side="right")
    utility = -np.abs(at_or_below - p * len(x))
    scores = 0.5 * epsilon * utility + rng.gumbel(size=len(grid))
    return float(grid[int(np.argmax(scores))])


def exponential_bound(
    values: np.ndarray,
    p: float,
    epsilon: float,
    rng: np.random.Generator,
    side: str,
    candidates: np.ndarray | None = None,
) -> float:
    """A lower (``side="low"``) or upper (``"high"``) bound at rank ``p``, epsilon-DP.

    The exponential mechanism over the candidates (default ``candidate_grid()``), each
    candidate standing for the interval to its neighbour: for ``"low"``, c_i stands for
    ``[c_i, c_{i+1})`` and its rank range is ``[a, b] = [#{x < c_i}, #{x < c_{i+1}}]``;
    for ``"high"``, c_i stands for ``(c_{i-1}, c_i]`` with ``[a, b] = [#{x <= c_{i-1}},
    #{x <= c_i}]`` (beyond the ends of the grid: 0 and n). The utility is minus the
    distance from ``p * n`` to that range, ``u = -max(0, a - p n, p n - b)``: 0 exactly
    for the interval holding the p-quantile q (``#{x < q} <= p n <= #{x <= q}``), so the
    released low bound is at or below q and the high bound at or above it, within one
    grid step, even when q is an atom that holds many rows. Candidate c is drawn with
    probability ``exp(epsilon * u(c) / 2) / Z`` (Gumbel-max, as in
    ``exponential_quantile``).

    Sensitivity 1 under add/remove: a and b each move by at most 1 and ``p * n`` by p
    when a row is added, so ``a - p n`` and ``p n - b`` each move by at most
    ``max(p, 1 - p) <= 1``, and so does their maximum with 0. Hence epsilon-DP.

    What it cannot fix: the candidates beyond the data still tie (at ``u = -p n``), so
    the bound is reliable only when ``epsilon * p * n / 2`` clearly exceeds
    ``ln(len(candidates))`` (about 6 for the default grid): n of at least about
    ``2 * (ln(len(candidates)) + 3) / (epsilon * p)`` rows.
    """
    epsilon = _check_epsilon(epsilon)
    rng = _check_rng(rng)
    if side not in ("low", "high"):
        raise ConfigError(f"side={side!r} must be 'low' or 'high'")
    x, grid, p = _quantile_inputs(values, p, candidates)
    xs = np.sort(x)
    if side == "low":
        start = np.searchsorted(xs, grid, side="left")  # #{x < c_i}
        end = np.append(start[1:], len(xs))  # #{x < c_{i+1}}
    else:
        end = np.searchsorted(xs, grid, side="right")  # #{x <= c_i}
        start = np.insert(end[:-1], 0, 0)  # #{x <= c_{i-1}}
    target = p * len(xs)
    utility = -np.maximum(0.0, np.maximum(start - target, target - end))
    scores = 0.5 * epsilon * utility + rng.gumbel(size=len(grid))
    return float(grid[int(np.argmax(scores))])


# ----------------------------------------------------------------- noisy range
def _range_grid(candidates: np.ndarray | None) -> np.ndarray:
    grid = candidate_grid() if candidates is None else np.asarray(candidates, dtype=np.float64)
    grid = np.unique(grid.ravel())
    if not len(grid) or not np.all(np.isfinite(grid)):
        raise ConfigError("candidates must be a non-empty array of finite numbers")
    return grid


def range_cells(
    values: np.ndarray, candidates: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EXACT counts of ``values`` in the cells of the public grid: ``(counts, lower, upper)``.

    Not private by itself: it is the histogram ``noisy_range_histogram`` adds noise to.
    With the sorted, deduplicated candidates ``c_0 < ... < c_{m-1}`` (default
    ``candidate_grid()``) there are ``K = 2m - 1`` cells, in increasing order:

        {c_0}, (c_0, c_1), {c_1}, (c_1, c_2), ..., (c_{m-2}, c_{m-1}), {c_{m-1}}

    Every candidate is a cell of its own (a point cell, both edges equal to it), and the
    open intervals between neighbours are the others, so a value that falls exactly on a
    candidate is counted in one well-defined cell. That matters for atoms: the zeros of
    a zero-inflated amount fall in ``{0}`` and give ``low == 0`` exactly, not the
    neighbouring candidate -1e-6; a column whose maximum is a round 100 gets ``high ==
    100``. Values beyond the grid are clipped onto its ends first (``{c_0}`` and
    ``{c_{m-1}}``), which is a fixed function of each row. ``lower[j]`` / ``upper[j]``
    are the edges of cell j.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if np.isnan(x).any():
        raise ConfigError("values hold NaN: drop the nulls before asking for a range")
    grid = _range_grid(candidates)
    n_cells = 2 * len(grid) - 1
    cell = np.arange(n_cells)
    lower, upper = grid[cell // 2], grid[(cell + 1) // 2]
    clipped = np.clip(x, grid[0], grid[-1])
    at = np.searchsorted(grid, clipped, side="left")  # first candidate >= x
    exact = grid[at] == clipped
    index = np.where(exact, 2 * at, 2 * at - 1)  # {c_i} is cell 2i, (c_{i-1}, c_i) 2i - 1
    counts = np.bincount(index.astype(np.int64), minlength=n_cells).astype(np.float64)
    return counts, lower, upper


def noisy_range_histogram(
    values: np.ndarray,
    epsilon: float,
    rng: np.random.Generator,
    candidates: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``range_cells``' counts plus Laplace(1/epsilon) noise on EVERY cell; epsilon-DP.

    Returns ``(noisy_counts, lower, upper)``. The cells are fixed by the public
    candidates before the data is seen and partition the real line (after the
    per-row clipping onto the grid's ends), so adding or removing one row changes
    exactly one cell by 1: L1 sensitivity 1, and ``laplace_counts`` at scale 1/epsilon is
    epsilon-DP for the whole vector. Empty cells get noise too; that is what makes a
    delta unnecessary here (compare ``thresholded_histogram``, which only sees observed
    keys). ``lower`` / ``upper`` depend on the candidates only.
    """
    epsilon = _check_epsilon(epsilon)
    rng = _check_rng(rng)
    counts, lower, upper = range_cells(values, candidates)
    return laplace_counts(counts, epsilon, rng), lower, upper


def _check_beta(beta: float) -> float:
    return _check_probability(
        "beta",
        beta,
        "e.g. 0.05: the chance that some empty cell is taken for data and widens the range",
    )


def range_threshold(n_cells: int, epsilon: float, beta: float) -> float:
    """The cut of ``noisy_range``: ``tau = ln(K / (2 beta)) / epsilon`` for K cells.

    An empty cell's noisy count is Laplace(1/epsilon), which exceeds ``tau >= 0`` with
    probability ``exp(-epsilon tau) / 2 = beta / K``; by the union bound over at most K
    empty cells, no empty cell exceeds ``tau`` with probability at least ``1 - beta``.
    A cell holding c rows is released with probability ``1 - exp(-epsilon (c - tau)) /
    2`` once ``c > tau``, so the range covers the cells with clearly more than ``tau``
    rows: about ``9 / epsilon`` for the default grid and beta.
    """
    if isinstance(n_cells, bool) or not isinstance(n_cells, int | np.integer) or n_cells < 1:
        raise ConfigError(f"n_cells={n_cells!r} must be an integer >= 1")
    epsilon = _check_epsilon(epsilon)
    beta = _check_beta(beta)
    return math.log(int(n_cells) / (2.0 * beta)) / epsilon


def _check_reach(reach: int) -> int:
    if isinstance(reach, bool) or not isinstance(reach, int | np.integer) or reach < 0:
        raise ConfigError(
            f"reach={reach!r} must be an integer >= 0: the largest gap, in grid cells, "
            "inside one group of occupied cells (16 = a decade of the default grid)"
        )
    return int(reach)


def noisy_range(
    values: np.ndarray,
    epsilon: float,
    rng: np.random.Generator,
    candidates: np.ndarray | None = None,
    beta: float = 0.05,
    far_beta: float | None = None,
    reach: int = 16,
) -> tuple[float, float]:
    """A DP range ``(low, high)`` of ``values`` on the public grid; epsilon-DP.

    One noisy histogram (``noisy_range_histogram``: Laplace(1/epsilon) on each of the
    ``K = 2m - 1`` cells of ``range_cells``: every candidate a point cell, the open
    intervals between them the others) and then pure post-processing:

    - ``tau = range_threshold(K, epsilon, beta)``; the cells whose noisy count exceeds
      ``tau`` are "occupied" (with probability at least ``1 - beta`` none of them is an
      empty cell);
    - ``low`` is the lower edge of the lowest occupied cell, ``high`` the upper edge of
      the highest (for a point cell such as ``{0}`` both edges are the candidate);
    - if no cell exceeds ``tau`` (too few rows for this epsilon), the cell with the
      largest noisy count gives both edges.

    ``far_beta`` (optional, ``<= beta``; None keeps the rule above): an empty cell that
    crosses ``tau`` lands anywhere on the grid, so with ``beta = 0.05`` about one range in
    30 gets an edge like 1e15 from pure noise. With ``far_beta`` the occupied cells are
    first split into *groups*: runs in which neighbouring occupied cells are at most
    ``reach`` cells apart (16 = one decade of the default grid). A group counts only if
    it holds a cell above the stricter ``range_threshold(K, epsilon, far_beta)``, or at
    least two occupied cells, or the fullest cell; the range spans the groups that
    count (the fullest cell alone if no cell is occupied). A lone false positive then
    needs the strict threshold (probability <= ``far_beta`` over all cells), two of them
    within ``reach`` of each other about ``reach * beta**2 / K``, and one next to real
    data moves an edge by at most ``reach`` cells. The price: a genuinely isolated single
    cell (a spike of 99999s far above the rest, or the positive values of a zero-heavy
    column that all fall in one cell) needs ``ln(K / (2 far_beta)) / epsilon`` rows
    instead of ``ln(K / (2 beta)) / epsilon`` to be included.

    Why epsilon-DP under add/remove of one row: the histogram is epsilon-DP
    (``noisy_range_histogram``: the cells are public and partition the line, one row
    moves one cell by 1, Laplace noise of scale 1/epsilon on every cell); the thresholds
    and the edges depend only on K, epsilon, beta, far_beta, reach and the public
    candidates, so choosing the cells from the noisy counts and reading their edges is
    post-processing, which costs nothing more. Neither n nor any count is used without
    noise.

    What it estimates: not the minimum and maximum (one row can move those anywhere)
    but the span of the cells holding more than about ``tau`` rows, rounded outwards to
    the grid (a factor 10**(1/8) ~ 1.33 at the default). Values outside it are the tail
    a generator loses: they are clipped onto the bounds when the data is mapped onto the
    released domain. A small epsilon shrinks the range to the bulk of the data.
    """
    beta = _check_beta(beta)
    if far_beta is not None:
        far_beta = _check_beta(far_beta)
        if far_beta > beta:
            raise ConfigError(
                f"far_beta={far_beta!r} must not exceed beta={beta!r}: it is the stricter "
                "threshold's chance, for a lone occupied cell"
            )
    reach = _check_reach(reach)
    noisy, lower, upper = noisy_range_histogram(values, epsilon, rng, candidates)
    tau = range_threshold(len(noisy), epsilon, beta)
    occupied = np.flatnonzero(noisy > tau)
    fullest = int(np.argmax(noisy))
    if not len(occupied):  # fallback: the fullest cell alone
        return float(lower[fullest]), float(upper[fullest])
    if far_beta is None:
        return float(lower[occupied[0]]), float(upper[occupied[-1]])
    strict = noisy > range_threshold(len(noisy), epsilon, far_beta)
    groups = np.split(occupied, np.flatnonzero(np.diff(occupied) > reach) + 1)
    kept = [  # never empty: the fullest cell is occupied, and its group counts
        g for g in groups if len(g) >= 2 or strict[g].any() or g[0] <= fullest <= g[-1]
    ]
    return float(lower[kept[0][0]]), float(upper[kept[-1][-1]])

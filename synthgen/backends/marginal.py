"""AIM and MST: differentially private synthetic data from noisy marginals.

Both measure marginals (count tables over a few columns) of the discretised table with
Gaussian noise, fit a graphical model to the noisy measurements with the estimator of
the ``mbi`` library (Private-PGM, McKenna, Sheldon, Miklau 2019: mirror descent over
the marginal polytope, ``mbi.estimation.MirrorDescent``), and sample the model
(``mbi.extensions.synthetic_data``). They differ in which marginals they measure:

- **MST** (McKenna, Miklau, Sheldon 2021, winner of the NIST 2018 challenge): a third
  of the zCDP budget on all 1-way marginals, a third on choosing a maximum spanning
  tree of 2-way marginals (Kruskal's algorithm, each edge picked by the exponential
  mechanism with score ``|| M_ab(D) - M_ab(p_hat) ||_1``, sensitivity 1, where p_hat is
  the model fitted on the 1-way measurements), a third on measuring the tree's d - 1
  2-way marginals.
- **AIM** (McKenna, Mullins, Sheldon, Miklau, VLDB 2022): adaptive. Measure every 1-way
  marginal with ``sigma_0 = sqrt(T / (2 alpha rho))`` (T = ``rounds``, alpha = 0.9),
  then round after round pick the candidate marginal (every subset of a workload
  marginal, default all 3-way ones) that the current model answers worst, by the
  exponential mechanism at ``epsilon_t`` on ``w_r (|| M_r(D) - M_r(p_hat) ||_1 -
  sqrt(2/pi) sigma_t n_r)`` (w_r: how much of the workload r covers, n_r: its cells,
  sensitivity max w_r), measure it, refit the model (warm started), and halve sigma
  (doubling epsilon) when the new measurement barely moved the model. Candidates are
  limited to those keeping the model's junction tree within ``max_model_size`` MB
  times the share of the budget spent so far; the last round spends what is left.

Privacy accounting (``privacy.zcdp``): each Gaussian measurement costs ``1 / (2
sigma^2)``, each selection ``epsilon_t^2 / 8`` (bounded range), summed in a
``ZCDPBudget`` that refuses to overspend. The discretisation is the DP release of
``privacy.preprocessing`` (public or DP bounds and categories, binned), an (epsilon_p,
delta_p)-DP step whose noisy 1-way histograms are also given to the estimator as free
extra measurements (post-processing). The measurements' rho is the largest whose CKS
2020 conversion fits (epsilon - epsilon_p, delta - delta_p); the receipt reports
``epsilon_p + epsilon(rho_used)`` and ``delta_p + delta_m`` (basic composition). The row
count is treated as public, as everywhere in synthgen (the estimator's total).

``mbi`` and jax are an optional extra (``pip install -e ".[marginals]"``), imported
inside ``fit`` and ``sample`` only, so importing synthgen stays cheap.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from synthgen.backends.base import BaseGenerator
from synthgen.backends.conditions import ConditionSampler
from synthgen.backends.params import check_bool, check_float, check_int
from synthgen.errors import ConfigError, MissingDependencyError, ModelFileError
from synthgen.schema import Schema, check_frame
from synthgen.training import EpochProgress, SeedStreams, TrainingLog, show_progress, timer
from synthgen.transforms.cells import CellTransformer

#: Mirror-descent iterations after each AIM round (warm started) and for MST's model
#: fitted on its 1-way measurements; the final model gets ``final_iters``.
DEFAULT_ITERS = 100
DEFAULT_FINAL_ITERS = 1000
#: AIM's planned rounds per modelled column: the paper's T = 16 d. Fewer planned rounds
#: mean less noise per measurement but fewer of them (at 4 d on Adult: TSTR AUC 0.71
#: instead of 0.79 at epsilon 1); see docs/privacy.md for the measured trade-off.
ROUNDS_PER_COLUMN = 16
#: AIM's alpha: the share of each round's rho spent on measuring (the rest selects).
MEASURE_SHARE = 0.9
#: Default limit of the graphical model's junction tree, in MB of float64 cells.
DEFAULT_MAX_MODEL_SIZE = 2.0
#: Released histogram bins of continuous columns (equal width, atoms at the bounds and
#: 0); integer columns spanning at most ``integer_bins`` values get one bin per value.
DEFAULT_BINS = 32
DEFAULT_INTEGER_BINS = 64
#: Rows generated per call of mbi's sampler (bounds its memory; one compile per size).
SAMPLE_CHUNK = 1_048_576
#: Smallest block mbi's sampler is asked for (smaller requests are cut from one).
MIN_BLOCK = 1024
#: Log-potential added to cells a condition excludes: exp() of it is 0 in float32.
_EXCLUDED = -1e6


def release_compiled_programs() -> None:
    """Drop jax's compiled programs once a fit is done.

    Every AIM round estimates a model over a new set of cliques, which jax compiles
    anew; the executables stay cached (in memory maps) for the life of the process.
    A process that fits many models (a scheduler, a Ray worker, the DP harness: nine
    AIM fits) ran out of maps ("LLVM compilation error: Cannot allocate memory")
    with most of its RAM free. The programs are not reused across fits anyway.
    """
    import sys

    jax = sys.modules.get("jax")
    if jax is not None and hasattr(jax, "clear_caches"):
        jax.clear_caches()


def import_mbi() -> Any:
    """The ``mbi`` module, or a ``MissingDependencyError`` naming the extra to install."""
    try:
        with warnings.catch_warnings():
            # float32 is what mbi gets unless the caller enabled x64 globally; fine below
            # ~100k rows of a few dozen cells each, and not ours to switch for the process
            warnings.filterwarnings("ignore", message="JAX is running in float32 mode")
            warnings.filterwarnings("ignore", message="JAX persistent compilation cache")
            import mbi
            from mbi.extensions import synthetic_data  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "AIM and MST need the optional extra 'marginals' (the mbi graphical-model "
            'library and jax): pip install -e ".[marginals]" (or pip install '
            f"'synthgen[marginals]'); the import failed with: {exc}"
        ) from None
    return mbi


# ---------------------------------------------------------------------- small helpers
Clique = tuple[str, ...]


@dataclasses.dataclass
class Measurement:
    """One noisy marginal: counts plus Gaussian noise of std ``sigma`` on every cell.

    ``weights`` (optional, per cell) turn it into a weighted least-squares term:
    the estimator sees ``weights * y`` against ``weights * M(p)`` at std 1, i.e. cell i
    weighted by its precision ``weights_i^2`` (used for 1-way marginals combined with
    the release's Laplace counts, whose variance differs per cell).
    """

    clique: Clique
    values: np.ndarray
    sigma: float
    weights: np.ndarray | None = None


def _data_marginal(codes: np.ndarray, index: list[int], sizes: list[int]) -> np.ndarray:
    """Counts of the rows over the cells of columns ``index`` (flattened, C order)."""
    shape = [sizes[i] for i in index]
    if not index:
        return np.array([float(len(codes))])
    flat = np.ravel_multi_index(tuple(codes[:, i] for i in index), shape)
    return np.bincount(flat, minlength=math.prod(shape)).astype(np.float64)


class ModelMarginals:
    """Exact marginals of a graphical model (log-potentials over cliques), in numpy.

    Variable elimination by ``numpy.einsum`` over the factors ``exp(theta_C - max
    theta_C)`` of the connected components that touch the query (the others sum to a
    constant): AIM scores hundreds of candidate marginals per round, and mbi's own
    ``variable_elimination`` compiles a jax program per query.
    """

    def __init__(
        self, factors: list[tuple[Clique, np.ndarray]], sizes: dict[str, int], total: float
    ) -> None:
        self.sizes = sizes
        self.total = float(total)
        self.factors = [
            (attrs, np.exp(np.asarray(v, np.float64) - np.max(v))) for attrs, v in factors
        ]
        self.letters = {name: i for i, name in enumerate(sizes)}
        parent = {name: name for name in sizes}

        def find(a: str) -> str:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for attrs, _ in self.factors:
            for other in attrs[1:]:
                parent[find(other)] = find(attrs[0])
        self.component = {name: find(name) for name in sizes}

    def __call__(self, clique: Clique) -> np.ndarray:
        """The marginal over ``clique`` (flattened, C order), summing to the total.

        Eliminates the other attributes one at a time, always the one whose product
        of neighbouring factors is smallest (greedy min-size order, as mbi's own
        ``variable_elimination``), so intermediates stay near the junction tree's
        cliques; each intermediate is rescaled to its maximum (no underflow).
        """
        roots = {self.component[a] for a in clique}
        factors = [
            (attrs, values)
            for attrs, values in self.factors
            if attrs and self.component[attrs[0]] in roots
        ]
        covered = {a for attrs, _ in factors for a in attrs}
        for a in clique:  # an attribute no factor mentions is uniform
            if a not in covered:
                factors.append(((a,), np.ones(self.sizes[a])))
        eliminate = {a for attrs, _ in factors for a in attrs} - set(clique)
        while eliminate:
            best: tuple[int, str, set[str]] | None = None
            for z in sorted(eliminate):
                union = set().union(*(set(attrs) for attrs, _ in factors if z in attrs))
                cost = math.prod(self.sizes[u] for u in union)
                if best is None or cost < best[0]:
                    best = (cost, z, union)
            assert best is not None
            _, z, union = best
            keep = tuple(sorted(union - {z}, key=self.letters.__getitem__))
            involved = [f for f in factors if z in f[0]]
            product = self._contract(involved, keep)
            peak = product.max()
            factors = [f for f in factors if z not in f[0]]
            factors.append((keep, product / peak if peak > 0 else product))
            eliminate.discard(z)
        out = self._contract(factors, clique).reshape(-1)
        mass = out.sum()
        return out * (self.total / mass) if mass > 0 else np.full(out.size, self.total / out.size)

    def _contract(self, factors: list[tuple[Clique, np.ndarray]], out: Clique) -> np.ndarray:
        operands: list[Any] = []
        for attrs, values in factors:
            operands += [values, [self.letters[a] for a in attrs]]
        if not operands:
            return np.ones([self.sizes[a] for a in out])
        result = np.einsum(*operands, [self.letters[a] for a in out], optimize="greedy")
        return np.asarray(result, dtype=np.float64)


# ---------------------------------------------------------------------- the shared base
class MarginalGenerator(BaseGenerator):
    """Shared life cycle of AIM and MST: DP budget, discretisation, mbi, sampling, files.

    Not trained by gradient descent, so none of ``BaseGenerator``'s training
    vocabulary (epochs, batches, optimisers) applies; it keeps its parameter handling
    (``get_params`` / ``set_params`` / ``clone``), properties and the model file.
    """

    backend_name: ClassVar[str] = "marginal"
    scaffold_params: ClassVar[bool] = False
    transformer_class: ClassVar[type] = CellTransformer

    def __init__(
        self,
        epsilon: float | None = None,
        delta: float | None = None,
        dp: Any = None,
        bins: int = DEFAULT_BINS,
        integer_bins: int = DEFAULT_INTEGER_BINS,
        iters: int = DEFAULT_ITERS,
        final_iters: int = DEFAULT_FINAL_ITERS,
        seed: int = 0,
        device: str = "auto",
        progress: bool | None = None,
        max_training_time: float | None = None,
    ) -> None:
        self.epsilon = epsilon
        self.delta = delta
        self.dp = dp
        self.bins = bins
        self.integer_bins = integer_bins
        self.iters = iters
        self.final_iters = final_iters
        self.seed = seed
        self.device = device
        self.progress = progress
        self.max_training_time = max_training_time

    # ------------------------------------------------------------------ parameters
    def _check_params(self) -> None:
        check_float("epsilon", self.epsilon, 0.0, low_open=True, optional=True)
        check_float("delta", self.delta, 0.0, 1.0, low_open=True, high_open=True, optional=True)
        if self.dp is not None:
            from synthgen.backends.private import check_dp

            check_dp(self.dp)
            if self.epsilon is not None or self.delta is not None:
                raise ConfigError(
                    f"{type(self).__name__}: give the budget once, as epsilon=/delta= or as "
                    "dp=DPConfig(...), not both"
                )
        elif self.delta is not None and self.epsilon is None:
            raise ConfigError(f"{type(self).__name__}: delta={self.delta!r} needs epsilon=...")
        check_int("bins", self.bins, 1)
        check_int("integer_bins", self.integer_bins, 1)
        check_int("iters", self.iters, 1)
        check_int("final_iters", self.final_iters, 1)
        check_int("seed", self.seed, 0)
        if not isinstance(self.device, str | torch.device):
            raise ConfigError(
                f"device={self.device!r} is not supported; use 'auto', 'cpu' or 'cuda'"
            )
        check_bool("progress", self.progress, optional=True)
        check_float("max_training_time", self.max_training_time, 0.0, low_open=True, optional=True)

    def resolved_dp(self) -> Any:
        """The ``privacy.DPConfig`` of the fit: ``dp``, or one built from epsilon / delta.

        The catalog's ledger reserves this budget before the fit (``train_private``).
        """
        self._check_params()
        if self.dp is not None:
            return self.dp
        if self.epsilon is None:
            raise ConfigError(
                f"{type(self).__name__} is differentially private by construction and needs a "
                f"budget: {type(self).__name__}(epsilon=1.0) (delta defaults to 1/n**1.5) or "
                "dp=privacy.DPConfig(epsilon=...); on the command line, --epsilon"
            )
        from privacy.accounting import DPConfig

        return DPConfig(epsilon=float(self.epsilon), delta=self.delta)

    # ------------------------------------------------------------------ backend hooks
    def _make_layout(self, transformer: Any, device: torch.device) -> None:
        return None

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {}

    def _restore(self) -> None:
        return None

    def _select_and_measure(
        self,
        mbi: Any,
        codes: np.ndarray,
        measurements: list[Measurement],
        budget: Any,
        rng: np.random.Generator,
        log: TrainingLog,
    ) -> Any:  # pragma: no cover - each backend has its own
        raise NotImplementedError

    # ------------------------------------------------------------------ fitting
    def fit(self, df: pd.DataFrame, schema: Schema | None = None):
        """Learn ``df`` under the DP budget; returns ``self``.

        ``schema`` defaults to ``Schema.infer(df)``; columns it declares public (with
        categories or both bounds) cost nothing to discretise, the others are released
        with DP first (``privacy.preprocessing``).
        """
        dp = self.resolved_dp()
        mbi = import_mbi()
        from privacy.accounting import PREPROCESSING_DELTA_SHARE, PrivacySpent
        from privacy.preprocessing import columns_needing_release, release_statistics
        from privacy.zcdp import ZCDPBudget, zcdp_epsilon, zcdp_rho
        from synthgen.backends.private import release_input_schema, release_schema
        from synthgen.training import resolve_device

        self._started = time.perf_counter()
        self._budget = None if self.max_training_time is None else float(self.max_training_time)
        check_frame(df)
        if len(df) < 2:
            raise ConfigError(
                f"the frame has {len(df)} row; a generator needs at least 2 rows to learn from"
            )
        streams = SeedStreams(int(self.seed))
        log = TrainingLog()
        with timer() as prep:
            schema = Schema.infer(df) if schema is None else schema
            delta, source = dp.resolve_delta(len(df))
            base = release_input_schema(schema)
            needing = columns_needing_release(base)
            epsilon_p = dp.preprocessing_budget(bool(needing))
            discovering = [s for s in base if s.name in needing and s.kind == "categorical"]
            delta_p = PREPROCESSING_DELTA_SHARE * delta if discovering and epsilon_p > 0 else 0.0
            release = release_statistics(
                df,
                base,
                epsilon_p,
                delta_p,
                np.random.default_rng(streams.seed("release")),
                bins=int(self.bins),
                integer_bins=int(self.integer_bins),
            )
            transformer = CellTransformer().fit(release, release_schema(base, release))
            codes = transformer.encode(df)
        log.preprocessing_seconds = prep[0]
        self._prepare(transformer, resolve_device(self.device))
        self.training_log_ = log
        epsilon_m = float(dp.epsilon) - float(release.epsilon)
        delta_m = float(delta) - float(release.delta)
        if epsilon_m <= 0:
            raise ConfigError(
                f"dp: preprocessing used epsilon {release.epsilon:.4g} of {dp.epsilon}, leaving "
                "nothing for the measurements; lower preprocessing_epsilon"
            )
        self._check_workload(transformer.columns)
        rho = zcdp_rho(epsilon_m, delta_m)
        budget = ZCDPBudget(rho)
        rng = np.random.default_rng(streams.seed("noise"))
        measurements = self._release_measurements(transformer)
        try:
            with timer() as fit_time:
                model = self._select_and_measure(mbi, codes, measurements, budget, rng, log)
                model = self._final_estimate(mbi, measurements, len(df), model, log)
        finally:
            release_compiled_programs()
        log.training_seconds = fit_time[0]
        self._store(model, measurements, len(df))
        epsilon_used = zcdp_epsilon(budget.used, delta_m) if budget.used > 0 else 0.0
        noises = [m.sigma for m in measurements if m.weights is None]
        spent = PrivacySpent(
            epsilon=float(release.epsilon) + epsilon_used,
            delta=float(release.delta) + delta_m,
            accountant="zcdp",
            noise_multiplier=float(min(noises)) if noises else 0.0,
            sample_rate=1.0,
            steps=len(budget.steps),
            preprocessing_epsilon=float(release.epsilon),
            training_epsilon=epsilon_used,
            preprocessing_delta=float(release.delta),
            training_delta=delta_m,
            delta_source=source,
            notes=(
                f"zCDP: rho {budget.used:.6g} of {rho:.6g} spent on {len(budget.steps)} "
                f"Gaussian measurements and exponential-mechanism selections, converted at "
                f"delta {delta_m:.3g} (Canonne, Kamath, Steinke 2020); noise_multiplier is "
                "the smallest measurement sigma (in counts)",
            ),
        )
        if spent.epsilon > float(dp.epsilon) * (1 + 1e-9) or spent.delta > delta * (1 + 1e-9):
            raise RuntimeError(f"DP accounting overshot the target: {spent}")  # pragma: no cover
        self.privacy_spent_ = spent
        self.dp_release_ = release
        self.rho_, self.rho_used_ = float(rho), float(budget.used)
        log.notes.append(f"dp accountant: {spent.notes[0]}")
        return self

    def _check_workload(self, columns: list[str]) -> None:
        """Backends with a workload check it against the modelled columns here."""
        return None

    def _release_measurements(self, transformer: CellTransformer) -> list[Measurement]:
        """The release's noisy 1-way histograms as measurements (free post-processing).

        Laplace counts of scale ``1 / epsilon_hist`` have variance ``2 / epsilon_hist^2``
        (bias: the release clips them at 0). A discovered column's null cell also holds
        the rows whose category was not released, which its released null count does
        not, so that cell is left out (weight 0). A release at epsilon 0 (every domain
        public) has placeholder counts and gives nothing.
        """
        from privacy.preprocessing import RANGE_SHARE

        out = []
        for name, size in zip(transformer.columns, transformer.sizes, strict=True):
            column = transformer.release_.columns[name]
            if column.epsilon <= 0 or size == 0:
                continue
            epsilon = column.epsilon
            if column.kind in ("numerical", "datetime") and not column.public:
                epsilon *= 1 - RANGE_SHARE
            values = np.zeros(size)
            weights = np.zeros(size)
            n_values = len(column.counts)
            values[:n_values] = column.counts
            weights[:n_values] = 1.0
            if column.nullable and not column.discovered and size > n_values:
                values[n_values] = column.null_count
                weights[n_values] = 1.0
            sigma = math.sqrt(2.0) / epsilon
            out.append(Measurement((name,), values, sigma, weights / sigma))
        return out

    # ------------------------------------------------------------------ estimation
    def _domain(self, mbi: Any) -> Any:
        return mbi.Domain(self.transformer_.columns, self.transformer_.sizes)

    def _estimate(
        self,
        mbi: Any,
        measurements: list[Measurement],
        total: int,
        iters: int,
        warm: Any = None,
    ) -> Any:
        """mbi's mirror descent on the measurements (warm started from ``warm``)."""
        domain = self._domain(mbi)
        linear = [self._linear(mbi, m) for m in measurements]
        return mbi.estimation.MirrorDescent().estimate(
            domain, linear, known_total=float(total), iters=int(iters), warm_start=warm
        )

    def _linear(self, mbi: Any, m: Measurement) -> Any:
        cache = self.__dict__.setdefault("_linear_cache", {})
        key = id(m)
        entry = cache.get(key)
        if entry is not None and entry[0] is m and entry[1] is m.values:
            return entry[2]
        if m.weights is None:
            linear = mbi.LinearMeasurement(m.values, m.clique, stddev=float(m.sigma))
        else:
            # one query object per measurement, kept: jax caches programs by its identity
            query = mbi.WeightedQuery(np.asarray(m.weights, dtype=np.float64))
            linear = mbi.LinearMeasurement(m.values * m.weights, m.clique, 1.0, query)
        cache[key] = (m, m.values, linear)
        return linear

    def _final_estimate(
        self, mbi: Any, measurements: list[Measurement], total: int, model: Any, log: TrainingLog
    ) -> Any:
        """``final_iters`` more iterations, in blocks, stopping at ``max_training_time``."""
        if self._budget is None:
            return self._estimate(mbi, measurements, total, int(self.final_iters), model)
        done = 0
        block = max(50, min(int(self.final_iters), 250))
        while done < int(self.final_iters):
            if done and self._time_fraction() >= 1.0:
                log.stopped_early = True
                log.notes.append(
                    f"max_training_time reached: the final model got {done} of "
                    f"{self.final_iters} iterations"
                )
                break
            step = min(block, int(self.final_iters) - done)
            model = self._estimate(mbi, measurements, total, step, model)
            done += step
        return model

    def _time_fraction(self) -> float:
        if getattr(self, "_budget", None) is None:
            return 0.0
        return (time.perf_counter() - self._started) / max(self._budget, 1e-9)

    @staticmethod
    def _factors(model: Any) -> list[tuple[Clique, np.ndarray]]:
        """The model's log-potentials as (attributes, float32 array) pairs."""
        out = []
        for clique in model.potentials.cliques:
            factor = model.potentials[clique]
            attrs = tuple(factor.domain.attributes)
            out.append((attrs, np.asarray(factor.values, dtype=np.float32)))
        return out

    def _marginals_of(self, model: Any, total: float) -> ModelMarginals:
        sizes = dict(zip(self.transformer_.columns, self.transformer_.sizes, strict=True))
        return ModelMarginals(self._factors(model), sizes, total)

    def _store(self, model: Any, measurements: list[Measurement], total: int) -> None:
        self.potentials_ = self._factors(model)
        self.total_ = int(total)
        self.measurements_ = [
            Measurement(m.clique, np.asarray(m.values, np.float64), float(m.sigma), m.weights)
            for m in measurements
        ]
        self.__dict__.pop("_linear_cache", None)

    # ------------------------------------------------------------------ sampling
    @property
    def cliques(self) -> list[Clique]:
        """The cliques of the fitted graphical model (its potentials)."""
        self._check_fitted()
        return [attrs for attrs, _ in self.potentials_]

    def sample(
        self,
        n: int,
        seed: int | None = None,
        conditions: dict[str, Any] | pd.DataFrame | list[dict[str, Any]] | None = None,
        max_tries: int = 100,
    ) -> pd.DataFrame:
        """``n`` rows with the training frame's columns; the same ``seed``, the same rows.

        ``conditions`` (as for every backend): equality on a categorical or boolean
        column (or null) conditions the graphical model itself (the other cells of that
        column get probability 0 before sampling); a numeric value or range keeps only
        the bins it meets. The rows are then filtered by the shared rejection sampler,
        which for categorical equality accepts every row at once.
        """
        self._check_fitted()
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ConfigError(f"n={n!r} must be a non-negative integer number of rows")
        if seed is not None:
            check_int("seed", seed, 0)
        check_int("max_tries", max_tries, 1)
        self._check_sample_size(int(n))
        rng = np.random.default_rng(SeedStreams(seed).seed("sample"))
        if conditions is None:
            return self._draw(int(n), rng, {})
        sampler = ConditionSampler(self.transformer_.schema, conditions)

        def generate(k: int, row: dict[str, Any]) -> pd.DataFrame:
            return self._draw(k, rng, self._allowed_cells(row))

        return sampler.sample(int(n), generate, max_tries=max_tries)

    def _allowed_cells(self, row: dict[str, Any]) -> dict[str, np.ndarray]:
        """Per conditioned column, the cells a matching row can be in (None: any)."""
        from synthgen.backends.conditions import _is_null

        release = self.transformer_.release_
        allowed: dict[str, np.ndarray] = {}
        for name, value in row.items():
            if name not in self.transformer_.columns:
                continue
            column = release.columns[name]
            size = column.n_cells
            n_values = len(column.counts)
            mask = np.zeros(size, dtype=bool)
            if _is_null(value):
                if size > n_values:
                    mask[n_values] = True
            elif column.kind in ("categorical", "boolean"):
                categories = list(column.categories or [])
                if value in categories:
                    mask[categories.index(value)] = True
            elif column.kind == "numerical" and column.edges is not None:
                low, high = value if isinstance(value, tuple | list) else (value, value)
                left, right = column.edges[:-1], column.edges[1:]
                lo = -np.inf if low is None else float(low)
                hi = np.inf if high is None else float(high)
                mask[:n_values] = (right >= lo) & (left <= hi)
            else:
                continue  # datetimes and durations: rejection alone
            if mask.any():
                allowed[name] = mask
        return allowed

    def _draw(
        self, n: int, rng: np.random.Generator, allowed: dict[str, np.ndarray]
    ) -> pd.DataFrame:
        """``n`` decoded rows from the model (``allowed``: cells kept per column)."""
        mbi = import_mbi()
        import jax.numpy as jnp
        from mbi.extensions import synthetic_data

        columns = self.transformer_.columns
        if not columns or n == 0:
            cells = np.zeros((n, len(columns)), dtype=np.int64)
            return self.transformer_.decode(cells, seed=int(rng.integers(2**31)))
        factors = [(attrs, np.array(values)) for attrs, values in self.potentials_]
        for name, mask in allowed.items():
            # add log(mask) to one factor over the column: conditions the whole model
            attrs, values = next((f for f in factors if name in f[0]), (None, None))
            if attrs is None:
                factors.append(((name,), np.where(mask, 0.0, _EXCLUDED).astype(np.float32)))
                continue
            axis = attrs.index(name)
            shape = [1] * len(attrs)
            shape[axis] = len(mask)
            values += np.where(mask, 0.0, _EXCLUDED).astype(np.float32).reshape(shape)
        domain = self._domain(mbi)
        tables = {
            attrs: mbi.Factor(domain.project(attrs), jnp.asarray(values))
            for attrs, values in factors
        }
        potentials = mbi.CliqueVector(domain, [a for a, _ in factors], tables)
        # the sampler reads the potentials only; marginals are a required field
        model = mbi.MarkovRandomField(
            potentials=potentials, marginals=potentials, total=float(self.total_)
        )
        parts = []
        for start in range(0, n, SAMPLE_CHUNK):
            want = min(SAMPLE_CHUNK, n - start)
            # mbi compiles its sampler per row count: draw a power-of-two block (one
            # program per size class) and keep a random subset of its rows; its rounding
            # matches the model's marginals over the whole block, in no particular order
            size = min(SAMPLE_CHUNK, max(MIN_BLOCK, 1 << (want - 1).bit_length()))
            data = synthetic_data(model, size, seed=int(rng.integers(2**31)))
            block = np.stack([np.asarray(data.data[c], np.int64) for c in columns], 1)
            parts.append(block[rng.permutation(size)[:want]])
        cells = np.concatenate(parts)
        return self.transformer_.decode(cells, seed=int(rng.integers(2**31)))

    # ------------------------------------------------------------------ persistence
    def _extra_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Cliques and log-potentials of the model, and the noisy measurements."""
        meta = {
            "total": int(self.total_),
            "rho": self.rho_,
            "rho_used": self.rho_used_,
            "cliques": [list(attrs) for attrs, _ in self.potentials_],
            "measurements": [
                {
                    "clique": list(m.clique),
                    "sigma": float(m.sigma),
                    "weighted": m.weights is not None,
                }
                for m in self.measurements_
            ],
        }
        tensors: dict[str, torch.Tensor] = {}
        for i, (_, values) in enumerate(self.potentials_):
            tensors[f"potential.{i}"] = torch.from_numpy(np.array(values, copy=True))
        for i, m in enumerate(self.measurements_):
            tensors[f"measurement.{i}"] = torch.from_numpy(np.array(m.values, copy=True))
            if m.weights is not None:
                tensors[f"weights.{i}"] = torch.from_numpy(np.array(m.weights, copy=True))
        return meta, tensors

    def _load_extra_state(self, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        sizes = dict(zip(self.transformer_.columns, self.transformer_.sizes, strict=True))
        potentials = []
        for i, clique in enumerate(meta["cliques"]):
            attrs = tuple(str(a) for a in clique)
            unknown = [a for a in attrs if a not in sizes]
            if unknown:
                raise ModelFileError(f"potential {i} names unknown column(s) {unknown}")
            values = tensors[f"potential.{i}"].numpy().astype(np.float32)
            if tuple(values.shape) != tuple(sizes[a] for a in attrs):
                raise ModelFileError(
                    f"potential {i} over {list(attrs)} has shape {tuple(values.shape)}, not "
                    f"the columns' cells {tuple(sizes[a] for a in attrs)}"
                )
            potentials.append((attrs, values))
        measurements = []
        for i, entry in enumerate(meta.get("measurements", [])):
            weights = tensors[f"weights.{i}"].numpy() if entry.get("weighted") else None
            measurements.append(
                Measurement(
                    tuple(entry["clique"]),
                    tensors[f"measurement.{i}"].numpy().astype(np.float64),
                    float(entry["sigma"]),
                    weights,
                )
            )
        self.potentials_ = potentials
        self.measurements_ = measurements
        self.total_ = int(meta["total"])
        self.rho_, self.rho_used_ = float(meta["rho"]), float(meta["rho_used"])
        self.dp_release_ = self.transformer_.release_


# ---------------------------------------------------------------------- MST
class MST(MarginalGenerator):
    """MST (McKenna, Miklau, Sheldon 2021): 1-way marginals, then a maximum spanning tree.

    The zCDP budget rho is split in thirds: all 1-way marginals (Gaussian, weights
    ``1/sqrt(d)``, so sigma ``sqrt(3 d / (2 rho))`` each), the d - 1 exponential-mechanism
    edge choices of Kruskal's algorithm (epsilon ``sqrt(8 (rho / 3) / (d - 1))`` each,
    score the L1 error of the 1-way model on the pair, sensitivity 1), and the d - 1
    chosen 2-way marginals (sigma ``sqrt(3 (d - 1) / (2 rho))`` each). See the module.
    The paper's domain compression (merging values whose noisy 1-way count is below
    3 sigma) is not done: the DP release already drops rare categories and bins the
    numeric columns, and the estimator sees every cell.
    """

    backend_name: ClassVar[str] = "mst"

    def _select_and_measure(self, mbi, codes, measurements, budget, rng, log):
        from privacy.zcdp import (
            exponential_mechanism,
            exponential_rho,
            gaussian_measure,
            gaussian_rho,
        )

        columns = self.transformer_.columns
        sizes = self.transformer_.sizes
        d = len(columns)
        total = len(codes)
        bar_total = 3
        with EpochProgress(bar_total, "MST", show_progress(self.progress)) as bar:
            share = budget.rho / 3.0 if d > 1 else budget.rho * (1 - 1e-9)
            sigma1 = math.sqrt(d / (2.0 * share))
            for i, name in enumerate(columns):
                x = _data_marginal(codes, [i], sizes)
                budget.spend(f"1-way {name}", gaussian_rho(sigma1))
                measurements.append(Measurement((name,), gaussian_measure(x, sigma1, rng), sigma1))
            model = self._estimate(mbi, measurements, total, self.iters)
            log.record(1, time.perf_counter() - self._started, rho_used=budget.used)
            bar.update(1, {})
            if d < 2:
                return model
            one_way = self._marginals_of(model, total)
            p = {name: one_way((name,)) / total for name in columns}
            pairs = list(itertools.combinations(range(d), 2))
            error = {}
            for a, b in pairs:
                x = _data_marginal(codes, [a, b], sizes)
                estimate = total * np.outer(p[columns[a]], p[columns[b]]).reshape(-1)
                error[(a, b)] = float(np.abs(x - estimate).sum())
            eps_edge = math.sqrt(8.0 * share / (d - 1))
            component = list(range(d))

            def find(a: int) -> int:
                while component[a] != a:
                    component[a] = component[component[a]]
                    a = component[a]
                return a

            tree = []
            for _ in range(d - 1):
                open_pairs = [e for e in pairs if find(e[0]) != find(e[1])]
                scores = np.array([error[e] for e in open_pairs])
                budget.spend("edge selection", exponential_rho(eps_edge))
                a, b = open_pairs[exponential_mechanism(scores, eps_edge, 1.0, rng)]
                component[find(a)] = find(b)
                tree.append((a, b))
            log.record(2, time.perf_counter() - self._started, rho_used=budget.used)
            bar.update(2, {})
            sigma2 = math.sqrt((d - 1) / (2.0 * share))
            for a, b in tree:
                x = _data_marginal(codes, [a, b], sizes)
                clique = (columns[a], columns[b])
                budget.spend(f"2-way {clique}", gaussian_rho(sigma2))
                measurements.append(Measurement(clique, gaussian_measure(x, sigma2, rng), sigma2))
            model = self._estimate(mbi, measurements, total, self.iters, model)
            log.record(3, time.perf_counter() - self._started, rho_used=budget.used)
            bar.update(3, {})
            log.notes.append(f"MST tree: {[(columns[a], columns[b]) for a, b in tree]}")
        return model


# ---------------------------------------------------------------------- AIM
class AIM(MarginalGenerator):
    """AIM (McKenna, Mullins, Sheldon, Miklau 2022): adaptive, workload-aware selection.

    ``workload``: the marginals the synthetic data should answer well, a list of column
    lists (default: every 3-way marginal of the modelled columns); candidates are all
    their non-empty subsets. ``rounds``: the paper's T, the number of rounds the
    initial noise is planned for (default ``ROUNDS_PER_COLUMN * d``; more rounds mean
    more, noisier measurements and a longer fit). ``max_model_size``: limit of the
    model's junction tree in MB (the paper's default is 80; the fit's time grows with
    it). See the module docstring for the algorithm and its accounting.
    """

    backend_name: ClassVar[str] = "aim"

    def __init__(
        self,
        epsilon: float | None = None,
        delta: float | None = None,
        dp: Any = None,
        workload: list[list[str]] | None = None,
        max_model_size: float = DEFAULT_MAX_MODEL_SIZE,
        rounds: int | None = None,
        bins: int = DEFAULT_BINS,
        integer_bins: int = DEFAULT_INTEGER_BINS,
        iters: int = DEFAULT_ITERS,
        final_iters: int = DEFAULT_FINAL_ITERS,
        seed: int = 0,
        device: str = "auto",
        progress: bool | None = None,
        max_training_time: float | None = None,
    ) -> None:
        super().__init__(
            epsilon=epsilon,
            delta=delta,
            dp=dp,
            bins=bins,
            integer_bins=integer_bins,
            iters=iters,
            final_iters=final_iters,
            seed=seed,
            device=device,
            progress=progress,
            max_training_time=max_training_time,
        )
        self.workload = workload
        self.max_model_size = max_model_size
        self.rounds = rounds

    def _check_params(self) -> None:
        super()._check_params()
        check_float("max_model_size", self.max_model_size, 0.0, low_open=True)
        check_int("rounds", self.rounds, 1, optional=True)
        if self.workload is not None:
            ok = isinstance(self.workload, list | tuple) and all(
                isinstance(c, list | tuple) and c and all(isinstance(a, str) for a in c)
                for c in self.workload
            )
            if not ok or not self.workload:
                raise ConfigError(
                    f"workload={self.workload!r} must be a non-empty list of column-name lists, "
                    "e.g. [['age', 'income'], ['sex', 'race', 'income']], or None (all 3-way "
                    "marginals)"
                )

    def _check_workload(self, columns: list[str]) -> None:
        if self.workload is None:
            return
        for clique in self.workload:
            unknown = [a for a in clique if a not in columns]
            if unknown:
                raise ConfigError(
                    f"workload marginal {list(clique)} names column(s) {unknown} that the "
                    f"model does not have; modelled columns: {columns}"
                )
            if len(set(clique)) != len(clique):
                raise ConfigError(f"workload marginal {list(clique)} repeats a column")

    def _workload(self, columns: list[str]) -> list[Clique]:
        if self.workload is not None:
            order = {name: i for i, name in enumerate(columns)}
            return [tuple(sorted(c, key=order.__getitem__)) for c in self.workload]
        return list(itertools.combinations(columns, min(3, len(columns))))

    def _select_and_measure(self, mbi, codes, measurements, budget, rng, log):
        from mbi.junction_tree import hypothetical_model_size

        from privacy.zcdp import (
            exponential_mechanism,
            exponential_rho,
            gaussian_measure,
            gaussian_rho,
        )

        columns = self.transformer_.columns
        sizes = self.transformer_.sizes
        index = {name: i for i, name in enumerate(columns)}
        size_of = dict(zip(columns, sizes, strict=True))
        total = len(codes)
        d = len(columns)
        domain = self._domain(mbi)
        workload = self._workload(columns)
        # candidates: the downward closure of the workload; weight: workload overlap
        weight: dict[Clique, float] = {}
        for clique in workload:
            for k in range(1, len(clique) + 1):
                for sub in itertools.combinations(clique, k):
                    weight[sub] = 0.0
        for sub in weight:
            weight[sub] = float(sum(len(set(sub) & set(w)) for w in workload))
        answers = {c: _data_marginal(codes, [index[a] for a in c], sizes) for c in weight}
        cells = {c: math.prod(size_of[a] for a in c) for c in weight}
        rho = budget.rho
        rounds = int(self.rounds) if self.rounds is not None else ROUNDS_PER_COLUMN * d
        if rounds <= d:
            raise ConfigError(
                f"rounds={rounds} must be above the {d} modelled columns: AIM first measures "
                f"each column's 1-way marginal at the noise planned for {rounds} rounds, so "
                f"{d} of them would spend the whole budget; use rounds >= {d + 1} or None"
            )
        sigma = math.sqrt(rounds / (2.0 * MEASURE_SHARE * rho))
        epsilon = math.sqrt(8.0 * (1.0 - MEASURE_SHARE) * rho / rounds)
        by_clique: dict[Clique, Measurement] = {}
        for name in columns:
            budget.spend(f"1-way {name}", gaussian_rho(sigma))
            x = _data_marginal(codes, [index[name]], sizes)
            m = Measurement((name,), gaussian_measure(x, sigma, rng), sigma)
            measurements.append(m)
            by_clique[(name,)] = m
        model = self._estimate(mbi, measurements, total, self.iters)
        bias = math.sqrt(2.0 / math.pi)
        selected: list[Clique] = []
        t = 0
        round_seconds = 0.0
        # the rounds that run depend on the data (annealing), the budget share does not
        with EpochProgress(100, "AIM (% of rho)", show_progress(self.progress)) as bar:
            while budget.remaining > 0:
                t += 1
                start = time.perf_counter()
                remaining = budget.remaining
                last = remaining < 2.0 * (gaussian_rho(sigma) + exponential_rho(epsilon))
                if self._budget is not None and not last:
                    elapsed = time.perf_counter() - self._started
                    last = elapsed + 2.0 * round_seconds >= self._budget
                if last:  # spend what is left (a hair less: float sums never overshoot)
                    remaining *= 1.0 - 1e-9
                    sigma = math.sqrt(1.0 / (2.0 * MEASURE_SHARE * remaining))
                    epsilon = math.sqrt(8.0 * (1.0 - MEASURE_SHARE) * remaining)
                cliques = [tuple(a) for a, _ in self._factors(model)]
                limit = self.max_model_size * budget.used / rho
                free = [c for c in weight if any(set(c) <= set(m) for m in cliques)]
                free_set = set(free)
                allowed = free + [
                    c
                    for c in weight
                    if c not in free_set and hypothetical_model_size(domain, [*cliques, c]) <= limit
                ]
                marginals = self._marginals_of(model, total)
                estimates = {c: marginals(c) for c in allowed}
                scores = np.array(
                    [
                        weight[c]
                        * (np.abs(answers[c] - estimates[c]).sum() - bias * sigma * cells[c])
                        for c in allowed
                    ]
                )
                sensitivity = max(weight[c] for c in allowed)
                selected_at = time.perf_counter()
                budget.spend("selection", exponential_rho(epsilon))
                chosen = allowed[exponential_mechanism(scores, epsilon, sensitivity, rng)]
                budget.spend(f"measure {chosen}", gaussian_rho(sigma))
                y = gaussian_measure(answers[chosen], sigma, rng)
                self._add(measurements, by_clique, chosen, y, sigma)
                selected.append(chosen)
                model = self._estimate(mbi, measurements, total, self.iters, model)
                after = self._marginals_of(model, total)(chosen)
                moved = np.abs(after - estimates[chosen]).sum()
                annealed = moved <= bias * sigma * cells[chosen]
                if annealed and not last:
                    sigma /= 2.0
                    epsilon *= 2.0
                round_seconds = time.perf_counter() - start
                log.record(
                    t,
                    round_seconds,
                    rho_used=budget.used,
                    sigma=sigma,
                    candidates=float(len(allowed)),
                    scoring_seconds=selected_at - start,
                )
                bar.update(min(100, round(100 * budget.used / rho)), {"round": float(t)})
                if last:
                    break
        log.notes.append(f"AIM: {t} rounds, selected {[list(c) for c in selected]}")
        return model

    @staticmethod
    def _add(
        measurements: list[Measurement],
        by_clique: dict[Clique, Measurement],
        clique: Clique,
        y: np.ndarray,
        sigma: float,
    ) -> None:
        """Record a Gaussian measurement; a clique measured before is combined with it.

        Inverse-variance weighting of two unbiased Gaussian measurements of the same
        counts is their sufficient statistic (nothing is lost), and one measurement per
        clique keeps the estimator's program, so jax reuses its compilation.
        """
        old = by_clique.get(clique)
        if old is None:
            m = Measurement(clique, y, sigma)
            measurements.append(m)
            by_clique[clique] = m
            return
        p_old, p_new = 1.0 / old.sigma**2, 1.0 / sigma**2
        old.values = (old.values * p_old + y * p_new) / (p_old + p_new)
        old.sigma = 1.0 / math.sqrt(p_old + p_new)

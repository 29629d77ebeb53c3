"""TabDDPM: denoising diffusion for mixed-type tables (Kotelnikov et al., ICML 2023).

Written from the paper. Numerical columns are quantile-transformed to a standard normal
(``QuantileTableTransformer``) and diffused with Gaussian noise; categorical columns
(and null indicators, and numbers with few distinct values) are one-hot groups diffused
with multinomial noise. One MLP denoiser, told the step through a sinusoidal embedding,
predicts the Gaussian noise and the clean categories at once; the loss is the Gaussian
MSE plus the multinomial ELBO estimate (T times the KL at a random step) averaged over
groups. With ``target=`` the target column is
not diffused: it conditions the denoiser through a class embedding and is drawn from
its training frequencies (or fixed by ``conditions=``) when sampling.

The pieces live in ``synthgen.diffusion`` (schedule, processes, network); this class is
the pipeline that trains and samples with them on the shared scaffold. Sampling strides
over the trained schedule (DDIM by default, or the ancestral DDPM move) in batches of
padded rows, so one move is one network pass plus a few tensor operations per batch.
"""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar

import pandas as pd
import torch

from privacy.taps import tapped_loss
from synthgen.backends.base import BaseGenerator
from synthgen.backends.params import check_choice, check_float, check_int, check_widths
from synthgen.backends.players import LinearDecay, OptimizerSpec, Player, RowLoss
from synthgen.diffusion import (
    GaussianDiffusion,
    MLPDenoiser,
    MultinomialDiffusion,
    NoiseSchedule,
    PaddedDenoiser,
)
from synthgen.errors import ConfigError
from synthgen.training import PRECISIONS, resolve_precision
from synthgen.transforms.columns import Span
from synthgen.transforms.layout import PaddedHeads, SpanLayout
from synthgen.transforms.quantile import QuantileTableTransformer


class TabDDPM(BaseGenerator):
    """Tabular denoising diffusion (Gaussian + multinomial) with an MLP denoiser.

    Parameters beyond the shared vocabulary:

    steps: optimisation steps; when set it decides the training length instead of
        ``epochs`` (diffusion is usually sized in steps, as in the paper), rounded up to
        whole epochs so every row is seen equally often.
    target: a discrete column to condition on (class-conditional model), or None to
        diffuse every column jointly.
    hidden / time_dim / dropout: widths of the MLP denoiser and of the step embedding.
    num_timesteps: diffusion steps the model is trained on (cosine schedule).
    sampler: ``"ddim"`` (Song et al. 2021) or ``"ddpm"`` (ancestral, the paper's sampler
        and this class's only one before). Both stride over the schedule; the
        multinomial part always draws from the skip-step posterior.
    sample_steps: denoising moves when sampling (strided; None = all ``num_timesteps``).
        Sampling costs one network pass per move and row, so this is its price.
    eta: DDIM noise scale in [0, 1] (``sampler="ddim"`` only): 0 makes the continuous
        part deterministic given the start noise, 1 is the DDPM posterior again.
    sample_precision: dtype of the denoiser's matrix products when sampling:
        "float32", "bfloat16" (~4.5x faster on CPUs with native bfloat16; the sampler's
        own arithmetic stays float32) or "auto" (bfloat16 where the CPU has it
        natively, float32 elsewhere and on GPUs). Training is always float32.
    learning_rate / weight_decay: AdamW; the rate decays linearly to 0 over training.
    ema_decay: samples come from an exponential moving average of the weights.
    max_training_time: seconds after which training stops (checked per epoch); the
        learning-rate decay follows whichever of steps or time runs out first.
    n_quantiles: resolution of the quantile transform of numerical columns.

    The sampling defaults (DDIM, 45 moves, eta 0.5, bfloat16 products where native)
    were chosen by measurement on Adult (docs/benchmarks.md): ~11,500 rows/s on 2
    cores, fidelity 0.003 below 200 DDPM moves (~500 rows/s before this sampler). The
    network pass is half of a move and fixes the price: 50 moves lose 0.0025 at
    ~10,500 rows/s, 40 lose 0.004, 20 lose 0.012; at 50 moves eta 0.5 beat 0 and 1 by
    0.001 on every seed. Model files saved before ``sampler`` existed hold
    ``sample_steps=200`` and keep it: ``model.set_params(sample_steps=45)``.
    """

    backend_name: ClassVar[str] = "tabddpm"
    #: Sampling algorithms (``sampler=``).
    SAMPLERS: ClassVar[tuple[str, ...]] = ("ddim", "ddpm")
    #: Rows denoised together: large enough that each step is a few big matrix
    #: products, small enough that a batch's activations stay in the tens of MB.
    SAMPLE_BATCH: ClassVar[int] = 8192
    transformer_class: ClassVar[type] = QuantileTableTransformer

    def __init__(
        self,
        epochs: int = 300,
        batch_size: int = 4096,
        seed: int = 0,
        device: str = "auto",
        dp: Any = None,
        steps: int | None = 3000,
        target: str | None = None,
        hidden: tuple[int, ...] = (512, 512, 512),
        time_dim: int = 128,
        dropout: float = 0.0,
        num_timesteps: int = 1000,
        sampler: str = "ddim",
        sample_steps: int | None = 45,
        eta: float = 0.5,
        sample_precision: str = "auto",
        learning_rate: float = 2e-3,
        weight_decay: float = 1e-4,
        ema_decay: float = 0.999,
        n_quantiles: int = 1000,
        **scaffold: Any,
    ) -> None:
        super().__init__(
            epochs=epochs, batch_size=batch_size, seed=seed, device=device, dp=dp, **scaffold
        )
        self.steps = steps
        self.target = target
        self.hidden = hidden
        self.time_dim = time_dim
        self.dropout = dropout
        self.num_timesteps = num_timesteps
        self.sampler = sampler
        self.sample_steps = sample_steps
        self.eta = eta
        self.sample_precision = sample_precision
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.ema_decay = ema_decay
        self.n_quantiles = n_quantiles

    #: Named settings. "cpu" is the constructor's defaults (Adult: ~7 min on 2 cores);
    #: "quality" is the paper's scale (wider, deeper network, 30k steps, every diffusion
    #: step when sampling), meant for a GPU.
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "cpu": {},
        "quality": {
            "steps": 30_000,
            "batch_size": 4096,
            "hidden": (1024, 1024, 1024, 1024),
            "sampler": "ddpm",
            "sample_steps": None,
            "learning_rate": 1e-3,
        },
    }

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TabDDPM:
        """A model with the named settings (``"cpu"`` or ``"quality"``), plus overrides.

        ``TabDDPM.preset("quality", device="cuda", target="income")``.
        """
        if name not in cls.PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(cls.PRESETS)}")
        return cls(**{**cls.PRESETS[name], **overrides})

    def _check_params(self) -> None:
        super()._check_params()
        check_int("steps", self.steps, 1, optional=True)
        if self.target is not None and not isinstance(self.target, str):
            raise ConfigError(f"target={self.target!r} must be a column name or None")
        check_widths("hidden", self.hidden)
        check_int("time_dim", self.time_dim, 2)
        check_float("dropout", self.dropout, 0.0, 1.0, high_open=True)
        check_int("num_timesteps", self.num_timesteps, 2)
        self._check_sampling()
        check_float("learning_rate", self.learning_rate, 0.0, low_open=True)
        check_float("weight_decay", self.weight_decay, 0.0)
        check_float("ema_decay", self.ema_decay, 0.0, 1.0, high_open=True)
        check_int("n_quantiles", self.n_quantiles, 2)

    # ------------------------------------------------------------------ fitting
    def fit(self, df: pd.DataFrame, schema=None, resume: bool = False):
        """Learn ``df`` (see ``BaseGenerator.fit``)."""
        if self.target is not None and self.target not in getattr(df, "columns", []):
            raise ConfigError(
                f"target={self.target!r} is not a column of the frame; columns: "
                f"{list(getattr(df, 'columns', []))}"
            )
        return super().fit(df, schema=schema, resume=resume)

    def _transformer_defaults(self) -> dict[str, Any]:
        return {"n_quantiles": int(self.n_quantiles)}

    def _epochs_for(self, steps_per_epoch: int) -> int:
        if self.steps is None:
            return int(self.epochs)
        return max(1, math.ceil(int(self.steps) / steps_per_epoch))

    def _make_layout(self, transformer: Any, device: torch.device) -> SpanLayout:
        """Layout of the diffused features: every span but the target's."""
        spans: list[Span] = transformer.spans
        self.target_span_: Span | None = None
        if self.target is None:
            self.feature_index_ = None
            return SpanLayout(spans, device)
        owned = [s for s in spans if s.column == self.target]
        if len(owned) != 1 or owned[0].role != "category":
            kind = transformer.schema[self.target].kind if owned else "identifier"
            raise ConfigError(
                f"target={self.target!r} is a {kind} column with a continuous encoding; "
                "TabDDPM conditions on a discrete target (categorical, boolean or a number "
                "with few values). Use target=None to model it jointly with the others"
            )
        target = owned[0]
        features: list[Span] = []
        index: list[int] = []
        for span in spans:
            if span.column == self.target:
                continue
            shift = target.width if span.start >= target.stop else 0
            features.append(Span(span.column, span.role, span.start - shift, span.width))
            index.extend(range(span.start, span.stop))
        if not features:
            raise ConfigError(
                f"the table has no column besides target={self.target!r} to generate; "
                "use target=None"
            )
        self.target_span_ = target
        self.feature_index_ = torch.tensor(index, dtype=torch.long, device=device)
        return SpanLayout(features, device)

    def _build(self, layout: SpanLayout, data: torch.Tensor | None) -> None:
        device = self.device_
        self.schedule_ = NoiseSchedule.cosine(int(self.num_timesteps))
        self.gaussian_ = GaussianDiffusion()
        self.multinomial_ = MultinomialDiffusion(layout).to(device)
        num_classes = self.target_span_.width if self.target_span_ is not None else 0
        self.denoiser_ = MLPDenoiser(
            layout.dim,
            tuple(int(h) for h in self.hidden),
            int(self.time_dim),
            num_classes,
            float(self.dropout),
        ).to(device)
        self.ema_ = copy.deepcopy(self.denoiser_).requires_grad_(False)
        if data is not None and self.target_span_ is not None:
            y = self._split_target(data)[1]
            self.class_counts_ = torch.bincount(y, minlength=num_classes).to(torch.float32)

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"denoiser": self.denoiser_, "ema": self.ema_}

    def _players(self) -> list[Player]:
        """One player: AdamW with a linear decay to 0, samples from the weights' EMA."""
        return [
            Player(
                name="denoiser",
                modules=[self.denoiser_],
                optimizer=OptimizerSpec(
                    "adamw", self.learning_rate, weight_decay=self.weight_decay
                ),
                loss=self._row_loss,
                dp_fast=tapped_loss([self.denoiser_], lambda batch: self._row_loss(batch).rows),
                schedule=LinearDecay(),
                ema=self.ema_,
                ema_decay=float(self.ema_decay),
            )
        ]

    def _split_target(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.target_span_ is None:
            return rows, None
        span = self.target_span_
        return rows[:, self.feature_index_], rows[:, span.start : span.stop].argmax(dim=1)

    # ------------------------------------------------------------------ loss
    def _loss(
        self, rows: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row Gaussian and multinomial losses at random steps ``t``."""
        x0, y = self._split_target(rows)
        n, device = len(x0), x0.device
        layout, multinomial = self.layout_, self.multinomial_
        t = torch.randint(1, self.schedule_.num_steps + 1, (n,), generator=generator, device=device)
        alpha_bar_t = self.schedule_.at(t)[:, None]
        alpha_bar_s = self.schedule_.at(t - 1)[:, None]
        xt = torch.empty_like(x0)
        alpha = layout.alpha_index
        noise = None
        if alpha.numel():
            noise = torch.randn((n, alpha.numel()), generator=generator, device=device)
            xt[:, alpha] = self.gaussian_.add_noise(x0[:, alpha], alpha_bar_t, noise)
        groups_0 = multinomial.split(x0)
        groups_t = multinomial.sample(
            multinomial.marginal(groups_0, alpha_bar_t[:, :, None]), generator
        )
        multinomial.merge(xt, groups_t)
        out = self.denoiser_(xt, t, y)
        zero = x0.new_zeros(n)
        gaussian = self.gaussian_.loss(out[:, alpha], noise) if noise is not None else zero
        discrete = zero
        if multinomial.n_groups:
            discrete = multinomial.loss(
                groups_0,
                groups_t,
                multinomial.split_logits(out),
                alpha_bar_t[:, :, None],
                alpha_bar_s[:, :, None],
            )
            # The KL of one random step, times T, is an unbiased estimate of the whole
            # multinomial ELBO (t is drawn uniformly); averaged over groups as in the paper.
            # Without the factor T the categorical term is ~1000x weaker than the MSE and
            # the joint structure of the categories is barely learned.
            discrete = discrete * (self.schedule_.num_steps / multinomial.n_groups)
        return gaussian, discrete

    def _row_loss(self, batch: torch.Tensor) -> RowLoss:
        gaussian, discrete = self._loss(batch, None)
        return RowLoss(
            gaussian + discrete,
            {"gaussian": gaussian.mean().detach(), "multinomial": discrete.mean().detach()},
        )

    def _validation_loss(self, data: torch.Tensor) -> float:
        generator = torch.Generator(device=data.device).manual_seed(int(self.seed) + 3)
        total = 0.0
        for start in range(0, len(data), 8192):
            gaussian, discrete = self._loss(data[start : start + 8192], generator)
            total += float((gaussian + discrete).sum())
        return total / len(data)

    def _extra_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Class frequencies: unconditional samples draw the target from them."""
        if self.target_span_ is None:
            return {}, {}
        return {}, {"class_counts": self.class_counts_.cpu()}

    def _load_extra_state(self, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        if "class_counts" in tensors:
            self.class_counts_ = tensors["class_counts"].to(self.device_)

    # ------------------------------------------------------------------ sampling
    def _generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        y = None
        if self.target_span_ is not None and n == 0:  # torch.multinomial refuses 0 draws
            y = torch.zeros(0, dtype=torch.long, device=self.device_)
        elif self.target_span_ is not None:
            y = torch.multinomial(self.class_counts_, n, replacement=True, generator=generator)
        return self._denoise(n, generator, y)

    def _generate_for(
        self, n: int, generator: torch.Generator, condition: dict[str, Any]
    ) -> torch.Tensor:
        """Native conditioning on the target (exact); other conditions by rejection."""
        value = condition.get(self.target) if self.target is not None else None
        if value is None or isinstance(value, tuple | list):
            return self._generate(n, generator)
        encoder = self.transformer_.encoders_[self.target]
        code = int(encoder.codes(pd.Series([value], dtype=object))[0])
        y = torch.full((n,), code, dtype=torch.long, device=self.device_)
        return self._denoise(n, generator, y)

    def _denoise(self, n: int, generator: torch.Generator, y: torch.Tensor | None) -> torch.Tensor:
        """Run the reverse process from pure noise; returns full encoded rows.

        Rows are denoised in batches of at most ``SAMPLE_BATCH``: every batch walks all
        the visited steps before the next starts, so memory is bounded by one batch's
        activations whatever ``n`` is, and each step is a few large tensor operations
        (no per-row Python). The random draws follow the batches in order, so a seed still fixes
        the rows.
        """
        self._check_sampling()  # set_params after load skips fit's checks
        if n == 0:
            return self._assemble(torch.empty((0, self.layout_.dim), device=self.device_), y)
        visited = self.schedule_.sampling_steps(self.sample_steps)
        heads = PaddedHeads(self.layout_, self.device_)
        dtype = resolve_precision(self.sample_precision, self.device_)
        net = PaddedDenoiser(self.ema_, heads, dtype)
        # equal batches of at most SAMPLE_BATCH rows (no small, inefficient last one)
        size = math.ceil(n / math.ceil(n / self.SAMPLE_BATCH))
        parts = []
        for start in range(0, n, size):
            stop = min(n, start + size)
            labels = None if y is None else y[start:stop]
            parts.append(self._denoise_batch(stop - start, generator, labels, visited, net, heads))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _denoise_batch(
        self,
        n: int,
        generator: torch.Generator,
        y: torch.Tensor | None,
        visited: list[int],
        net: PaddedDenoiser,
        heads: PaddedHeads,
    ) -> torch.Tensor:
        """One batch through every visited step, its state kept as padded rows.

        Per move: one network pass; the continuous values take a DDIM or DDPM move;
        every one-hot group is drawn from its skip-step posterior (``reverse_weights``,
        ``draw``) straight into the next state's views.
        """
        device, multinomial, gaussian = self.device_, self.multinomial_, self.gaussian_
        first_alpha, n_alpha = heads.n_discrete, heads.width - heads.n_discrete
        z = torch.empty((n, heads.width), device=device)
        if n_alpha:
            z[:, first_alpha:] = torch.randn((n, n_alpha), generator=generator, device=device)
        multinomial.draw(multinomial.uniform(n, device), generator, multinomial.blocks(z, heads))
        schedule = self.schedule_
        ddim, eta = self.sampler == "ddim", float(self.eta)
        for t, s in zip(visited[:-1], visited[1:], strict=True):
            alpha_bar_t = float(schedule.alpha_bar[t])
            alpha_bar_s = float(schedule.alpha_bar[s])
            out = net(z, t, y)
            nxt = torch.empty_like(z)  # every slot is written below: blocks, then alpha
            if n_alpha:
                xt, noise = z[:, first_alpha:], out[:, first_alpha:]
                if ddim:
                    moved = gaussian.ddim_step(xt, noise, alpha_bar_t, alpha_bar_s, eta, generator)
                else:
                    moved = gaussian.step(xt, noise, alpha_bar_t, alpha_bar_s, generator)
                nxt[:, first_alpha:] = moved
            if multinomial.n_groups:
                weights = multinomial.reverse_weights(
                    multinomial.blocks(z, heads),
                    multinomial.blocks(out, heads),
                    alpha_bar_t,
                    alpha_bar_s,
                )
                multinomial.draw(weights, generator, multinomial.blocks(nxt, heads))
            z = nxt
        x = torch.zeros((n, self.layout_.dim), device=device)
        real = heads.keep.nonzero().squeeze(1)
        x[:, heads.index[real]] = z[:, real]
        return self._assemble(x, y)

    def _check_sampling(self) -> None:
        check_choice("sampler", self.sampler, self.SAMPLERS)
        check_int("sample_steps", self.sample_steps, 1, optional=True)
        check_float("eta", self.eta, 0.0, 1.0)
        check_choice("sample_precision", self.sample_precision, PRECISIONS)

    def _assemble(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.target_span_ is None:
            return x
        span = self.target_span_
        rows = torch.zeros((len(x), self.transformer_.output_dim), device=x.device)
        rows[:, self.feature_index_] = x
        rows[torch.arange(len(x), device=x.device), span.start + y] = 1.0
        return rows

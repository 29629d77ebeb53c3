"""CTGAN: a conditional GAN for tables (Xu et al., NeurIPS 2019, section 4).

Written from the paper:

- rows use the shared mode-specific normalisation;
- a *conditional vector* one-hot encodes one category of one discrete column; during
  training the column is drawn uniformly and the category with probability
  proportional to the log of its frequency ("training-by-sampling"), and the real rows
  fed to the critic are drawn among the rows that have that category;
- the generator is a stack of residual blocks (fully connected, batch norm, ReLU, output
  concatenated with the input) whose discrete outputs pass through Gumbel-softmax and
  whose ``alpha`` outputs through ``tanh``; it is penalised by the cross-entropy between
  its output for the conditioned column and the condition;
- the critic is a PacGAN critic (``pac`` rows judged together) trained with the
  Wasserstein loss and gradient penalty.

Two defects of the widely used reference implementation are avoided on purpose and
tested: sampling runs with batch norm in evaluation mode, and the condition bit of a
discrete column is placed at that column's own offset in the conditional vector.
All sampling of conditions and of matching real rows is tensor work on the device.

Speed (same arithmetic per update, fewer and cheaper operations): the critic judges
rows in the padded layout of ``PaddedHeads`` (each bucket of one-hot groups a
contiguous ``(groups, width)`` block, padding slots 0), so the generator's last layer
writes padded logits directly (its weights gathered into that order, a small matrix)
and the Gumbel-softmax is one softmax per bucket width; real rows are stored padded
once per fit. With one critic update per generator update, the generator update reuses
the batch of conditions, noise and generated rows the critic was just trained on (as
in the usual alternating GAN loop) instead of generating a second batch.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from synthgen.backends.base import BaseGenerator
from synthgen.backends.ctgan_critic import FusedCritic
from synthgen.backends.params import check_choice, check_float, check_int, check_widths
from synthgen.backends.players import FastLoss, OptimizerSpec, Player, RowLoss
from synthgen.core.noise import gumbel_noise
from synthgen.errors import ConfigError
from synthgen.training import PRECISIONS
from synthgen.transforms.layout import PaddedHeads, SpanLayout


class ResidualBlock(nn.Module):
    """``concat(relu(bn(fc(x))), x)``: the generator's building block."""

    def __init__(self, fan_in: int, fan_out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(fan_in, fan_out)
        self.bn = nn.BatchNorm1d(fan_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class CTGANGenerator(nn.Module):
    def __init__(self, input_dim: int, hidden: tuple[int, ...], data_dim: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = input_dim
        for size in hidden:
            blocks.append(ResidualBlock(width, size))
            width += size
        self.body = nn.Sequential(*blocks, nn.Linear(width, data_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class PacCritic(nn.Module):
    """Scores packs of ``pac`` rows (PacGAN) to discourage mode collapse.

    Blocks of ``Linear -> LeakyReLU(leaky_slope) -> Dropout(dropout)``, then a linear
    score. ``ctgan_critic.FusedCritic`` reads the slope and dropout rate from these
    modules, so they are defined here only.
    """

    def __init__(
        self,
        input_dim: int,
        hidden: tuple[int, ...],
        pac: int,
        leaky_slope: float = 0.2,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.pac = pac
        layers: list[nn.Module] = []
        width = input_dim * pac
        for size in hidden:
            layers += [nn.Linear(width, size), nn.LeakyReLU(leaky_slope), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, masks: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Scores ``(rows / pac, 1)`` of rows ``x`` packed ``pac`` at a time.

        ``masks`` (one dropout multiplier per hidden layer) replace the dropout modules'
        own random draws; tests use them to compare with the closed-form path.
        """
        h = x.reshape(-1, x.shape[1] * self.pac)
        if masks is None:
            return self.body(h)
        remaining = iter(masks)
        for module in self.body:
            h = h * next(remaining) if isinstance(module, nn.Dropout) else module(h)
        return h


class ConditionalVectors:
    """The discrete columns' category slots, their frequencies and matching real rows.

    Everything is precomputed once from the encoded training tensor, so a batch of
    conditions and of real rows with those categories is a few indexing operations.
    """

    def __init__(
        self,
        layout: SpanLayout,
        data: torch.Tensor | None,
        device: torch.device,
        counts: torch.Tensor | None = None,
    ) -> None:
        """From training ``data``, or (for a loaded model) from saved category ``counts``."""
        self.spans = [s for s in layout.spans if s.role == "category"]
        self.columns = [s.column for s in self.spans]
        widths = torch.tensor([s.width for s in self.spans], dtype=torch.long)
        self.n_columns = len(self.spans)
        self.dim = int(widths.sum()) if self.n_columns else 0
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), widths.cumsum(0)[:-1]])
        max_width = int(widths.max()) if self.n_columns else 1
        # padded index of each column's slots inside the encoded row
        self.slot_index = torch.zeros(self.n_columns, max_width, dtype=torch.long)
        self.slot_pad = torch.ones(self.n_columns, max_width, dtype=torch.bool)
        saved_counts = counts
        counts = torch.zeros(self.n_columns, max_width)
        sorted_rows = []
        starts = torch.zeros(self.dim, dtype=torch.long)
        row_counts = torch.zeros(self.dim, dtype=torch.long)
        position = 0
        for j, span in enumerate(self.spans):
            self.slot_index[j, : span.width] = torch.arange(span.start, span.stop)
            self.slot_pad[j, : span.width] = False
            if data is None:
                assert saved_counts is not None
                column_counts = saved_counts[j, : span.width].round().long()
                codes = torch.zeros(0, dtype=torch.long)
            else:
                codes = data[:, span.start : span.stop].argmax(dim=1).cpu()
                column_counts = torch.bincount(codes, minlength=span.width)
            counts[j, : span.width] = column_counts.float()
            order = torch.argsort(codes, stable=True)
            sorted_rows.append(order)
            first = int(self.offsets[j])
            starts[first : first + span.width] = position + torch.cat(
                [torch.zeros(1, dtype=torch.long), column_counts.cumsum(0)[:-1]]
            )
            row_counts[first : first + span.width] = column_counts
            position += len(order)
        self.rows = torch.cat(sorted_rows) if sorted_rows else torch.zeros(0, dtype=torch.long)
        self.row_starts = starts
        self.row_counts = row_counts
        # training-by-sampling: log-frequency; sampling: empirical frequency
        log_freq = torch.log(counts + 1).masked_fill(self.slot_pad, 0.0)
        self.train_probs = log_freq / log_freq.sum(dim=1, keepdim=True).clamp_min(1e-12)
        self.data_probs = counts / counts.sum(dim=1, keepdim=True).clamp_min(1e-12)
        self.train_cdf = self._cdf(self.train_probs)
        self.data_cdf = self._cdf(self.data_probs)
        self.counts = counts
        self.to(device)

    def _cdf(self, probs: torch.Tensor) -> torch.Tensor:
        """Cumulative probabilities with each column's last slot and padding set past 1.

        Drawing ``u ~ U(0, 1)`` and counting the slots whose cumulative value is below
        it is inverse-CDF sampling: one comparison instead of ``torch.multinomial``
        (whose per-row sampling was a tenth of a training step). Setting the last real
        slot past 1 keeps rounding of the cumulative sum from ever selecting padding.
        """
        cdf = probs.cumsum(dim=1)
        last = (~self.slot_pad).sum(dim=1) - 1
        beyond = torch.arange(cdf.shape[1])[None, :] >= last[:, None]
        return cdf.masked_fill(beyond, 2.0)

    def to(self, device: torch.device) -> ConditionalVectors:
        for name in (
            "offsets",
            "slot_index",
            "slot_pad",
            "rows",
            "row_starts",
            "row_counts",
            "train_probs",
            "data_probs",
            "train_cdf",
            "data_cdf",
        ):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def draw(
        self, n: int, training: bool, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random conditions: ``(column, category, one-hot vectors)``."""
        device = self.offsets.device
        column = torch.randint(self.n_columns, (n,), device=device, generator=generator)
        cdf = (self.train_cdf if training else self.data_cdf)[column]
        u = torch.rand(n, 1, device=device, generator=generator)
        category = (cdf < u).sum(dim=1)
        return column, category, self.vectors(column, category)

    def vectors(self, column: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        """One-hot conditional vectors; the bit sits at the column's own offset."""
        vectors = torch.zeros(len(column), self.dim, device=self.offsets.device)
        vectors[
            torch.arange(len(column), device=column.device), self.offsets[column] + category
        ] = 1
        return vectors

    def real_rows(self, column: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        """Indices of random training rows having the given category (vectorised)."""
        slot = self.offsets[column] + category
        u = torch.rand(len(slot), device=slot.device)
        pick = (u * self.row_counts[slot]).long().clamp_max(self.row_counts[slot] - 1)
        return self.rows[self.row_starts[slot] + pick]


class CTGAN(BaseGenerator):
    """Conditional tabular GAN.

    Parameters beyond the shared vocabulary:

    embedding_dim: noise size; generator_dims / discriminator_dims: hidden widths;
    generator_lr / discriminator_lr and *_decay: Adam settings; discriminator_steps:
    critic updates per generator update; pac: rows per critic pack (batches are a
    multiple of it); gradient_penalty: weight of the WGAN-GP term; tau: Gumbel-softmax
    temperature during training; precision: dtype of the training products, "float32",
    "bfloat16" (float32 weights, losses, penalty norms and gradients; about twice as
    fast products on CPUs with native bfloat16) or "auto" (bfloat16 where native).
    """

    backend_name: ClassVar[str] = "ctgan"

    def __init__(
        self,
        epochs: int = 300,
        batch_size: int = 500,
        seed: int = 0,
        device: str = "auto",
        dp: Any = None,
        embedding_dim: int = 128,
        generator_dims: tuple[int, ...] = (256, 256),
        discriminator_dims: tuple[int, ...] = (256, 256),
        generator_lr: float = 2e-4,
        generator_decay: float = 1e-6,
        discriminator_lr: float = 2e-4,
        discriminator_decay: float = 1e-6,
        discriminator_steps: int = 1,
        pac: int = 10,
        gradient_penalty: float = 10.0,
        tau: float = 0.2,
        precision: str = "auto",
        **scaffold: Any,
    ) -> None:
        super().__init__(
            epochs=epochs, batch_size=batch_size, seed=seed, device=device, dp=dp, **scaffold
        )
        self.embedding_dim = embedding_dim
        self.generator_dims = generator_dims
        self.discriminator_dims = discriminator_dims
        self.generator_lr = generator_lr
        self.generator_decay = generator_decay
        self.discriminator_lr = discriminator_lr
        self.discriminator_decay = discriminator_decay
        self.discriminator_steps = discriminator_steps
        self.pac = pac
        self.gradient_penalty = gradient_penalty
        self.tau = tau
        self.precision = precision

    #: The generator's batch norm needs at least two rows in a training batch.
    min_batch_rows: ClassVar[int] = 2

    @property
    def batch_multiple(self) -> int:  # type: ignore[override]
        return int(self.pac)

    def _check_params(self) -> None:
        check_int("pac", self.pac, 1)
        super()._check_params()
        if self.dp is not None and self.pac != 1:
            raise ConfigError(
                f"pac={self.pac} packs real rows together, which DP-SGD's per-row clipping "
                "does not cover; use pac=1 with dp="
            )
        if self.batch_size % self.pac:
            raise ConfigError(f"batch_size={self.batch_size} must be a multiple of pac={self.pac}")
        check_int("embedding_dim", self.embedding_dim, 1)
        check_widths("generator_dims", self.generator_dims)
        check_widths("discriminator_dims", self.discriminator_dims)
        for name in ("generator_lr", "discriminator_lr"):
            check_float(name, getattr(self, name), 0.0, low_open=True)
        for name in ("generator_decay", "discriminator_decay", "gradient_penalty"):
            check_float(name, getattr(self, name), 0.0)
        check_int("discriminator_steps", self.discriminator_steps, 1)
        check_float("tau", self.tau, 0.0, low_open=True)
        check_choice("precision", self.precision, PRECISIONS)

    # ------------------------------------------------------------------ networks
    def _build(self, layout: SpanLayout, data: torch.Tensor) -> None:
        self.heads_ = PaddedHeads(layout, self.device_)
        if not self.heads_.complete:  # pragma: no cover - every shipped transform tiles
            raise ConfigError("CTGAN needs an encoding whose spans tile the encoded row")
        if data is not None:
            self.conditions_ = ConditionalVectors(layout, data, self.device_)
            self.train_data_ = self.heads_.pad_rows(data)
        conds = self.conditions_
        # each conditional slot's position among the padded generator outputs
        self.condition_slots_ = self.heads_.inverse[conds.slot_index]
        cond_dim = conds.dim
        self.generator_ = CTGANGenerator(
            self.embedding_dim + cond_dim, tuple(self.generator_dims), layout.dim
        ).to(self.device_)
        self.critic_ = PacCritic(
            self.heads_.width + cond_dim, tuple(self.discriminator_dims), self.pac
        )
        self.critic_.to(self.device_)
        self.fused_critic_ = FusedCritic(self.critic_, self.pac, self.compute_dtype_)
        self._pending: tuple | None = None

    def _players(self) -> list[Player]:
        """The critic (``discriminator_steps`` updates), then the generator, per step."""
        betas = (0.5, 0.9)
        return [
            Player(
                name="critic",
                modules=[self.critic_],
                optimizer=OptimizerSpec(
                    "adam", self.discriminator_lr, betas, self.discriminator_decay
                ),
                loss=self._critic_loss,
                fast=self._critic_fast,
                updates=int(self.discriminator_steps),
                log_name="loss_d",
                dp_inputs=self._critic_dp_inputs,
                dp_loss=self._critic_dp_loss,
            ),
            Player(
                name="generator",
                modules=[self.generator_],
                optimizer=OptimizerSpec("adam", self.generator_lr, betas, self.generator_decay),
                loss=self._generator_loss,
                fast=self._generator_fast,
                log_name="loss_g",
                private=False,  # it sees generated rows and the critic, never a real row
            ),
        ]

    def _modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator_, "critic": self.critic_}

    def _padded_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Generator logits in the padded layout (padding logits carry ``PAD_LOGIT``)."""
        heads = self.heads_
        body = self.generator_.body
        hidden = body[:-1](inputs)
        last = body[-1]
        bias = last.bias.index_select(0, heads.index) + heads.pad_bias
        return torch.addmm(bias, hidden, last.weight.index_select(0, heads.index).t())

    def _activate(self, logits: torch.Tensor) -> torch.Tensor:
        """Padded logits -> the row the critic sees: Gumbel-softmax groups, tanh alphas."""
        heads = self.heads_
        rows, d = logits.shape[0], heads.n_discrete
        # Gumbel noise for every discrete slot at once
        noisy = (logits[:, :d] + gumbel_noise((rows, d), device=logits.device)) / self.tau
        parts = heads.per_group(torch.softmax, noisy)
        if logits.shape[1] > d:
            parts.append(torch.tanh(logits[:, d:]))
        return torch.cat(parts, dim=1)

    def _noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.embedding_dim, device=self.device_, generator=generator)

    def _fake(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded logits and activated rows (padded layout) for conditions ``cond``.

        Training's generator pass: its products run in the compute dtype through
        autocast (autograd carries the casts back), the logits return as float32.
        """
        inputs = torch.cat([self._noise(len(cond)), cond], dim=1)
        dtype = self.compute_dtype_
        with torch.autocast(self.device_.type, dtype=dtype, enabled=dtype != torch.float32):
            logits = self._padded_logits(inputs)
        logits = logits.float()
        return logits, self._activate(logits)

    def _condition_loss(
        self,
        logits: torch.Tensor,
        column: torch.Tensor,
        category: torch.Tensor,
        reduction: str = "mean",
    ) -> torch.Tensor:
        """Cross-entropy of the generator's (padded) logits for the conditioned column."""
        conds = self.conditions_
        slots = self.condition_slots_[column]
        scores = logits.gather(1, slots).masked_fill(conds.slot_pad[column], float("-inf"))
        return F.cross_entropy(scores, category, reduction=reduction)

    def _draw_conditions(self, n: int):
        conds = self.conditions_
        if conds.n_columns:
            return conds.draw(n, training=True)
        return None, None, torch.zeros(n, 0, device=self.device_)

    def _real_rows(self, column, category, cond: torch.Tensor):
        """Real rows (padded) for shuffled copies of the conditions, as in the paper."""
        n, data = cond.shape[0], self.train_data_
        if column is None:
            return data[torch.randint(len(data), (n,), device=data.device)], cond
        perm = torch.randperm(n, device=cond.device)
        rows = self.conditions_.real_rows(column[perm], category[perm])
        return data.index_select(0, rows), cond[perm]

    # ------------------------------------------------------------------ the critic's loss
    def _critic_inputs(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Generated and real critic inputs for one update, and the penalty's mix weights.

        The scaffold's shuffled batch sets the batch size; the real rows themselves are
        drawn by training-by-sampling so they match the sampled conditions. The generated
        batch is kept, with its graph, for the generator update that follows (as in the
        usual alternating GAN loop) instead of generating a second batch. The penalty's
        interpolation weight is drawn once per pack.
        """
        column, category, cond = self._draw_conditions(n)
        logits, fake = self._fake(cond)
        self._pending = (column, category, cond, logits, fake)
        fake_in = torch.cat([fake.detach(), cond], dim=1)
        real, real_cond = self._real_rows(column, category, cond)
        packs = n // self.pac
        mix = torch.rand(packs, 1, 1, device=fake_in.device).expand(packs, self.pac, 1)
        return fake_in, torch.cat([real, real_cond], dim=1), mix.reshape(-1, 1)

    def _critic_loss(self, batch: torch.Tensor) -> RowLoss:
        """WGAN-GP per pack: ``critic(fake) - critic(real) + penalty`` (autograd)."""
        fake_in, real_in, mix = self._critic_inputs(batch.shape[0])
        packs = fake_in.shape[0] // self.pac
        scores = self.critic_(torch.cat([fake_in, real_in]))[:, 0]
        mixed = torch.lerp(fake_in, real_in, mix).requires_grad_(True)
        (slope,) = torch.autograd.grad(self.critic_(mixed).sum(), mixed, create_graph=True)
        norm = slope.reshape(packs, -1).norm(dim=1)
        penalty = float(self.gradient_penalty) * (norm - 1).square()
        rows = scores[:packs] - scores[packs:] + penalty
        return RowLoss(rows, {"penalty": penalty.mean().detach()})

    def _critic_fast(self, batch: torch.Tensor) -> FastLoss:
        """The same objective's mean and exact gradients in closed form (``ctgan_critic``)."""
        fake_in, real_in, mix = self._critic_inputs(batch.shape[0])
        d_loss, penalty, grads = self.fused_critic_.critic_gradients(
            fake_in, real_in, mix, float(self.gradient_penalty)
        )
        return FastLoss(d_loss + penalty, {"penalty": penalty}, grads=grads)

    # ------------------------------------------------------------------ the critic under DP
    def _critic_dp_inputs(
        self, batch: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-row critic inputs under DP: each real row of the Poisson ``batch`` (encoded
        layout) with a condition read from the row itself, a generated row and a mix weight.

        Training-by-sampling (drawing real rows per category) would break the Poisson
        sampling the accountant assumes, so the real rows are the batch's, each
        conditioned on its own category in a randomly chosen discrete column. Generated
        rows take conditions from the DP frequencies (the model was initialised on the DP
        pseudo rows) and are generated for at least the nominal batch (the generator's
        batch norm must not see the Poisson batch's size), then cut to the batch.
        """
        rows = batch.shape[0]
        conds = self.conditions_
        real = self.heads_.pad_rows(batch)
        nominal = max(int(self.batch_size), rows, 2)
        _, _, fake_cond = self._draw_conditions(nominal)
        with torch.no_grad():
            _, fake = self._fake(fake_cond)
        self._pending = None  # the generator draws its own rows: no reuse keyed on sizes
        fake_in = torch.cat([fake[:rows], fake_cond[:rows]], dim=1)
        if conds.n_columns:
            column = torch.randint(conds.n_columns, (rows,), device=batch.device)
            values = batch.gather(1, conds.slot_index[column].to(batch.device))
            category = values.masked_fill(conds.slot_pad[column], -1.0).argmax(dim=1)
            real_cond = conds.vectors(column, category)
        else:
            real_cond = torch.zeros(rows, 0, device=batch.device)
        mix = torch.rand(rows, 1, device=batch.device)
        return torch.cat([real, real_cond], dim=1), fake_in, mix

    def _critic_dp_loss(
        self, real_in: torch.Tensor, fake_in: torch.Tensor, mix: torch.Tensor
    ) -> RowLoss:
        """WGAN-GP per row (pac = 1): ``critic(fake) - critic(real) + penalty``.

        Written with ``torch.func.grad`` for the penalty's input gradient, so that DP's
        per-row gradients (``vmap(grad(...))``) can differentiate through it.
        """
        from torch.func import grad

        critic = self.critic_
        scores = critic(torch.cat([fake_in, real_in]))[:, 0]
        rows = fake_in.shape[0]
        mixed = torch.lerp(fake_in, real_in, mix)
        slope = grad(lambda x: critic(x).sum())(mixed)
        penalty = float(self.gradient_penalty) * (slope.reshape(rows, -1).norm(dim=1) - 1).square()
        return RowLoss(scores[:rows] - scores[rows:] + penalty)

    # ------------------------------------------------------------------ the generator's loss
    def _generated(self, n: int) -> tuple:
        """The batch the critic was just trained on (with its graph), else a fresh one."""
        pending, self._pending = self._pending, None
        if pending is not None and pending[2].shape[0] == n:
            return pending
        column, category, cond = self._draw_conditions(n)
        return (column, category, cond, *self._fake(cond))

    def _generator_loss(self, batch: torch.Tensor) -> RowLoss:
        """Per pack: ``-critic(fake)`` plus the pack's mean condition cross-entropy."""
        column, category, cond, logits, fake = self._generated(batch.shape[0])
        rows = -self.critic_(torch.cat([fake, cond], dim=1))[:, 0]
        if column is not None:
            cross_entropy = self._condition_loss(logits, column, category, reduction="none")
            rows = rows + cross_entropy.view(-1, self.pac).mean(dim=1)
        return RowLoss(rows)

    def _generator_fast(self, batch: torch.Tensor) -> FastLoss:
        """The same loss with the critic's input gradient in closed form.

        ``surrogate = sum(fake * d loss / d fake) + cross-entropy`` has exactly the
        generator loss's gradient, so autograd only runs through the generator.
        """
        column, category, cond, logits, fake = self._generated(batch.shape[0])
        g_loss, grad_in = self.fused_critic_.generator_gradient(
            torch.cat([fake.detach(), cond], dim=1)
        )
        surrogate = (fake * grad_in[:, : fake.shape[1]]).sum()
        value = g_loss
        if column is not None:
            condition_loss = self._condition_loss(logits, column, category)
            surrogate = surrogate + condition_loss
            value = value + condition_loss.detach()
        return FastLoss(value, surrogate=surrogate)

    def _validation_loss(self, data: torch.Tensor) -> float:
        """Critic's Wasserstein estimate between held-out rows and generated rows."""
        conds = self.conditions_
        n = len(data) - len(data) % self.pac
        if conds.n_columns:
            _, _, cond = conds.draw(n, training=False)
        else:
            cond = torch.zeros(n, 0, device=data.device)
        _, fake = self._fake(cond)
        real_in = torch.cat([self.heads_.pad_rows(data[:n]), cond], dim=1)
        return float(self.critic_(real_in).mean() - self.critic_(torch.cat([fake, cond], 1)).mean())

    # ------------------------------------------------------------------ sampling
    def _generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        conds = self.conditions_
        if conds.n_columns:
            _, _, cond = conds.draw(n, training=False, generator=generator)
        else:
            cond = torch.zeros(n, 0, device=self.device_)
        return self._rows_from(cond, generator)

    def _rows_from(self, cond: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        logits = self.generator_(torch.cat([self._noise(len(cond), generator), cond], dim=1))
        rows = self.layout_.sample_discrete(logits, generator)
        index = self.layout_.alpha_index
        if index.numel():
            rows[:, index] = torch.tanh(logits[:, index])
        return rows

    def _generate_for(
        self, n: int, generator: torch.Generator, condition: dict[str, Any]
    ) -> torch.Tensor:
        """Native conditioning on the first discrete condition; its value is then exact."""
        conds = self.conditions_
        transformer = self.transformer_
        for name, value in condition.items():
            if name not in conds.columns or isinstance(value, tuple | list):
                continue
            j = conds.columns.index(name)
            encoder = transformer.encoders_[name]
            code = int(encoder.codes(_as_series(value))[0])
            column = torch.full((n,), j, dtype=torch.long, device=self.device_)
            category = torch.full((n,), code, dtype=torch.long, device=self.device_)
            rows = self._rows_from(conds.vectors(column, category), generator)
            span = conds.spans[j]
            rows[:, span.start : span.stop] = 0
            rows[:, span.start + code] = 1
            return rows
        return self._generate(n, generator)

    # ------------------------------------------------------------------ persistence
    def _extra_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Category counts: unconditional sampling draws conditions by frequency."""
        return {}, {"category_counts": self.conditions_.counts.cpu()}

    def _load_extra_state(self, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        self.conditions_ = ConditionalVectors(
            self.layout_, None, self.device_, counts=tensors["category_counts"]
        )

    def _restore(self) -> None:
        self._build(self.layout_, None)


def _as_series(value: Any):
    import pandas as pd

    return pd.Series([value], dtype=object)

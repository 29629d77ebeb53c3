"""TabularAR: an autoregressive model over column tokens with any-order conditioning.

Each row is a short sequence of tokens (``transforms.tokens``). The probability of a
row factorises over its sub-columns in some order, ``p(x) = prod_i p(x_i | x_<i)``,
and one compact network gives every factor:

- one embedding table per sub-column (all in one ``nn.Embedding`` with offsets);
- for target sub-column ``i`` the embeddings of the sub-columns that come *before* it
  (a causal mask over a per-row order) are concatenated, zeros elsewhere, and passed
  through that column's own two-layer head (batched as one ``bmm`` over columns);
- training minimises the exact negative log-likelihood (cross-entropy per token).

"Flexible order" training draws a random column order for part of the rows of each
batch (the rest use the table's own order, which unconditional sampling follows), so
any subset of columns can be fixed and the rest generated from the learned
conditionals: conditional sampling, imputation and rebalancing are native. Sampling is
one batched forward pass per sub-column; ``log_prob`` returns each row's exact token
log-likelihood.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from synthgen.backends.base import BaseGenerator
from synthgen.backends.params import check_float, check_int
from synthgen.backends.players import OptimizerSpec, Plateau, Player, RowLoss
from synthgen.core.noise import gumbel_noise
from synthgen.errors import ConditionError, ConfigError
from synthgen.transforms.tokens import TokenTransformer


def exclusive_prefix_sums(values: torch.Tensor, ranks: torch.Tensor) -> torch.Tensor:
    """For every row and position i, the sum of ``values`` at positions ranked before i.

    ``values`` is ``(batch, n, width)``, ``ranks`` ``(batch, n)`` with distinct ranks per
    row. Equal to ``(ranks[:, :, None] > ranks[:, None, :]) @ values`` (the causal mask of
    each row's order) in O(n) per row instead of O(n^2): sort each row by rank, take an
    exclusive cumulative sum, put it back. The position's own value is never added (the
    shift is exact, not a subtraction), so nothing of a target leaks into its context.
    """
    order = ranks.argsort(dim=1)
    index = order.unsqueeze(-1).expand(-1, -1, values.shape[-1])
    ordered = values.gather(1, index).cumsum(dim=1)
    before = F.pad(ordered[:, :-1], (0, 0, 1, 0))
    return torch.empty_like(before).scatter_(1, index, before)


class ColumnHeadsNetwork(nn.Module):
    """Per-sub-column heads over a masked, blocked sum of the visible tokens' embeddings.

    The context of target ``i`` has ``blocks`` slots of ``embedding_dim`` numbers; source
    sub-column ``j`` owns slot ``j % blocks``, and each slot holds the sum of the
    embeddings of its visible sources (those earlier in the row's order). Each target
    has its own two-layer head over that context (MADE-style masking, Germain et al.
    2015). With one slot per sub-column (``blocks >= n``) this is the concatenation of
    the visible embeddings, zeros elsewhere; with fewer, sources share slots and the
    cost per row grows linearly with the number of sub-columns instead of with its
    square (the context is built with prefix sums in each row's order).
    """

    def __init__(
        self, sizes: list[int], embedding_dim: int, hidden_dim: int, blocks: int | None = None
    ) -> None:
        super().__init__()
        self.sizes = list(sizes)
        self.n = len(sizes)
        self.embedding_dim = embedding_dim
        self.blocks = self.n if blocks is None else min(int(blocks), self.n)
        offsets = torch.tensor([0, *np.cumsum(sizes)[:-1].tolist()], dtype=torch.long)
        self.register_buffer("offsets", offsets, persistent=False)
        slot = torch.arange(self.n) % self.blocks
        self.register_buffer("slot", slot, persistent=False)
        self.register_buffer(
            "placement", F.one_hot(slot, self.blocks).to(torch.float32), persistent=False
        )
        self.embedding = nn.Embedding(int(sum(sizes)), embedding_dim)
        width = self.blocks * embedding_dim
        vmax = max(sizes)
        # a slot sums up to n / blocks embeddings: scale the first map by that fan-in too
        scale1 = 1.0 / np.sqrt(self.n * embedding_dim)
        scale2 = 1.0 / np.sqrt(hidden_dim)
        self.w1 = nn.Parameter(torch.empty(self.n, width, hidden_dim).uniform_(-scale1, scale1))
        self.b1 = nn.Parameter(torch.zeros(self.n, 1, hidden_dim))
        self.w2 = nn.Parameter(
            torch.empty(self.n, hidden_dim, hidden_dim).uniform_(-scale2, scale2)
        )
        self.b2 = nn.Parameter(torch.zeros(self.n, 1, hidden_dim))
        self.w3 = nn.Parameter(torch.empty(self.n, hidden_dim, vmax).uniform_(-scale2, scale2))
        self.b3 = nn.Parameter(torch.zeros(self.n, 1, vmax))
        pad = torch.ones(self.n, vmax, dtype=torch.bool)
        for i, size in enumerate(sizes):
            pad[i, :size] = False
        self.register_buffer("pad", pad, persistent=False)

    @torch.no_grad()
    def init_output_bias(self, tokens: torch.Tensor) -> None:
        """Start every head at its column's log-frequencies.

        Adam moves a logit by about one learning rate per step, so from zero a head
        would need thousands of steps to reach the marginal of a skewed column (a 90%
        category next to 0.1% ones); starting there leaves the network to learn only
        the dependencies.
        """
        for i, size in enumerate(self.sizes):
            counts = torch.bincount(tokens[:, i].cpu(), minlength=size).float()
            self.b3[i, 0, :size] = torch.log((counts + 0.5) / (counts.sum() + 0.5 * size))

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(batch, n, embedding_dim)`` embeddings of each sub-column's token."""
        return self.embedding(tokens + self.offsets)

    def placed(self, emb: torch.Tensor) -> torch.Tensor:
        """``(batch, n, blocks * embedding_dim)``: each embedding in its source's slot."""
        if self.blocks == self.n:  # one slot each: a block-diagonal layout, no products
            out = emb.new_zeros(emb.shape[0], self.n, self.n, self.embedding_dim)
            index = torch.arange(self.n, device=emb.device)
            out[:, index, index] = emb
        else:
            out = emb.unsqueeze(2) * self.placement.to(emb.dtype)[None, :, :, None]
        return out.reshape(emb.shape[0], self.n, -1)

    def _heads(
        self, context: torch.Tensor, columns: torch.Tensor | slice, taps: list | None = None
    ) -> torch.Tensor:
        """Logits ``(k, batch, V)`` of heads ``columns`` from ``(k, batch, context_dim)``.

        ``taps`` (a list) collects each linear map's input and pre-activation output,
        for DP's ghost clipping (``privacy.dp_sgd.Tap``).
        """
        z1 = torch.baddbmm(self.b1[columns], context, self.w1[columns])
        h1 = F.relu(z1)
        z2 = torch.baddbmm(self.b2[columns], h1, self.w2[columns])
        h2 = h1 + F.relu(z2)
        z3 = torch.baddbmm(self.b3[columns], h2, self.w3[columns])
        if taps is not None:
            from privacy.taps import Tap

            maps = ((context, z1, self.w1, self.b1), (h1, z2, self.w2, self.b2))
            maps += ((h2, z3, self.w3, self.b3),)
            taps += [Tap("linear", z, a, batch_dim=1, params=(w, b)) for a, z, w, b in maps]
        return z3.masked_fill(self.pad[columns].unsqueeze(1), float("-inf"))

    def forward(
        self, tokens: torch.Tensor, ranks: torch.Tensor, taps: list | None = None
    ) -> torch.Tensor:
        """Logits ``(n, batch, V)``; token j informs token i when ``ranks[b, j] < ranks[b, i]``.

        Every sub-column's token has its own rows in the embedding table (``offsets``),
        so one data row never looks up one embedding row twice (what the embedding tap
        of ghost clipping assumes).
        """
        emb = self.embed(tokens)  # (B, n, d)
        if taps is not None:
            from privacy.taps import Tap

            taps.append(
                Tap("embedding", emb, batch_dim=0, bias=False, params=(self.embedding.weight,))
            )
        if self.blocks == self.n:
            # one slot per sub-column: the masked concatenation itself, one pass over
            # (B, n, n, d) (the prefix sums would take several over the same size)
            visible = (ranks.unsqueeze(2) > ranks.unsqueeze(1)).unsqueeze(-1).to(emb.dtype)
            context = (emb.unsqueeze(1) * visible).reshape(emb.shape[0], self.n, -1)
        else:  # shared slots: prefix sums in each row's order, O(n) per row
            context = exclusive_prefix_sums(self.placed(emb), ranks)  # (B, n, blocks * d)
        return self._heads(context.transpose(0, 1), slice(None), taps)

    def add_to_context(self, context: torch.Tensor, column: int, emb: torch.Tensor) -> None:
        """Add sub-column ``column``'s embeddings ``(batch, d)`` into its slot of ``context``."""
        start = int(self.slot[column]) * self.embedding_dim
        context[:, start : start + self.embedding_dim] += emb

    def known_context(self, emb: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """``(batch, blocks * d)`` context of the ``known`` sub-columns' embeddings."""
        return (self.placed(emb) * known.unsqueeze(-1).to(emb.dtype)).sum(dim=1)

    def column_logits(self, context: torch.Tensor, column: int) -> torch.Tensor:
        """Logits of one sub-column from the context of the tokens known so far."""
        size = self.sizes[column]
        h = torch.addmm(self.b1[column], context, self.w1[column]).relu_()
        h = h.add_(torch.addmm(self.b2[column], h, self.w2[column]).relu_())
        return torch.addmm(self.b3[column, :, :size], h, self.w3[column, :, :size])


class TabularAR(BaseGenerator):
    """Autoregressive tabular generator with exact likelihood and any-order conditioning.

    Parameters beyond the shared vocabulary:

    embedding_dim / hidden_dim: network width; context_blocks: slots of ``embedding_dim``
    numbers in each head's input, one per sub-column up to this many, shared beyond
    (None: always one per sub-column, which makes the cost per row grow with the
    square of the number of columns); learning_rate, weight_decay: AdamW;
    flexible_share: share of rows per batch trained in a random column order (0 =
    fixed order only; conditioning on later columns then relies on rejection);
    max_training_time: seconds after which training stops (checked per epoch);
    bins / positions / max_exact_values / rare_min_count: tokenisation.
    By default 10% of rows are held out and training stops early when their
    likelihood stops improving; the best epoch's weights are kept.
    """

    backend_name: ClassVar[str] = "tabular_ar"
    transformer_class: ClassVar[type] = TokenTransformer

    def __init__(
        self,
        epochs: int = 100,
        batch_size: int = 512,
        seed: int = 0,
        device: str = "auto",
        dp: Any = None,
        embedding_dim: int = 8,
        hidden_dim: int = 64,
        context_blocks: int | None = 16,
        learning_rate: float = 3e-3,
        weight_decay: float = 1e-5,
        flexible_share: float = 0.5,
        bins: int = 64,
        positions: int = 16,
        max_exact_values: int = 128,
        rare_min_count: int = 5,
        validation_fraction: float = 0.1,
        early_stopping_patience: int | None = 4,
        **scaffold: Any,
    ) -> None:
        super().__init__(
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            device=device,
            dp=dp,
            validation_fraction=validation_fraction,
            early_stopping_patience=early_stopping_patience,
            **scaffold,
        )
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.context_blocks = context_blocks
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.flexible_share = flexible_share
        self.bins = bins
        self.positions = positions
        self.max_exact_values = max_exact_values
        self.rare_min_count = rare_min_count

    @classmethod
    def _params_from_file(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Files from before ``context_blocks`` had one context slot per sub-column."""
        if isinstance(params, dict) and "context_blocks" not in params:
            params = {**params, "context_blocks": None}
        return params

    def _check_params(self) -> None:
        super()._check_params()
        check_int("embedding_dim", self.embedding_dim, 1)
        check_int("hidden_dim", self.hidden_dim, 1)
        check_int("context_blocks", self.context_blocks, 1, optional=True)
        check_float("learning_rate", self.learning_rate, 0.0, low_open=True)
        check_float("weight_decay", self.weight_decay, 0.0)
        check_float("flexible_share", self.flexible_share, 0.0, 1.0)
        check_int("bins", self.bins, 2)
        check_int("positions", self.positions, 1)
        check_int("max_exact_values", self.max_exact_values, 1)
        check_int("rare_min_count", self.rare_min_count, 0)

    def _transformer_defaults(self) -> dict[str, Any]:
        """Tokenisation options come from this model's parameters."""
        return {
            "bins": int(self.bins),
            "positions": int(self.positions),
            "max_exact_values": int(self.max_exact_values),
            "rare_min_count": int(self.rare_min_count),
        }

    # ------------------------------------------------------------------ networks
    def _make_layout(self, transformer: Any, device: torch.device) -> None:
        tokens = transformer
        self.sub_column_of_ = torch.tensor(tokens.sub_column_of, dtype=torch.long, device=device)
        # position of each sub-column inside its column (0: first token, 1: position token)
        within = []
        for i, column in enumerate(tokens.sub_column_of):
            within.append(int(i > 0 and tokens.sub_column_of[i - 1] == column))
        self.within_ = torch.tensor(within, dtype=torch.long, device=device)
        return None

    def _build(self, layout: Any, data: torch.Tensor | None) -> None:
        sizes = self.transformer_.sizes
        if not sizes:
            raise ConfigError("TabularAR needs at least one non-identifier column to learn")
        self.network_ = ColumnHeadsNetwork(
            sizes, self.embedding_dim, self.hidden_dim, self.context_blocks
        )
        if data is not None:
            self.network_.init_output_bias(data)
        self.network_.to(self.device_)

    def _players(self) -> list[Player]:
        # halve the step size whenever held-out likelihood stalls: late, small steps
        # are what calibrates the heads' probabilities
        return [
            Player(
                name="network",
                modules=[self.network_],
                optimizer=OptimizerSpec(
                    "adamw", self.learning_rate, weight_decay=self.weight_decay
                ),
                loss=self._row_loss,
                dp_fast=self._row_loss_taps,
                schedule=Plateau(factor=0.5, patience=0),
            )
        ]

    def _modules(self) -> dict[str, nn.Module]:
        return {"network": self.network_}

    # ------------------------------------------------------------------ orders and loss
    def _ranks(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Rank of every sub-column per row: random column order for a share of rows."""
        n_columns = int(self.sub_column_of_.max()) + 1
        device = self.device_
        canonical = torch.arange(n_columns, device=device).expand(batch, -1)
        scores = torch.rand(batch, n_columns, device=device, generator=generator)
        shuffled = scores.argsort(dim=1).argsort(dim=1)
        flexible = torch.rand(batch, 1, device=device, generator=generator) < self.flexible_share
        column_rank = torch.where(flexible, shuffled, canonical)
        return column_rank[:, self.sub_column_of_] * 2 + self.within_

    def _nll(
        self, tokens: torch.Tensor, ranks: torch.Tensor, taps: list | None = None
    ) -> torch.Tensor:
        """Per-row negative log-likelihood under the orders ``ranks``."""
        logits = self.network_(tokens, ranks, taps)  # (n, B, V)
        log_probs = torch.log_softmax(logits, dim=-1)
        picked = log_probs.gather(-1, tokens.t().unsqueeze(-1)).squeeze(-1)  # (n, B)
        return -picked.sum(dim=0)

    def _row_loss(self, batch: torch.Tensor) -> RowLoss:
        """Each row's negative log-likelihood, a share of rows in a random column order."""
        return RowLoss(self._nll(batch, self._ranks(batch.shape[0])))

    def _row_loss_taps(self, batch: torch.Tensor) -> tuple[torch.Tensor, list]:
        """The same loss and the taps of its forward (DP's ghost clipping path)."""
        taps: list = []
        return self._nll(batch, self._ranks(batch.shape[0]), taps), taps

    def _validation_loss(self, data: torch.Tensor) -> float:
        """Held-out NLL in the table's own order (the order sampling uses)."""
        total = 0.0
        for start in range(0, len(data), 4096):
            chunk = data[start : start + 4096]
            ranks = (self.sub_column_of_ * 2 + self.within_).expand(len(chunk), -1)
            total += float(self._nll(chunk, ranks).sum())
        return total / len(data)

    # ------------------------------------------------------------------ sampling
    def _generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self._complete(
            torch.zeros(n, len(self.transformer_.sizes), dtype=torch.long, device=self.device_),
            torch.zeros(n, len(self.transformer_.sizes), dtype=torch.bool, device=self.device_),
            generator,
        )

    @torch.no_grad()
    def _complete(
        self, tokens: torch.Tensor, known: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Fill the unknown sub-columns, in the table's order, given the known ones.

        ``known`` may differ per row (imputation); every row follows the table's column
        order over its unknown cells, conditioned on all its known cells.
        """
        network = self.network_
        tokens = tokens.clone()
        known = known.clone()
        # the context of every row: the placed embeddings of its known tokens, grown as
        # each sub-column is drawn (O(embedding_dim) per drawn token)
        if bool(known.any()):
            context = network.known_context(network.embed(tokens), known)
        else:  # unconditional sampling: nothing known yet
            width = network.blocks * network.embedding_dim
            context = torch.zeros(len(tokens), width, device=tokens.device)
        for column in range(network.n):
            todo = ~known[:, column]
            if not todo.any():
                continue
            every = bool(todo.all())  # the common unconditional case: no row gathering
            logits = network.column_logits(context if every else context[todo], column)
            choice = (logits + gumbel_noise(logits, generator)).argmax(dim=1)
            emb = network.embedding(choice + network.offsets[column])
            if every:
                tokens[:, column] = choice
                network.add_to_context(context, column, emb)
                known[:, column] = True
            else:
                tokens[todo, column] = choice
                grown = context[todo]
                network.add_to_context(grown, column, emb)
                context[todo] = grown
                known[todo, column] = True
        return tokens

    def _generate_for(
        self, n: int, generator: torch.Generator, condition: dict[str, Any]
    ) -> torch.Tensor:
        """Fix the tokens of equality conditions and generate the rest natively."""
        frame = pd.DataFrame([condition] * n) if condition else None
        return self._fill(frame, n, generator)

    def _fill(self, frame: pd.DataFrame | None, n: int, generator: torch.Generator):
        sizes = self.transformer_.sizes
        tokens = torch.zeros(n, len(sizes), dtype=torch.long, device=self.device_)
        known = torch.zeros(n, len(sizes), dtype=torch.bool, device=self.device_)
        if frame is not None:
            fixed, mask = self._tokens_of(frame)
            tokens[:, :] = fixed.to(self.device_)
            known[:, :] = mask.to(self.device_)
        return self._complete(tokens, known, generator)

    def _tokens_of(self, frame: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens and known-mask of partially filled rows (NaN / missing = unknown).

        Range conditions are left unknown here (rejection sampling enforces them).
        """
        tokenizer = self.transformer_
        n = len(frame)
        tokens = torch.zeros(n, len(tokenizer.sizes), dtype=torch.long)
        known = torch.zeros(n, len(tokenizer.sizes), dtype=torch.bool)
        position = 0
        for column in tokenizer.columns_:
            width = len(column.sizes)
            if column.kind == "id" or column.name not in frame.columns:
                position += width
                continue
            series = frame[column.name]
            is_range = series.map(lambda v: isinstance(v, tuple | list)).to_numpy(dtype=bool)
            present = series.notna().to_numpy() & ~is_range
            if present.any():
                values = series[present]
                if not is_range.any():
                    values = values.astype(frame[column.name].dtype) if len(values) else values
                encoded = tokenizer._encode_column(column, values.reset_index(drop=True))
                rows = torch.from_numpy(np.flatnonzero(present))
                for k, part in enumerate(encoded):
                    tokens[rows, position + k] = torch.from_numpy(part)
                    # the position token of a binned number is re-drawn: the condition
                    # fixes the value's bin; rejection keeps exact value matches exact
                    known[rows, position + k] = column.kind != "binned" or k == 0
            position += width
        return tokens, known

    # ------------------------------------------------------------------ public extras
    def impute(self, df: pd.DataFrame, seed: int | None = None) -> pd.DataFrame:
        """Fill the missing cells of ``df`` from the learned conditionals.

        Known cells are kept as they are; each row's missing cells are generated given
        all of its known cells. (Columns that may legitimately be null are treated the
        same: a missing cell is regenerated, possibly as null.)
        """
        self._check_fitted()
        missing = [c for c in self.schema.names if c not in df.columns]
        if missing:
            raise ConditionError(f"impute: column(s) {missing} are missing from the frame")
        seed = int(self.seed) if seed is None else int(seed)
        from synthgen.training import make_generator

        generator = make_generator(seed, self.device_)
        self.network_.eval()
        tokens = self._fill(df[self.schema.names], len(df), generator)
        filled = self.transformer_.decode(tokens.cpu(), seed=seed)
        result = df[self.schema.names].copy()
        for column in result.columns:
            if self.schema[column].kind == "id":
                continue
            gaps = result[column].isna()
            if gaps.any():
                result.loc[gaps, column] = filled.loc[gaps.to_numpy(), column].to_numpy()
                result[column] = result[column].astype(df[column].dtype, errors="ignore")
        return result

    @torch.no_grad()
    def log_prob(self, df: pd.DataFrame) -> np.ndarray:
        """Log-likelihood of each row's tokens under the model (table order).

        Numbers contribute the probability of their bin and sub-interval, so values are
        compared at the tokenizer's resolution. Higher means more typical; useful for
        outlier detection and likelihood-based membership audits.
        """
        self._check_fitted()
        tokens = self.transformer_.encode(df[self.schema.names]).to(self.device_)
        self.network_.eval()
        out = []
        for start in range(0, len(tokens), 4096):
            chunk = tokens[start : start + 4096]
            ranks = (self.sub_column_of_ * 2 + self.within_).expand(len(chunk), -1)
            out.append(-self._nll(chunk, ranks).cpu())
        return torch.cat(out).numpy().astype(np.float64)

"""Vectorised per-column heads over the encoded row (``SpanLayout``, ``PaddedHeads``).

Lives in ``transforms`` (it needs only ``Span``) so that both ``synthgen.diffusion`` and
``synthgen.backends`` can use it: ``backends`` imports ``diffusion``, so a layout
module under ``backends`` made the two packages import each other.

The encoded row mixes continuous scalars and one-hot groups of different widths. A
naive loss loops over columns in Python on every batch; here the one-hot groups are
bucketed by width into padded index matrices once, so a whole batch's cross-entropy,
softmax or categorical sampling is a handful of tensor operations.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from synthgen.core.noise import gumbel_noise
from synthgen.transforms.columns import Span


class _Bucket:
    """One-hot groups of similar width, gathered into a padded ``(groups, width)`` index."""

    def __init__(self, spans: list[Span], device: torch.device) -> None:
        width = max(s.width for s in spans)
        index = torch.zeros(len(spans), width, dtype=torch.long)
        pad = torch.ones(len(spans), width, dtype=torch.bool)
        for row, span in enumerate(spans):
            index[row, : span.width] = torch.arange(span.start, span.stop)
            pad[row, : span.width] = False
        self.spans = spans
        self.index = index.to(device)
        self.pad = pad.to(device)

    def gather(self, data: torch.Tensor, fill: float) -> torch.Tensor:
        """``(batch, groups, width)`` view of ``data`` with padding set to ``fill``."""
        return data[:, self.index].masked_fill(self.pad, fill)


class SpanLayout:
    """Precomputed indexing for the continuous and discrete parts of an encoded row."""

    def __init__(self, spans: list[Span], device: torch.device) -> None:
        self.spans = spans
        self.dim = max((s.stop for s in spans), default=0)
        alpha = [s.start for s in spans if s.continuous]
        self.alpha_index = torch.tensor(alpha, dtype=torch.long, device=device)
        discrete = [s for s in spans if not s.continuous]
        by_width: dict[int, list[Span]] = {}
        for span in discrete:
            by_width.setdefault(_bucket_width(span.width), []).append(span)
        self.buckets = [_Bucket(group, device) for _, group in sorted(by_width.items())]
        mask = torch.zeros(self.dim)
        for span in discrete:
            mask[span.start : span.stop] = 1.0
        self.discrete_mask = mask.to(device)
        self.n_discrete = len(discrete)

    def targets(self, data: torch.Tensor) -> list[torch.Tensor]:
        """Index of the hot slot of every discrete group, per bucket: ``(batch, groups)``."""
        return [bucket.gather(data, -1.0).argmax(dim=-1) for bucket in self.buckets]

    def cross_entropy(self, logits: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
        """Sum over discrete groups of the cross-entropy, per row: shape ``(batch,)``.

        ``data`` is one-hot in every discrete group, so the logits of the true classes
        summed over groups are one masked dot product with the row; no per-group
        gather or argmax is needed (they were a fifth of a TVAE step on Adult).
        """
        total = -(logits * data * self.discrete_mask).sum(dim=1)
        for bucket in self.buckets:
            total = total + torch.logsumexp(bucket.gather(logits, float("-inf")), dim=-1).sum(-1)
        return total

    def sample_discrete(
        self, logits: torch.Tensor, generator: torch.Generator | None, temperature: float = 1.0
    ) -> torch.Tensor:
        """Rows with each discrete group replaced by a one-hot drawn from its softmax."""
        out = logits.clone()
        for bucket in self.buckets:
            scores = bucket.gather(logits, float("-inf")) / temperature
            choice = (scores + gumbel_noise(scores, generator)).argmax(dim=-1)
            hot = F.one_hot(choice, scores.shape[-1]).to(logits.dtype)
            rows = hot.shape[0]
            flat_index = bucket.index.expand(rows, -1, -1)[:, ~bucket.pad]
            out = out.scatter(1, flat_index, hot[:, ~bucket.pad])
        return out


#: Added to padding logits: exp() of it is exactly 0 and 0 * it stays finite.
PAD_LOGIT = -1e9


class PaddedHeads:
    """Index maps between the encoded row and a padded per-bucket layout.

    In the padded layout every bucket's one-hot groups form a contiguous
    ``(groups, width)`` block (padding slots hold 0), followed by the continuous
    ``alpha`` values. Per-group softmaxes become one ``softmax`` per bucket over a
    view, with no gather of the batch. A network whose last layer has its weights
    gathered by ``index`` writes padded logits directly; ``pad_bias`` (``PAD_LOGIT``
    at padding) added to its bias gives padding exactly zero probability. Every
    encoded slot appears exactly once (``complete``), so ``inverse`` maps back.
    """

    def __init__(self, layout: SpanLayout, device: torch.device) -> None:
        positions: list[int] = []
        pad: list[bool] = []
        self.blocks: list[tuple[int, int, int]] = []  # (start, groups, width)
        for bucket in layout.buckets:
            groups, width = bucket.index.shape
            self.blocks.append((len(positions), groups, width))
            positions += bucket.index.reshape(-1).tolist()
            pad += bucket.pad.reshape(-1).tolist()
        self.n_discrete = len(positions)
        positions += layout.alpha_index.tolist()
        pad += [False] * int(layout.alpha_index.numel())
        #: Width of a padded row.
        self.width = len(positions)
        index = torch.tensor(positions, dtype=torch.long)
        is_pad = torch.tensor(pad, dtype=torch.bool)
        real = index[~is_pad]
        #: True when every encoded slot is exactly one non-padding position.
        self.complete = bool(
            len(real) == layout.dim and torch.equal(real.sort().values, torch.arange(layout.dim))
        )
        inverse = torch.zeros(layout.dim, dtype=torch.long)
        if self.complete:
            inverse[real] = torch.nonzero(~is_pad).squeeze(1)
        self.index = index.to(device)
        self.inverse = inverse.to(device)
        self.keep = (~is_pad).to(torch.float32).to(device)
        bias = torch.zeros(len(positions))
        bias[is_pad] = PAD_LOGIT
        self.pad_bias = bias.to(device)

    def pad_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Encoded rows in the padded layout (padding slots 0): done once per fit."""
        return rows.index_select(1, self.index) * self.keep

    def per_group(
        self, function: Callable[..., torch.Tensor], discrete: torch.Tensor
    ) -> list[torch.Tensor]:
        """``function(block, -1)`` on every bucket's ``(batch, groups, width)`` view.

        ``discrete`` is the discrete part of padded rows; each result is flattened back
        to ``(batch, groups * width)``, in layout order.
        """
        rows = discrete.shape[0]
        return [
            function(
                discrete[:, start : start + groups * width].view(rows, groups, width), -1
            ).reshape(rows, groups * width)
            for start, groups, width in self.blocks
        ]

    def log_softmax(self, logits: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of the discrete part of padded ``logits``: ``(batch, n_discrete)``.

        ``logits`` already carry ``pad_bias`` (it is folded into the output layer's bias).
        """
        biased = logits[:, : self.n_discrete]
        parts = self.per_group(torch.log_softmax, biased)
        if len(parts) == 1:
            return parts[0]
        return torch.cat(parts, dim=1) if parts else biased


def _bucket_width(width: int) -> int:
    """Bucket of a one-hot group: the next power of two of its width."""
    return 1 << max(0, (width - 1).bit_length())

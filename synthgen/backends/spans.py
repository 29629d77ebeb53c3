"""Vectorised per-column heads over the encoded row.

The encoded row mixes continuous scalars and one-hot groups of different widths. A
naive loss loops over columns in Python on every batch; here the one-hot groups are
bucketed by width into padded index matrices once, so a whole batch's cross-entropy,
softmax or categorical sampling is a handful of tensor operations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
            bucket = 1 << max(0, (span.width - 1).bit_length())  # next power of two
            by_width.setdefault(bucket, []).append(span)
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

    def softmax(
        self,
        logits: torch.Tensor,
        tau: float = 1.0,
        hard: bool = False,
        gumbel: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Row with continuous parts copied and each discrete group replaced by its softmax.

        ``gumbel`` adds Gumbel noise (the Gumbel-softmax relaxation); ``hard`` returns
        one-hot vectors with straight-through gradients.
        """
        out = logits.clone()
        for bucket in self.buckets:
            scores = bucket.gather(logits, float("-inf"))
            if gumbel:
                scores = scores + _gumbel_like(scores, generator)
            probs = F.softmax(scores / tau, dim=-1)
            if hard:
                hot = F.one_hot(probs.argmax(-1), probs.shape[-1]).to(probs.dtype)
                probs = hot - probs.detach() + probs
            rows = probs.shape[0]
            flat_index = bucket.index.expand(rows, -1, -1)[:, ~bucket.pad]
            out = out.scatter(1, flat_index, probs[:, ~bucket.pad])
        return out

    def sample_discrete(
        self, logits: torch.Tensor, generator: torch.Generator | None, temperature: float = 1.0
    ) -> torch.Tensor:
        """Rows with each discrete group replaced by a one-hot drawn from its softmax."""
        out = logits.clone()
        for bucket in self.buckets:
            scores = bucket.gather(logits, float("-inf")) / temperature
            choice = (scores + _gumbel_like(scores, generator)).argmax(dim=-1)
            hot = F.one_hot(choice, scores.shape[-1]).to(logits.dtype)
            rows = hot.shape[0]
            flat_index = bucket.index.expand(rows, -1, -1)[:, ~bucket.pad]
            out = out.scatter(1, flat_index, hot[:, ~bucket.pad])
        return out


def _gumbel_like(scores: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    u = torch.rand(scores.shape, generator=generator, device=scores.device, dtype=scores.dtype)
    return -torch.log((-torch.log(u.clamp_min(1e-20))).clamp_min(1e-20))

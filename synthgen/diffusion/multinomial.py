"""Multinomial diffusion for one-hot groups (Hoogeboom et al. 2021), as in TabDDPM.

Forward: each category survives with probability ``ab_t`` and is otherwise replaced by
a uniform draw over the group's ``K`` categories:
``q(x_t | x_0) = Cat(ab_t x_0 + (1 - ab_t) / K)``. The network predicts ``x_0``
(logits); the reverse move ``t -> s`` is the posterior

    q(x_s | x_t, x_0)  ∝  (a x_t + (1 - a) / K)  *  (ab_s x_0 + (1 - ab_s) / K),
    a = ab_t / ab_s,

with the predicted ``x_0`` distribution plugged in. The training loss is the KL between
the true and the predicted posterior of the previous step; at ``t = 1`` it is the
negative log-likelihood of ``x_0`` (the same formula with ``ab_0 = 1``).

Groups of different widths are handled together: ``SpanLayout`` buckets them into
padded ``(batch, groups, width)`` tensors; padding has probability 0 everywhere.
"""

from __future__ import annotations

import torch

from synthgen.core.noise import gumbel_noise
from synthgen.transforms.layout import PaddedHeads, SpanLayout

_TINY = 1e-30


class MultinomialDiffusion:
    """Vectorised forward noise, posterior, loss and sampling over all one-hot groups."""

    def __init__(self, layout: SpanLayout) -> None:
        self.layout = layout
        self.buckets = layout.buckets
        # categories per group, shaped to broadcast over (batch, groups, width)
        self.sizes = [(~b.pad).sum(dim=1).to(torch.float32)[None, :, None] for b in self.buckets]
        self.valid = [(~b.pad).to(torch.float32)[None] for b in self.buckets]
        self.n_groups = layout.n_discrete

    # -- moving between the encoded row and padded group tensors
    def split(self, rows: torch.Tensor) -> list[torch.Tensor]:
        """One-hot groups of ``rows`` as padded ``(batch, groups, width)`` tensors."""
        return [b.gather(rows, 0.0) for b in self.buckets]

    def split_logits(self, out: torch.Tensor) -> list[torch.Tensor]:
        return [b.gather(out, float("-inf")) for b in self.buckets]

    def merge(self, rows: torch.Tensor, groups: list[torch.Tensor]) -> torch.Tensor:
        """Write group tensors back into the encoded rows (in place, also returned)."""
        for bucket, group in zip(self.buckets, groups, strict=True):
            rows[:, bucket.index[~bucket.pad]] = group[:, ~bucket.pad]
        return rows

    @staticmethod
    def blocks(padded: torch.Tensor, heads: PaddedHeads) -> list[torch.Tensor]:
        """``(batch, groups, width)`` views of padded rows' one-hot blocks, bucket order.

        In ``PaddedHeads``' layout each bucket is one contiguous block ordered as
        ``split`` orders it, so these views stand in for ``split`` with no copy (and
        writing a draw into a view writes the padded row).
        """
        rows = padded.shape[0]
        return [
            padded[:, start : start + groups * width].view(rows, groups, width)
            for start, groups, width in heads.blocks
        ]

    # -- the processes
    def marginal(self, x0: list[torch.Tensor], alpha_bar: torch.Tensor) -> list[torch.Tensor]:
        """Probabilities of ``q(x_t | x_0)``; ``alpha_bar`` has shape ``(batch, 1, 1)``."""
        return [
            (alpha_bar * g + (1 - alpha_bar) / k) * v
            for g, k, v in zip(x0, self.sizes, self.valid, strict=True)
        ]

    def posterior(
        self,
        xt: list[torch.Tensor],
        x0: list[torch.Tensor],
        alpha_bar_t: torch.Tensor,
        alpha_bar_s: torch.Tensor,
    ) -> list[torch.Tensor]:
        """Probabilities of ``q(x_s | x_t, x_0)`` for any ``s < t``; ``x0`` may be a distribution.

        Hoogeboom et al. (2021) write the posterior for adjacent steps; the skip-step
        form follows from the same transition matrices. One forward step is
        ``Q_k = alpha_k I + (1 - alpha_k) U`` with ``U = 1 1^T / K``; as ``U^2 = U``,

            (a I + (1 - a) U)(b I + (1 - b) U) = ab I + (1 - ab) U,

        so ``Q_{s+1} ... Q_t = a I + (1 - a) U`` with ``a = prod alpha_k = ab_t / ab_s``:
        ``q(x_t | x_s) = Cat(a x_s + (1 - a) / K)``. As a function of ``x_s`` (for a
        one-hot ``x_t``) that is the vector ``a x_t + (1 - a) / K`` (the matrix is
        symmetric). Bayes with ``q(x_s | x_0) = Cat(ab_s x_0 + (1 - ab_s) / K)`` and the
        Markov property (``x_t`` depends on ``x_0`` only through ``x_s``) gives

            q(x_s | x_t, x_0)  ∝  (a x_t + (1 - a) / K)  *  (ab_s x_0 + (1 - ab_s) / K),

        the adjacent-step formula with ``alpha_t`` replaced by ``ab_t / ab_s``; for
        ``s = t - 1`` it is the paper's. Because ``x_s`` given ``x_0`` is a Markov chain
        backwards too, this equals the adjacent-step posteriors composed from ``t`` down
        to ``s`` (a test checks it). For a distribution ``x_0 = p`` the same formula is
        the posterior of the chain started from ``x_0 ~ Cat(p)`` (the prior is linear in
        ``x_0``), so the composition holds for a fixed ``p`` too; a strided sampler
        differs from the full one only in asking the network for ``p`` less often.
        """
        alpha_ts = alpha_bar_t / alpha_bar_s
        out = []
        for g_t, g_0, k, v in zip(xt, x0, self.sizes, self.valid, strict=True):
            likelihood = alpha_ts * g_t + (1 - alpha_ts) / k
            prior = alpha_bar_s * g_0 + (1 - alpha_bar_s) / k
            unnormalised = likelihood * prior * v
            out.append(unnormalised / unnormalised.sum(dim=-1, keepdim=True).clamp_min(_TINY))
        return out

    def reverse_weights(
        self,
        xt: list[torch.Tensor],
        logits: list[torch.Tensor],
        alpha_bar_t: float,
        alpha_bar_s: float,
    ) -> list[torch.Tensor]:
        """``posterior(xt, predicted_x0(logits), ...)`` times a positive factor per group.

        What a sampler draws from, fused: ``softmax`` is left unnormalised where the
        normalisation cancels, and the posterior is not normalised at all (``draw``
        does not need it), so a step makes ~9 passes over the groups instead of ~20.
        ``xt`` is one-hot; padding weighs exactly 0.
        """
        a = alpha_bar_t / alpha_bar_s
        out = []
        for g_t, scores, k, v in zip(xt, logits, self.sizes, self.valid, strict=True):
            e = (scores - scores.amax(dim=-1, keepdim=True)).exp_()  # 0 at padding
            prior = e.mul_(alpha_bar_s / e.sum(dim=-1, keepdim=True)).add_(
                v * ((1 - alpha_bar_s) / k)
            )  # ab_s x0 + (1 - ab_s) / K
            # prior * (a x_t + (1 - a) / K), as prior (1 - a) / K + a prior x_t
            out.append(torch.addcmul(prior * ((1 - a) / k), prior, g_t, value=a))
        return out

    @staticmethod
    def draw(
        weights: list[torch.Tensor],
        generator: torch.Generator | None = None,
        out: list[torch.Tensor] | None = None,
    ) -> list[torch.Tensor]:
        """One-hot draws in proportion to non-negative ``weights`` (inverse CDF).

        One uniform number per group instead of a Gumbel number per category, and no
        logarithms: the first slot whose cumulative sum exceeds ``u * total`` is picked,
        slot ``j`` with probability ``w_j / total``; a zero weight (padding) is never
        picked, as its cumulative sum equals its left neighbour's. ``torch.rand`` is at most
        ``1 - 2^-24``, and ``(1 - 2^-24) * total`` rounds below ``total`` for every
        float32 ``total``, so the pick never runs past the last category. Written into
        ``out`` when given (views of the sampler's padded rows), else into new tensors.
        """
        drawn = []
        for i, w in enumerate(weights):
            cumulative = w.cumsum(dim=-1)
            total = cumulative[..., -1:]
            u = torch.rand(total.shape, generator=generator, device=w.device, dtype=w.dtype)
            # 0 before the pick, 1 from it on (written over the sums); the one-hot is
            # where that steps up
            past = torch.gt(cumulative, u * total, out=cumulative)
            hot = torch.empty_like(w) if out is None else out[i]
            hot[..., :1] = past[..., :1]
            torch.sub(past[..., 1:], past[..., :-1], out=hot[..., 1:])
            drawn.append(hot)
        return drawn

    @staticmethod
    def predicted_x0(logits: list[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.softmax(scores, dim=-1) for scores in logits]

    def sample(
        self, probs: list[torch.Tensor], generator: torch.Generator | None = None
    ) -> list[torch.Tensor]:
        """One-hot draws from group probabilities (Gumbel-max, padding never chosen)."""
        out = []
        for p in probs:
            gumbel = gumbel_noise(p, generator)
            scores = torch.log(p.clamp_min(_TINY)).masked_fill(p <= 0, float("-inf"))
            choice = (scores + gumbel).argmax(dim=-1)
            # a comparison, not F.one_hot: one_hot reads the values (no vmap, as DP needs)
            slots = torch.arange(p.shape[-1], device=p.device)
            out.append((choice.unsqueeze(-1) == slots).to(p.dtype))
        return out

    def uniform(self, n: int, device: torch.device) -> list[torch.Tensor]:
        """The ``t = T`` prior: every category of a group equally likely."""
        pairs = zip(self.valid, self.sizes, strict=True)
        return [(v / k).expand(n, -1, -1).to(device) for v, k in pairs]

    def loss(
        self,
        x0: list[torch.Tensor],
        xt: list[torch.Tensor],
        logits: list[torch.Tensor],
        alpha_bar_t: torch.Tensor,
        alpha_bar_s: torch.Tensor,
    ) -> torch.Tensor:
        """KL(q(x_s | x_t, x_0) || p(x_s | x_t)) summed over groups, per row ``(batch,)``."""
        true_post = self.posterior(xt, x0, alpha_bar_t, alpha_bar_s)
        model_post = self.posterior(xt, self.predicted_x0(logits), alpha_bar_t, alpha_bar_s)
        total = x0[0].new_zeros(x0[0].shape[0]) if x0 else torch.zeros(0)
        for q, p in zip(true_post, model_post, strict=True):
            kl = torch.xlogy(q, q) - q * torch.log(p.clamp_min(_TINY))
            total = total + kl.sum(dim=(1, 2))
        return total

    def to(self, device: torch.device) -> MultinomialDiffusion:
        self.sizes = [k.to(device) for k in self.sizes]
        self.valid = [v.to(device) for v in self.valid]
        return self

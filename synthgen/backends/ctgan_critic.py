"""CTGAN's critic updates (WGAN-GP, PacGAN MLP critic) with a hand-derived backward pass.

Why: the critic update is the expensive half of a CTGAN step. Through autograd it
builds a double-backward graph for the gradient penalty, adds the penalty's and the
Wasserstein loss's weight gradients tensor by tensor and draws dropout masks with
``bernoulli_`` (about 8 ns per element on CPU). The critic is a plain MLP
(``Linear -> LeakyReLU -> Dropout`` blocks, then a linear score), so everything has a
short closed form:

- with ``d_l = dropout_mask * leaky_relu'(a_l)``, the gradient of a pack's score with
  respect to its input is ``u_1 W_1`` where ``u_L = w_out * d_L`` and
  ``u_l = (u_{l+1} W_{l+1}) * d_l``;
- ``leaky_relu'`` is piecewise constant, so the penalty reaches the weights only
  through the ``W`` factors of that chain (no bias gradient, no second derivative);
- the Wasserstein loss's backward is the same chain scaled by +-1/packs, so each
  layer's weight gradient (loss + penalty) is one matrix product over the stacked
  rows of both.

Dropout with ``p = 1/2`` takes its keep/drop decisions from random bits, 63 per
``int64`` draw (other rates draw one Bernoulli number per element). The slope and the
dropout rate are read from the critic's own ``LeakyReLU`` / ``Dropout`` modules, and
``tests/test_ctgan.py`` holds the gradients equal to autograd's through
``PacCritic.forward`` with the same dropout masks.
"""

from __future__ import annotations

import torch
from torch import nn

_BITS = 63


def half_dropout_mask(
    rows: int,
    cols: int,
    device: torch.device,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Multiplier of ``Dropout(p=0.5)``: 0 or 2, each with probability 1/2.

    Each ``int64`` from ``random_`` carries 63 independent fair bits, so a mask costs
    one random draw per 63 elements instead of one per element.
    """
    count = rows * cols
    words = torch.empty((count + _BITS - 1) // _BITS, dtype=torch.int64, device=device)
    words.random_(generator=generator)
    shifts = torch.arange(_BITS, device=device)
    bits = (words.unsqueeze(1) >> shifts).bitwise_and_(1)
    return bits.reshape(-1)[:count].view(rows, cols).to(dtype).mul_(2.0)


class _Weights:
    """The critic's weights and biases cast once to the compute dtype for one update."""

    def __init__(self, hidden: list[nn.Linear], out: nn.Linear, dtype: torch.dtype) -> None:
        self.hidden = [layer.weight.to(dtype) for layer in hidden]
        self.biases = [layer.bias.to(dtype) for layer in hidden]
        self.out = out.weight.to(dtype)
        self.out_bias = out.bias.to(dtype)


class FusedCritic:
    """Closed-form forward / backward of a ``PacCritic``'s parameters.

    ``compute_dtype`` is the dtype of the products and activations: float32 (exact)
    or bfloat16 (on CPUs with native bfloat16 products, about twice as fast); losses,
    the penalty's norms and every returned gradient are float32 either way.
    ``masks`` arguments (lists of per-layer dropout multipliers) exist for tests; by
    default fresh masks are drawn, as ``nn.Dropout`` would in training mode.
    """

    def __init__(
        self, critic: nn.Module, pac: int, compute_dtype: torch.dtype = torch.float32
    ) -> None:
        linears = [m for m in critic.modules() if isinstance(m, nn.Linear)]
        self.hidden, self.out = linears[:-1], linears[-1]
        slopes = {m.negative_slope for m in critic.modules() if isinstance(m, nn.LeakyReLU)}
        rates = {m.p for m in critic.modules() if isinstance(m, nn.Dropout)}
        if len(slopes) != 1 or len(rates) != 1:
            raise ValueError("FusedCritic needs one LeakyReLU slope and one dropout rate")
        self.slope = float(slopes.pop())
        self.dropout = float(rates.pop())
        self.pac = pac
        self.compute_dtype = compute_dtype

    def _mask(self, rows: int, cols: int, like: torch.Tensor) -> torch.Tensor:
        """A fresh training-mode dropout multiplier (0 or 1 / (1 - p)) for one layer."""
        if self.dropout == 0.5:
            return half_dropout_mask(rows, cols, like.device, dtype=like.dtype)
        keep = 1.0 - self.dropout
        if keep <= 0.0:
            return torch.zeros(rows, cols, device=like.device, dtype=like.dtype)
        mask = torch.empty(rows, cols, device=like.device, dtype=torch.float32)
        return mask.bernoulli_(keep).div_(keep).to(like.dtype)

    def _forward(
        self, weights: _Weights, packs: torch.Tensor, masks: list[torch.Tensor] | None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Inputs of every layer (``packs`` first) and the derivative factors ``d_l``."""
        inputs, factors = [packs], []
        for i, (weight, bias) in enumerate(zip(weights.hidden, weights.biases, strict=True)):
            pre = torch.addmm(bias, inputs[-1], weight.t())
            mask = (
                self._mask(pre.shape[0], pre.shape[1], pre)
                if masks is None
                else masks[i].to(pre.dtype)
            )
            factor = torch.where(pre > 0, mask, mask * self.slope)
            inputs.append(pre.mul_(factor))  # leaky_relu(a) * mask == a * factor
            factors.append(factor)
        return inputs, factors

    def _score(self, weights: _Weights, last: torch.Tensor) -> torch.Tensor:
        return torch.addmm(weights.out_bias, last, weights.out.t()).float()

    def _chain(
        self, weights: _Weights, factors: list[torch.Tensor], upstream: torch.Tensor
    ) -> list[torch.Tensor]:
        """``u_1 .. u_L``: d(upstream * score)/d(pre-activation) of every hidden layer."""
        chain = [upstream.to(factors[-1].dtype) * weights.out * factors[-1]]
        for i in range(len(self.hidden) - 1, 0, -1):
            chain.insert(0, torch.mm(chain[0], weights.hidden[i]).mul_(factors[i - 1]))
        return chain

    def critic_gradients(
        self,
        fake_in: torch.Tensor,
        real_in: torch.Tensor,
        mix: torch.Tensor,
        penalty_weight: float,
        masks: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[nn.Parameter, torch.Tensor]]:
        """Wasserstein loss, gradient penalty and the critic's parameter gradients.

        ``mix`` (rows x 1, equal within a pack) interpolates real and fake rows for the
        penalty. Same as autograd on ``mean(critic(fake)) - mean(critic(real)) +
        penalty_weight * mean((|d critic(mixed) / d mixed| - 1)^2)``.
        """
        cd = self.compute_dtype
        with torch.no_grad():
            weights = _Weights(self.hidden, self.out, cd)
            packs = fake_in.shape[0] // self.pac
            both = torch.cat([fake_in, real_in]).view(2 * packs, -1).to(cd)
            inputs, factors = self._forward(weights, both, None if masks is None else masks[0])
            scores = self._score(weights, inputs[-1])
            loss = scores[:packs].mean() - scores[packs:].mean()
            sign = torch.full((2 * packs, 1), 1.0 / packs, device=both.device)
            sign[packs:] = -1.0 / packs
            errors = self._chain(weights, factors, sign)  # the Wasserstein loss's backward

            mixed = torch.lerp(fake_in, real_in, mix).view(packs, -1).to(cd)
            _, mixed_factors = self._forward(weights, mixed, None if masks is None else masks[1])
            chain = self._chain(weights, mixed_factors, torch.ones(packs, 1, device=both.device))
            first = weights.hidden[0]
            slope = torch.mm(chain[0], first)  # d score / d mixed, per pack
            norm = slope.float().norm(dim=1, keepdim=True)
            penalty = penalty_weight * (norm - 1).square().mean()
            scale = (2.0 * penalty_weight / packs) * (norm - 1) / norm.clamp_min(1e-12)
            upstream = slope.mul_(scale.to(cd))

            grads: dict[nn.Parameter, torch.Tensor] = {}
            grads[self.hidden[0].weight] = torch.mm(
                torch.cat([errors[0], chain[0]]).t(), torch.cat([both, upstream])
            ).float()
            grad_chain = torch.mm(upstream, first.t())
            for i, layer in enumerate(self.hidden):
                grads[layer.bias] = errors[i].sum(0, dtype=torch.float32)
                grad_pre = grad_chain.mul_(mixed_factors[i])
                if i + 1 < len(self.hidden):
                    following = weights.hidden[i + 1]
                    grads[self.hidden[i + 1].weight] = torch.mm(
                        torch.cat([errors[i + 1], chain[i + 1]]).t(),
                        torch.cat([inputs[i + 1], grad_pre]),
                    ).float()
                    grad_chain = torch.mm(grad_pre, following.t())
            grads[self.out.weight] = torch.mm(sign.t(), inputs[-1].float()) + grad_pre.sum(
                0, keepdim=True, dtype=torch.float32
            )
            grads[self.out.bias] = sign.sum(0)
        return loss, penalty, grads

    def generator_gradient(
        self, fake_in: torch.Tensor, masks: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``-mean(critic(fake_in))`` and its gradient w.r.t. ``fake_in`` (weights fixed)."""
        with torch.no_grad():
            weights = _Weights(self.hidden, self.out, self.compute_dtype)
            packs = fake_in.shape[0] // self.pac
            packed = fake_in.reshape(packs, -1).to(self.compute_dtype)
            inputs, factors = self._forward(weights, packed, masks)
            loss = -self._score(weights, inputs[-1]).mean()
            upstream = torch.full((packs, 1), -1.0 / packs, device=fake_in.device)
            chain = self._chain(weights, factors, upstream)
            grad = torch.mm(chain[0], weights.hidden[0]).float().view_as(fake_in)
        return loss, grad

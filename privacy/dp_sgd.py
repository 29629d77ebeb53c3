"""DP-SGD (Abadi et al. 2016): Poisson-sampled batches, per-sample gradients, clipping, noise.

The scaffold trains every backend's private players through ``DPSGDStep``; this module
knows nothing about backends, only modules and a loss with one value per row.

- **Sampling.** ``poisson_indices`` includes each row independently with probability
  ``q`` (the sampling the RDP / PRV accountants analyse); a batch may be empty, and the
  step still runs (noise only), so the number of steps never depends on the data.
- **Per-sample gradients** come from ``torch.func``: ``vmap(grad(loss of one row))``.
  Why not opacus' hooks: they cover Linear/Conv/Embedding/norm layers but not
  TabularAR's batched per-column layers, and they cannot differentiate twice, which
  the WGAN-GP critic needs (opacus issue #31). ``torch.func`` handles any module built
  from differentiable torch ops; ``tests/test_dp_sgd.py`` holds its per-sample
  gradients equal to opacus' ``GradSampleModule`` on the layers both support.
- **Clipping, noise, scaling** are opacus' ``DPOptimizer``: each per-sample gradient is
  clipped to ``max_grad_norm`` (over all of the player's parameters together), the
  clipped gradients are summed, Gaussian noise of standard deviation
  ``noise_multiplier * max_grad_norm`` is added once, and the sum is divided by the
  *expected* batch size ``q * n`` (never the drawn one, which would leak it). Large
  batches are processed in chunks (opacus' skip-step accumulation) so memory stays
  bounded: the chunks are summed before the single noise draw, exactly as one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from opacus.optimizers import DPOptimizer
from torch import nn
from torch.func import functional_call, grad, vmap

from privacy.taps import RowLossFn, Tap, check_coverage, ghost_norms
from synthgen.core.errors import ConfigError

#: Memory the per-sample gradients of one chunk may take (bytes): chunks are sized so
#: that ``rows * parameters * 4`` stays below it.
CHUNK_BYTES = 256 * 2**20


def poisson_indices(
    n: int, sample_rate: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Indices of the rows in one Poisson batch: each of ``n`` rows in with probability q."""
    if not 0.0 < sample_rate <= 1.0:
        raise ConfigError(f"sample_rate={sample_rate!r} must be in (0, 1]")
    keep = torch.rand(n, generator=generator, device=device) < sample_rate
    return keep.nonzero().squeeze(1)


class _LossOf(nn.Module):
    """The player's modules under one root, so ``functional_call`` can swap their weights.

    ``functional_call`` replaces parameters *by name on the module it is given*; the
    loss function refers to the same module objects, so it sees the swapped ones.
    """

    def __init__(self, modules: Sequence[nn.Module], loss: RowLossFn) -> None:
        super().__init__()
        self.parts = nn.ModuleList(modules)
        self._loss = loss

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self._loss(*inputs)


class PerSampleGradients:
    """Per-row gradients of a row loss over the given modules, in chunks of rows.

    ``loss(*inputs)`` returns one value per row for inputs with a leading row axis; it
    is evaluated on one row at a time (a batch of one) inside ``vmap``, so nothing may
    couple rows (no batch norm, no batch statistics) and random draws are independent
    per row (``randomness="different"``).
    """

    def __init__(self, modules: Sequence[nn.Module], loss: RowLossFn) -> None:
        self.root = _LossOf(modules, loss)
        named = [(k, p) for k, p in self.root.named_parameters() if p.requires_grad]
        if not named:
            raise ConfigError("DP-SGD needs at least one trainable parameter")
        self.names = [k for k, _ in named]
        self.params = [p for _, p in named]
        self.numel = sum(p.numel() for p in self.params)

    def chunk_rows(self) -> int:
        """Rows per chunk so that one chunk's per-sample gradients fit ``CHUNK_BYTES``."""
        return max(1, CHUNK_BYTES // (4 * self.numel))

    def __call__(self, *inputs: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Per-sample gradients (one tensor per parameter, rows first) and row losses."""
        params = {k: p.detach() for k, p in zip(self.names, self.params, strict=True)}
        rows = inputs[0].shape[0]
        if rows == 0:
            empty = [
                torch.zeros((0, *p.shape), device=p.device, dtype=p.dtype) for p in self.params
            ]
            return empty, torch.zeros(0, device=self.params[0].device)
        in_dims = (None,) + (0,) * len(inputs)
        grads, values = vmap(
            grad(self._one_row_fn, has_aux=True), in_dims=in_dims, randomness="different"
        )(params, *inputs)
        return [grads[k] for k in self.names], values

    def _one_row_fn(self, params: dict[str, torch.Tensor], *row: torch.Tensor):
        values = functional_call(self.root, params, tuple(r.unsqueeze(0) for r in row))
        return values.sum(), values.detach().sum()


class DPSGDStep:
    """One private optimisation step: per-sample gradients -> opacus' clip, noise, scale.

    ``optimizer`` is the player's ordinary optimiser over ``per_sample.params``; the
    step wraps it in opacus' ``DPOptimizer``. ``expected_batch_size`` is ``q * n``.
    """

    def __init__(
        self,
        per_sample: PerSampleGradients,
        optimizer: torch.optim.Optimizer,
        noise_multiplier: float,
        max_grad_norm: float,
        expected_batch_size: float,
        chunk_rows: int | None = None,
    ) -> None:
        self.per_sample = per_sample
        self.optimizer = DPOptimizer(
            optimizer,
            noise_multiplier=float(noise_multiplier),
            max_grad_norm=float(max_grad_norm),
            expected_batch_size=expected_batch_size,
            loss_reduction="mean",
        )
        self.chunk = int(chunk_rows) if chunk_rows else per_sample.chunk_rows()

    @property
    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    @property
    def params(self) -> list[nn.Parameter]:
        return self.per_sample.params

    def step(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Clip, sum, noise and apply the gradients of the rows in ``inputs``.

        Returns the rows' mean loss (for the progress display only: it is computed on
        the raw rows without noise, so the scaffold never stores it under DP).
        """
        rows = inputs[0].shape[0]
        starts = list(range(0, rows, self.chunk)) or [0]
        total = torch.zeros((), device=self.per_sample.params[0].device)
        for i, start in enumerate(starts):
            part = tuple(x[start : start + self.chunk] for x in inputs)
            grads, values = self.per_sample(*part)
            total = total + values.sum()
            for param, g in zip(self.per_sample.params, grads, strict=True):
                param.grad_sample = g
            last = i == len(starts) - 1
            if not last:
                self.optimizer.signal_skip_step(do_skip=True)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return total / max(rows, 1)

    def state_dict(self) -> dict:
        return self.optimizer.original_optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.original_optimizer.load_state_dict(state)


# ---------------------------------------------------------------------- ghost clipping
class GhostClippingStep:
    """The same private step as ``DPSGDStep`` without per-row gradients in memory.

    ``loss(*inputs)`` returns the per-row losses and the ``Tap`` list of its forward,
    which must cover every trainable parameter exactly once. Per-row norms come from
    ``ghost_norms``; the clipped sum is one backward of ``sum(c_r * loss_r)`` with the
    clip factors ``c_r = min(1, C / (norm_r + 1e-6))`` (opacus' formula); the noise is
    ``N(0, (noise_multiplier * C)^2)`` per coordinate and the sum is divided by the
    expected batch size, as opacus' ``DPOptimizer`` does. ``tests/test_dp_sgd.py``
    holds it equal to ``DPSGDStep`` (torch.func + opacus) without noise, and its noise
    to the stated scale.
    """

    def __init__(
        self,
        params: Sequence[nn.Parameter],
        loss: Callable[..., tuple[torch.Tensor, list[Tap]]],
        optimizer: torch.optim.Optimizer,
        noise_multiplier: float,
        max_grad_norm: float,
        expected_batch_size: float,
    ) -> None:
        self.params = list(params)
        self.loss = loss
        self.optimizer = optimizer
        self.noise_multiplier = float(noise_multiplier)
        self.max_grad_norm = float(max_grad_norm)
        self.expected_batch_size = float(expected_batch_size)
        self._checked = False

    @property
    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    def step(self, *inputs: torch.Tensor) -> torch.Tensor:
        for p in self.params:
            p.grad = None
        rows = inputs[0].shape[0]
        if rows:
            values, taps = self.loss(*inputs)
            if not self._checked:
                check_coverage(taps, self.params)
                self._checked = True
            outputs = [t.output for t in taps]
            grads = torch.autograd.grad(values.sum(), outputs, retain_graph=True)
            norms = ghost_norms(taps, grads)
            factor = (self.max_grad_norm / (norms + 1e-6)).clamp(max=1.0).detach()
            (values * factor).sum().backward()
            mean = values.detach().mean()
        else:
            mean = torch.zeros(())
        std = self.noise_multiplier * self.max_grad_norm
        for p in self.params:
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            if std > 0:
                grad = grad + torch.normal(0.0, std, size=p.shape, device=p.device, dtype=p.dtype)
            p.grad = grad / self.expected_batch_size
        self.optimizer.step()
        for p in self.params:
            p.grad = None
        return mean

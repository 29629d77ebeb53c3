"""What a backend declares so that the scaffold can optimise it: players and losses.

A backend owns networks and losses; the scaffold owns optimisation. Each set of
parameters updated together is a ``Player`` (one for a VAE, a diffusion model or an
autoregressive model; a critic and a generator for a GAN). A player names its
modules, its optimiser settings and a loss that returns **one value per row**
(``RowLoss.rows``, shape ``(batch,)``; the scaffold takes the mean), so per-sample
methods such as DP-SGD live in one place: under ``dp=`` the scaffold trains every
``private`` player (one that reads real rows) with DP-SGD on per-row gradients, and
the others (a GAN's generator, which sees only generated rows and the critic) with
ordinary steps on placeholder batches that hold no real data. How often a player is updated per
training step (``updates``: n critic steps per generator step), its learning-rate
schedule, an exponential moving average of its weights and a post-step constraint
are declared here too; ``synthgen.backends.optimization`` carries them out.

A player may also offer an accelerated path (``fast``): an exact equivalent of the
loss's gradient computed without autograd's general machinery (a hand-derived
backward pass, or a surrogate scalar whose gradient equals the loss's). The scaffold
uses it only when it is exactly equivalent, i.e. when nothing needs per-sample
gradients; the autograd ``loss`` stays the definition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

OPTIMIZERS = ("adam", "adamw")


@dataclass
class RowLoss:
    """A loss with one value per row (or per pack of rows), plus detached metrics to log."""

    rows: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class FastLoss:
    """The accelerated path's result for one batch.

    ``value`` is the batch's mean loss (for the log). Exactly one of ``grads`` (closed-form
    gradient of that mean for every parameter of the player; missing ones are zero) and
    ``surrogate`` (a scalar whose autograd gradient equals the mean loss's) is set.
    """

    value: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    grads: dict[nn.Parameter, torch.Tensor] | None = None
    surrogate: torch.Tensor | None = None


@dataclass(frozen=True)
class OptimizerSpec:
    """Which optimiser the scaffold builds for a player, and its settings."""

    kind: str = "adam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0

    def build(self, params: list[nn.Parameter], fused: bool) -> torch.optim.Optimizer:
        if self.kind not in OPTIMIZERS:
            raise ValueError(f"optimizer kind {self.kind!r} is not one of {OPTIMIZERS}")
        klass = torch.optim.Adam if self.kind == "adam" else torch.optim.AdamW
        options = {"lr": self.lr, "betas": self.betas, "weight_decay": self.weight_decay}
        if fused:
            options["fused"] = True
        return klass(params, **options)


@dataclass(frozen=True)
class LinearDecay:
    """Learning rate falls linearly to 0 over the planned steps, or the time budget if sooner."""


@dataclass(frozen=True)
class Plateau:
    """Multiply the learning rate by ``factor`` when the epoch's loss stops improving.

    The monitored value is the validation loss when there is a validation split, else
    the player's training loss.
    """

    factor: float = 0.5
    patience: int = 0


Schedule = LinearDecay | Plateau


@dataclass
class Player:
    """One set of parameters with its optimiser, loss and update rules.

    ``loss(batch)`` returns a ``RowLoss``; ``fast(batch)``, when given, returns a
    ``FastLoss`` with the same gradient. ``log_name`` is the key of the mean loss in the
    training log. ``ema`` is a copy of the modules' network whose weights the scaffold
    moves towards the trained ones after each update (with a warm-up: the decay is
    ``min(ema_decay, (1 + k) / (10 + k))`` at update ``k``). ``after_step`` runs after
    every optimiser step (e.g. to keep a parameter inside its bounds).

    Differential privacy: ``private`` says whether the loss reads real rows (then DP
    trains the player with DP-SGD). Under DP the per-row gradients are taken of
    ``dp_loss`` (default ``loss``) on the tensors ``dp_inputs(batch)`` returns (default
    ``(batch,)``), one row at a time inside ``torch.func.vmap``: whatever must be
    computed for the whole batch first (a GAN's generated rows, which pass through a
    batch norm) is done in ``dp_inputs``, outside the per-row transform. ``dp_fast``,
    when given, is the accelerated DP path: the per-row losses of ``dp_inputs`` plus
    the ``privacy.dp_sgd.Tap`` list of the forward, from which ghost clipping gets the
    per-row gradient norms without per-row gradients (an exact equivalent).
    """

    name: str
    modules: list[nn.Module]
    optimizer: OptimizerSpec
    loss: Callable[[torch.Tensor], RowLoss]
    fast: Callable[[torch.Tensor], FastLoss] | None = None
    updates: int = 1
    log_name: str = "loss"
    schedule: Schedule | None = None
    ema: nn.Module | None = None
    ema_decay: float = 0.999
    after_step: Callable[[], None] | None = None
    private: bool = True
    dp_inputs: Callable[[torch.Tensor], tuple[torch.Tensor, ...]] | None = None
    dp_loss: Callable[..., RowLoss] | None = None
    dp_fast: Callable[..., tuple[torch.Tensor, list]] | None = None

    def parameters(self) -> list[nn.Parameter]:
        """The player's parameters, each once, in module order."""
        params: list[nn.Parameter] = []
        seen: set[int] = set()
        for module in self.modules:
            for param in module.parameters():
                if id(param) not in seen:
                    seen.add(id(param))
                    params.append(param)
        return params

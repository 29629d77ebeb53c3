"""Taps: what ghost clipping needs to see of a forward pass (no opacus import here).

Ghost clipping (Goodfellow 2015; Li et al. 2022) gets each row's gradient norm from the
inputs and output gradients of the parametrised maps, without forming per-row
gradients. A ``Tap`` is one such map as seen during the forward: ``collect_taps`` hooks
the standard layers; a module with another kind of parameter adds its own tap through
``active_taps`` (this module stays light so a network can import it unconditionally).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from torch import nn

RowLossFn = Callable[..., torch.Tensor]


@dataclass
class Tap:
    """One parametrised map of a forward pass, seen from outside (for ghost clipping).

    ``kind="linear"``: ``output = input @ W (+ b)`` with a weight used once per row
    (batched per-column weights allowed: leading axes are summed over). ``kind=
    "embedding"``: ``output`` rows are embedding rows looked up once each, every lookup
    of one data row hitting a different embedding row. ``batch_dim`` is the data-row
    axis of ``input`` / ``output``; ``bias`` says whether a bias is added to ``output``.
    """

    kind: str
    output: torch.Tensor
    input: torch.Tensor | None = None
    batch_dim: int = 0
    bias: bool = True
    #: The parameters this map uses (checked: the taps must cover the player's once each).
    params: tuple[nn.Parameter, ...] = ()


_ACTIVE_TAPS: ContextVar[list[Tap] | None] = ContextVar("synthgen_dp_taps", default=None)


def active_taps() -> list[Tap] | None:
    """The tap list of the ghost-clipping forward now running, else None.

    A module with a parameter that is not a ``Linear`` / ``Embedding`` weight appends its
    own ``Tap`` here (e.g. a per-column scale expanded to one copy per row).
    """
    return _ACTIVE_TAPS.get()


@contextmanager
def collect_taps(modules: Sequence[nn.Module]) -> Iterator[list[Tap]]:
    """Tap every ``nn.Linear`` (2-D input) and ``nn.Embedding`` (one lookup per row) of
    ``modules`` during the block; modules may add their own taps (``active_taps``).

    A linear map applied to a 3-D input shares its weight over an axis, and its per-row
    norm is not ``|a|^2 |g|^2``: such a call is refused rather than mis-clipped.
    """
    taps: list[Tap] = []

    def on_linear(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        (x,) = args
        if x.dim() != 2:
            raise RuntimeError(f"ghost clipping taps 2-D inputs only, got {tuple(x.shape)}")
        params = tuple(p for p in (module.weight, module.bias) if p is not None)
        taps.append(Tap("linear", output, x, bias=module.bias is not None, params=params))

    def on_embedding(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        (index,) = args
        if index.dim() != 1:
            raise RuntimeError("ghost clipping taps embeddings with one lookup per row only")
        taps.append(Tap("embedding", output, bias=False, params=(module.weight,)))

    handles = []
    for module in modules:
        for sub in module.modules():
            if isinstance(sub, nn.Linear):
                handles.append(sub.register_forward_hook(on_linear))
            elif isinstance(sub, nn.Embedding):
                handles.append(sub.register_forward_hook(on_embedding))
    token = _ACTIVE_TAPS.set(taps)
    try:
        yield taps
    finally:
        _ACTIVE_TAPS.reset(token)
        for handle in handles:
            handle.remove()


def tapped_loss(
    modules: Sequence[nn.Module], loss: RowLossFn
) -> Callable[..., tuple[torch.Tensor, list[Tap]]]:
    """``loss`` (per-row values) run under ``collect_taps``: a ghost-clipping ``dp_fast``."""

    def run(*inputs: torch.Tensor) -> tuple[torch.Tensor, list[Tap]]:
        with collect_taps(modules) as taps:
            values = loss(*inputs)
        return values, taps

    return run


def check_coverage(taps: Sequence[Tap], params: Sequence[nn.Parameter]) -> None:
    """Every trainable parameter in exactly one tap, or the clipping would be wrong."""
    seen: dict[int, int] = {}
    for tap in taps:
        for p in tap.params:
            if p.numel():
                seen[id(p)] = seen.get(id(p), 0) + 1
    wanted = {id(p) for p in params if p.numel()}  # an empty parameter has no gradient
    twice = [k for k, c in seen.items() if c > 1]
    if set(seen) != wanted or twice:
        raise RuntimeError(
            f"ghost clipping: the taps cover {len(set(seen) & wanted)} of {len(wanted)} "
            f"parameters ({len(twice)} more than once, {len(set(seen) - wanted)} foreign); "
            "the per-row norms would be wrong"
        )


def ghost_norms(taps: Sequence[Tap], grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-row gradient norms from the taps' inputs and output gradients, never
    materialising a per-row gradient (Goodfellow 2015; Li et al. 2022 "ghost clipping").

    For ``z = a W + b`` one row's weight gradient is ``a_r^T g_r`` (summed over any
    leading axes handled separately), whose squared Frobenius norm is
    ``|a_r|^2 |g_r|^2`` per leading index; the bias gradient is ``g_r``. An embedding
    row's gradient is the output gradient of its lookup.
    """
    total = None
    for tap, g in zip(taps, grads, strict=True):
        g = g.movedim(tap.batch_dim, 0)
        rows = g.shape[0]
        if tap.kind == "linear":
            assert tap.input is not None
            a = tap.input.movedim(tap.batch_dim, 0)
            # (rows, leading..., features): norms over the last axis, sum over leading axes
            part = (a.square().sum(-1) * g.square().sum(-1)).reshape(rows, -1).sum(1)
            if tap.bias:
                part = part + g.square().sum(-1).reshape(rows, -1).sum(1)
        elif tap.kind == "embedding":
            part = g.reshape(rows, -1).square().sum(1)
        else:  # pragma: no cover - a programming error
            raise ValueError(f"unknown tap kind {tap.kind!r}")
        total = part if total is None else total + part
    assert total is not None, "ghost clipping needs at least one tap"
    return total.sqrt()

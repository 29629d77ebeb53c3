"""Random noise shared by the samplers (Gumbel-max categorical draws)."""

from __future__ import annotations

import torch

#: Floor of ``u`` and of ``-log(u)``: keeps both logarithms finite.
_TINY = 1e-20


def gumbel_noise(
    shape_or_like: torch.Tensor | torch.Size | tuple[int, ...],
    generator: torch.Generator | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Standard Gumbel noise ``-log(-log(u))``, ``u ~ U[0, 1)`` clamped away from 0.

    ``argmax(logits + gumbel_noise(logits))`` is an exact draw from ``softmax(logits)``
    (the Gumbel-max trick), one tensor operation for a whole batch of groups. Given a
    tensor, the noise takes its shape, device and dtype (``device`` / ``dtype`` override
    them); given a shape, it is float32 on the CPU unless told otherwise. ``generator``
    makes the draw reproducible and must live on the noise's device.
    """
    if isinstance(shape_or_like, torch.Tensor):
        shape = shape_or_like.shape
        device = shape_or_like.device if device is None else device
        dtype = shape_or_like.dtype if dtype is None else dtype
    else:
        shape = torch.Size(shape_or_like)
    u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    # in place, one buffer: the same values as -log((-log(u.clamp(tiny))).clamp(tiny))
    return u.clamp_min_(_TINY).log_().neg_().clamp_min_(_TINY).log_().neg_()

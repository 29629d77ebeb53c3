"""Noise schedules: the fraction of signal ``alpha_bar[t]`` left after ``t`` noising steps.

Kept apart from the network (as diffusers does with its schedulers) so that the same
trained denoiser can be sampled with fewer steps than it was trained with: a strided
sampler only needs ``alpha_bar`` at the visited steps, because every step from ``t``
down to ``s < t`` is expressed through ``alpha_bar[t] / alpha_bar[s]``.
"""

from __future__ import annotations

import math

import torch

from synthgen.errors import ConfigError


class NoiseSchedule:
    """``alpha_bar`` for steps ``0..T`` with ``alpha_bar[0] = 1`` (clean data).

    Training draws ``t`` uniformly from ``1..T``; sampling walks a decreasing list of
    steps from ``T`` down to ``0``.
    """

    def __init__(self, alpha_bar: torch.Tensor) -> None:
        alpha_bar = torch.as_tensor(alpha_bar, dtype=torch.float64)
        if alpha_bar.ndim != 1 or len(alpha_bar) < 2 or float(alpha_bar[0]) != 1.0:
            raise ConfigError("alpha_bar must be 1-D, start at 1.0 and have at least 2 entries")
        if bool((alpha_bar[1:] > alpha_bar[:-1]).any()) or float(alpha_bar[-1]) <= 0:
            raise ConfigError("alpha_bar must decrease and stay positive")
        self.alpha_bar = alpha_bar

    @classmethod
    def cosine(cls, num_steps: int, offset: float = 0.008, max_beta: float = 0.999):
        """The cosine schedule of Nichol & Dhariwal (2021), as TabDDPM uses.

        ``alpha_bar(t) = f(t) / f(0)`` with ``f(t) = cos^2(((t/T + s) / (1 + s)) * pi/2)``;
        per-step betas are capped at ``max_beta`` so the last steps do not divide by 0.
        """
        if int(num_steps) < 1:
            raise ConfigError(f"num_timesteps={num_steps!r} must be a positive integer")
        t = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
        f = torch.cos((t + offset) / (1 + offset) * math.pi / 2) ** 2
        ratio = f[1:] / f[:-1]
        betas = (1 - ratio).clamp(max=max_beta)
        alpha_bar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])
        return cls(alpha_bar)

    @property
    def num_steps(self) -> int:
        return len(self.alpha_bar) - 1

    def sampling_steps(self, count: int | None) -> list[int]:
        """Decreasing visited steps ``[T, ..., 0]`` with ``count`` denoising moves.

        ``None`` or ``count >= T`` visits every step; otherwise steps are evenly spaced
        (the strided sampler of Nichol & Dhariwal: the schedule is "respaced").
        """
        total = self.num_steps
        if count is None or int(count) >= total:
            return list(range(total, -1, -1))
        if int(count) < 1:
            raise ConfigError(f"sample_steps={count!r} must be a positive integer")
        visited = torch.linspace(total, 0, int(count) + 1).round().long().tolist()
        out: list[int] = []
        for step in visited:  # rounding can repeat a step for tiny T; keep them distinct
            if not out or step < out[-1]:
                out.append(step)
        return out

    def at(self, t: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``alpha_bar[t]`` for a tensor of integer steps, on ``t``'s device."""
        return self.alpha_bar.to(t.device)[t].to(dtype)

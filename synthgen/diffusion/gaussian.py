"""Gaussian diffusion for continuous features (Ho et al. 2020), epsilon-prediction.

Forward: ``x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps``. The network predicts ``eps``;
the reverse move from ``t`` to any earlier ``s`` uses the Gaussian posterior
``q(x_s | x_t, x_0)`` with ``x_0`` replaced by its estimate, which is what lets the
sampler stride over steps.
"""

from __future__ import annotations

import torch


class GaussianDiffusion:
    """Stateless maths of the continuous part; values are quantile-normalised (~N(0, 1)).

    ``clip``: bound of the ``x_0`` estimate. The quantile transform maps data into
    about +-5.2, so estimates beyond that are only noise amplified at high ``t``.
    """

    def __init__(self, clip: float | None = 5.2) -> None:
        self.clip = clip

    @staticmethod
    def add_noise(x0: torch.Tensor, alpha_bar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Sample ``q(x_t | x_0)``; ``alpha_bar`` is per row, shape ``(batch, 1)``."""
        return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise

    @staticmethod
    def loss(predicted_noise: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Mean squared error per row (mean over features)."""
        return ((predicted_noise - noise) ** 2).mean(dim=1)

    def estimate_x0(
        self, xt: torch.Tensor, predicted_noise: torch.Tensor, alpha_bar_t: float
    ) -> torch.Tensor:
        x0 = (xt - (1 - alpha_bar_t) ** 0.5 * predicted_noise) / alpha_bar_t**0.5
        return x0 if self.clip is None else x0.clamp(-self.clip, self.clip)

    def step(
        self,
        xt: torch.Tensor,
        predicted_noise: torch.Tensor,
        alpha_bar_t: float,
        alpha_bar_s: float,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """One ancestral move ``x_t -> x_s`` (``s < t``); at ``s = 0`` returns the mean."""
        x0 = self.estimate_x0(xt, predicted_noise, alpha_bar_t)
        alpha_ts = alpha_bar_t / alpha_bar_s  # signal kept from s to t
        coef_x0 = alpha_bar_s**0.5 * (1 - alpha_ts) / (1 - alpha_bar_t)
        coef_xt = alpha_ts**0.5 * (1 - alpha_bar_s) / (1 - alpha_bar_t)
        mean = coef_x0 * x0 + coef_xt * xt
        variance = (1 - alpha_bar_s) / (1 - alpha_bar_t) * (1 - alpha_ts)
        if variance <= 0:
            return mean
        noise = torch.randn(xt.shape, generator=generator, device=xt.device, dtype=xt.dtype)
        return mean + variance**0.5 * noise

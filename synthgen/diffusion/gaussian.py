"""Gaussian diffusion for continuous features (Ho et al. 2020), epsilon-prediction.

Forward: ``x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps``. The network predicts ``eps``.
Two reverse moves from ``t`` to any earlier ``s`` are offered, both needing only
``alpha_bar`` at the two visited steps (which is what lets a sampler stride):

- ``step``: ancestral (DDPM), a draw from the Gaussian posterior ``q(x_s | x_t, x_0)``
  with ``x_0`` replaced by its estimate;
- ``ddim_step``: the non-Markovian family of Song et al. (2021, "Denoising Diffusion
  Implicit Models", eq. 12), with a noise scale ``eta``: ``eta = 0`` is deterministic
  given ``x_T``, ``eta = 1`` is the DDPM posterior again (shown in ``ddim_step``).
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

    @staticmethod
    def posterior(
        xt: torch.Tensor, x0: torch.Tensor, alpha_bar_t: float, alpha_bar_s: float
    ) -> tuple[torch.Tensor, float]:
        """Mean and variance of ``q(x_s | x_t, x_0)`` for any ``s < t``.

        ``q(x_t | x_s) = N(sqrt(a) x_s, (1 - a) I)`` with ``a = ab_t / ab_s`` (a product
        of the per-step Gaussians is again one), so the usual one-step formulas hold
        with ``beta_t`` replaced by ``1 - a``.
        """
        alpha_ts = alpha_bar_t / alpha_bar_s  # signal kept from s to t
        coef_x0 = alpha_bar_s**0.5 * (1 - alpha_ts) / (1 - alpha_bar_t)
        coef_xt = alpha_ts**0.5 * (1 - alpha_bar_s) / (1 - alpha_bar_t)
        variance = (1 - alpha_bar_s) / (1 - alpha_bar_t) * (1 - alpha_ts)
        return coef_x0 * x0 + coef_xt * xt, variance

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
        mean, variance = self.posterior(xt, x0, alpha_bar_t, alpha_bar_s)
        if variance <= 0:
            return mean
        noise = torch.randn(xt.shape, generator=generator, device=xt.device, dtype=xt.dtype)
        return mean + variance**0.5 * noise

    @staticmethod
    def ddim_sigma(alpha_bar_t: float, alpha_bar_s: float, eta: float) -> float:
        """Song et al.'s ``sigma_t(eta) = eta sqrt((1-ab_s)/(1-ab_t)) sqrt(1 - ab_t/ab_s)``."""
        variance = (1 - alpha_bar_s) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_s)
        return float(eta) * max(variance, 0.0) ** 0.5

    def ddim_step(
        self,
        xt: torch.Tensor,
        predicted_noise: torch.Tensor,
        alpha_bar_t: float,
        alpha_bar_s: float,
        eta: float,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """One DDIM move ``x_t -> x_s``: ``sqrt(ab_s) x0 + sqrt(1-ab_s-sigma^2) eps + sigma z``.

        ``eps`` is re-derived from the *clipped* ``x_0`` estimate,
        ``eps = (x_t - sqrt(ab_t) x0) / sqrt(1 - ab_t)`` (as GLIDE does; diffusers'
        ``use_clipped_model_output``), so the move stays consistent with the ``x_0`` it
        heads for. With that choice ``eta = 1`` is exactly the DDPM posterior: with
        ``a = ab_t / ab_s`` and ``sigma^2 = (1-ab_s)(1-a)/(1-ab_t)``,
        ``1 - ab_s - sigma^2 = a (1-ab_s)^2 / (1-ab_t)``, so the coefficient of ``x_t`` is
        ``sqrt(a)(1-ab_s)/(1-ab_t)`` and that of ``x_0`` is
        ``sqrt(ab_s) - sqrt(a ab_t)(1-ab_s)/(1-ab_t) = sqrt(ab_s)(1-a)/(1-ab_t)``: the
        posterior mean of ``step``, with its variance. ``eta = 0`` draws no noise at all.
        """
        x0 = self.estimate_x0(xt, predicted_noise, alpha_bar_t)
        eps = (xt - alpha_bar_t**0.5 * x0) / (1 - alpha_bar_t) ** 0.5
        sigma = self.ddim_sigma(alpha_bar_t, alpha_bar_s, eta)
        direction = max(1 - alpha_bar_s - sigma**2, 0.0) ** 0.5
        out = alpha_bar_s**0.5 * x0 + direction * eps
        if sigma <= 0:
            return out
        noise = torch.randn(xt.shape, generator=generator, device=xt.device, dtype=xt.dtype)
        return out + sigma * noise

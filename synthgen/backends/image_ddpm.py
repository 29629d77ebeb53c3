"""ImageDDPM: a class-conditional denoising diffusion model for small images.

Written from Ho et al. (2020, "Denoising Diffusion Probabilistic Models"): images in
``[-1, 1]`` are noised by ``x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps`` along the
cosine schedule of Nichol & Dhariwal (2021) from the shared ``diffusion.schedule``
module, and a UNet (``images.unet``) learns to predict ``eps`` (mean squared error per
image). Conditioning is classifier-free (Ho & Salimans 2022): a share of the training
labels is replaced by a "no class" token and sampling uses
``(1 + w) eps(x, y) - w eps(x, none)``. Sampling is strided: DDIM moves (Song et al.
2021, ``diffusion.gaussian``) over ``sample_steps`` evenly spaced steps, read from an
exponential moving average of the weights.
"""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar

import torch
from torch import nn

from synthgen.backends.image_base import ImageGenerator
from synthgen.backends.params import check_float, check_int
from synthgen.backends.players import OptimizerSpec, Player, RowLoss
from synthgen.diffusion.gaussian import GaussianDiffusion
from synthgen.diffusion.schedule import NoiseSchedule
from synthgen.errors import ConfigError
from synthgen.images.unet import ConditionalUNet

#: Fewest UNet channels (GroupNorm splits them into up to 8 groups).
GROUPS_MIN = 8
#: Images denoised together when sampling (bounds memory whatever ``n`` is).
SAMPLE_BATCH = 1024


class ImageDDPM(ImageGenerator):
    """Conditional DDPM with a small UNet, classifier-free guidance and a DDIM sampler.

    Parameters beyond the shared vocabulary:

    steps: optimisation steps (overrides ``epochs`` when given).
    width / multipliers: UNet channels (``width * m`` at each resolution); every level
        after the first halves the image sides.
    dropout: dropout inside the residual blocks.
    num_timesteps: diffusion steps of the schedule (training draws ``t`` from them).
    sample_steps: denoising moves when sampling (strided; ``None``: every step).
    eta: DDIM noise scale (0 deterministic given the starting noise, 1 ancestral).
    guidance: classifier-free guidance weight ``w`` (0: plain conditional model).
    label_dropout: share of training labels replaced by the "no class" token.
    snr_gamma: Min-SNR loss weighting (Hang et al. 2023): each step's error is weighted
        by ``min(SNR_t, gamma) / SNR_t``, so the nearly clean steps, whose noise is
        easy to predict and says little about the image, do not dominate the
        gradient; it shortens training several-fold. ``None``: the plain loss.
    learning_rate / ema_decay: AdamW step size and the weight average's decay.
    """

    backend_name: ClassVar[str] = "image_ddpm"

    def __init__(
        self,
        epochs: int = 100,
        batch_size: int = 128,
        seed: int = 0,
        device: str = "auto",
        dp: Any = None,
        steps: int | None = None,
        width: int = 16,
        multipliers: tuple[int, ...] = (1, 2, 2),
        dropout: float = 0.0,
        num_timesteps: int = 1000,
        sample_steps: int | None = 100,
        eta: float = 0.0,
        guidance: float = 0.3,
        label_dropout: float = 0.1,
        snr_gamma: float | None = 5.0,
        learning_rate: float = 2e-3,
        ema_decay: float = 0.995,
        **scaffold: Any,
    ) -> None:
        super().__init__(
            epochs=epochs, batch_size=batch_size, seed=seed, device=device, dp=dp, **scaffold
        )
        self.steps = steps
        self.width = width
        self.multipliers = multipliers
        self.dropout = dropout
        self.num_timesteps = num_timesteps
        self.sample_steps = sample_steps
        self.eta = eta
        self.guidance = guidance
        self.label_dropout = label_dropout
        self.snr_gamma = snr_gamma
        self.learning_rate = learning_rate
        self.ema_decay = ema_decay

    def _check_params(self) -> None:
        super()._check_params()
        check_int("steps", self.steps, 1, optional=True)
        check_int("width", self.width, GROUPS_MIN)
        multipliers = self.multipliers
        if (
            not isinstance(multipliers, list | tuple)
            or not multipliers
            or not all(
                isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in multipliers
            )
        ):
            raise ConfigError(
                f"multipliers={multipliers!r} must be a non-empty list of positive integers, "
                "e.g. (1, 2, 2)"
            )
        check_float("dropout", self.dropout, 0.0, 1.0, high_open=True)
        check_int("num_timesteps", self.num_timesteps, 2)
        check_int("sample_steps", self.sample_steps, 1, optional=True)
        check_float("eta", self.eta, 0.0, 1.0)
        check_float("guidance", self.guidance, 0.0)
        check_float("label_dropout", self.label_dropout, 0.0, 1.0, high_open=True)
        check_float("snr_gamma", self.snr_gamma, 0.0, low_open=True, optional=True)
        check_float("learning_rate", self.learning_rate, 0.0, low_open=True)
        check_float("ema_decay", self.ema_decay, 0.0, 1.0, high_open=True)

    def _epochs_for(self, steps_per_epoch: int) -> int:
        if self.steps is None:
            return int(self.epochs)
        return max(1, math.ceil(int(self.steps) / steps_per_epoch))

    # ------------------------------------------------------------------ networks
    def _build(self, layout: Any, data: torch.Tensor | None) -> None:
        channels, h, w = self.image_shape
        factor = 2 ** (len(self.multipliers) - 1)
        if h % factor or w % factor:
            raise ConfigError(
                f"ImageDDPM with multipliers={tuple(self.multipliers)} halves the sides "
                f"{len(self.multipliers) - 1} times, so they must be multiples of {factor}; "
                f"the images are {h}x{w}: resize them or use fewer multipliers"
            )
        self.net_ = ConditionalUNet(
            channels,
            self.n_classes,
            int(self.width),
            tuple(int(m) for m in self.multipliers),
            float(self.dropout),
        ).to(self.device_)
        self.ema_ = copy.deepcopy(self.net_).requires_grad_(False)
        self.schedule_ = NoiseSchedule.cosine(int(self.num_timesteps))
        self.gaussian_ = GaussianDiffusion(clip=1.0)  # images live in [-1, 1]

    def _modules(self) -> dict[str, nn.Module]:
        return {"net": self.net_, "ema": self.ema_}

    def _set_training(self, training: bool) -> None:
        self.net_.train(training)
        self.ema_.train(False)

    def _players(self) -> list[Player]:
        return [
            Player(
                name="denoiser",
                modules=[self.net_],
                optimizer=OptimizerSpec("adamw", self.learning_rate),
                loss=self._row_loss,
                ema=self.ema_,
                ema_decay=float(self.ema_decay),
            )
        ]

    # ------------------------------------------------------------------ loss
    def _row_loss(self, batch: torch.Tensor) -> RowLoss:
        """Noise-prediction error per image at a uniformly drawn step."""
        labels, x0 = self._unpack(batch)
        n = x0.shape[0]
        t = torch.randint(1, self.schedule_.num_steps + 1, (n,), device=x0.device)
        alpha_bar = self.schedule_.at(t)[:, None, None, None]
        noise = torch.randn_like(x0)
        xt = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
        if self.label_dropout > 0:
            drop = torch.rand(n, device=x0.device) < float(self.label_dropout)
            labels = torch.where(drop, torch.full_like(labels, self.n_classes), labels)
        predicted = self.net_(xt, t, labels)
        error = ((predicted - noise) ** 2).flatten(1).mean(dim=1)
        if self.snr_gamma is None:
            return RowLoss(error)
        snr = (alpha_bar / (1 - alpha_bar)).flatten()
        weight = snr.clamp(max=float(self.snr_gamma)) / snr
        return RowLoss(weight * error, {"mse": error.mean().detach()})

    # ------------------------------------------------------------------ sampling
    def _generate_images(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        parts = [
            self._denoise(labels[start : start + SAMPLE_BATCH], generator)
            for start in range(0, labels.shape[0], SAMPLE_BATCH)
        ]
        if not parts:
            return torch.zeros((0, *self.image_shape), device=self.device_)
        return torch.cat(parts)

    def _denoise(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Pure noise to images through the visited steps (one batch)."""
        n, schedule, gaussian = labels.shape[0], self.schedule_, self.gaussian_
        x = torch.randn((n, *self.image_shape), generator=generator, device=self.device_)
        w = float(self.guidance)
        null = torch.full_like(labels, self.n_classes)
        both = torch.cat([labels, null]) if w > 0 else labels
        visited = schedule.sampling_steps(self.sample_steps)
        for t, s in zip(visited[:-1], visited[1:], strict=True):
            steps = torch.full((both.shape[0],), t, device=self.device_, dtype=torch.long)
            inputs = torch.cat([x, x]) if w > 0 else x
            out = self.ema_(inputs, steps, both)
            noise = (1 + w) * out[:n] - w * out[n:] if w > 0 else out
            x = gaussian.ddim_step(
                x.flatten(1),
                noise.flatten(1),
                float(schedule.alpha_bar[t]),
                float(schedule.alpha_bar[s]),
                float(self.eta),
                generator,
            ).reshape(x.shape)
        return x.clamp(-1.0, 1.0)

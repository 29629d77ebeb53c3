"""TVAE: a variational autoencoder for tables (Xu et al., NeurIPS 2019, section 4.3).

Written from the paper: an MLP encoder maps an encoded row to a Gaussian posterior over
a latent code; an MLP decoder maps the code back to the row, where each continuous
value ``alpha`` is Gaussian with mean ``tanh(.)`` and a learned per-column standard
deviation, and each one-hot group (mixture mode, category, null flag) is a softmax.
The loss is the negative evidence lower bound: reconstruction log-likelihood (weighted
by ``loss_factor``) plus the KL divergence to a standard normal prior. At sampling
time values are drawn from these output distributions, not just their modes.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from privacy.taps import Tap, active_taps, tapped_loss
from synthgen.backends.base import BaseGenerator
from synthgen.backends.params import check_choice, check_float, check_int, check_widths
from synthgen.backends.players import FastLoss, OptimizerSpec, Player, RowLoss
from synthgen.backends.tvae_step import FusedTVAEStep, PaddedHeads
from synthgen.training import PRECISIONS
from synthgen.transforms.layout import SpanLayout

#: Bounds of the learned output standard deviations (as in the paper's ``delta``).
SIGMA_MIN, SIGMA_MAX = 0.01, 1.0


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers)


class TVAEEncoder(nn.Module):
    """Row -> mean and log-variance of the latent posterior."""

    def __init__(self, data_dim: int, hidden: tuple[int, ...], latent_dim: int) -> None:
        super().__init__()
        self.body = _mlp([data_dim, *hidden])
        self.mean = nn.Linear(hidden[-1], latent_dim)
        self.log_var = nn.Linear(hidden[-1], latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mean(h), self.log_var(h)


class GaussianOutput(nn.Module):
    """The continuous outputs' likelihood: ``x ~ N(tanh(o), sigma^2)`` per value.

    ``sigma`` (one learned standard deviation per continuous value) lives in the module
    whose forward uses it, so per-sample gradient methods see it like any layer weight.
    """

    def __init__(self, n_alpha: int) -> None:
        super().__init__()
        self.sigma = nn.Parameter(torch.full((n_alpha,), 0.1))

    def forward(self, pre_tanh: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-row negative log-likelihood (up to a constant) of ``target``."""
        sigma = self.sigma
        taps = active_taps()
        if taps is not None:  # DP ghost clipping: one copy per row, so its gradient is per row
            sigma = sigma.expand(pre_tanh.shape[0], -1)
            taps.append(Tap("embedding", sigma, bias=False, params=(self.sigma,)))
        squared = (target - torch.tanh(pre_tanh)) ** 2
        return (squared / (2 * sigma**2) + torch.log(sigma)).sum(dim=1)

    def sample(self, pre_tanh: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(pre_tanh.shape, generator=generator, device=pre_tanh.device)
        return torch.tanh(pre_tanh) + noise * self.sigma

    @torch.no_grad()
    def clamp_(self) -> None:
        """Keep every ``sigma`` inside ``[SIGMA_MIN, SIGMA_MAX]`` (the paper's bounds)."""
        self.sigma.clamp_(SIGMA_MIN, SIGMA_MAX)


class TVAEDecoder(nn.Module):
    """Latent code -> output logits / means; ``gaussian`` holds the learned deviations."""

    def __init__(self, latent_dim: int, hidden: tuple[int, ...], data_dim: int, n_alpha: int):
        super().__init__()
        self.body = nn.Sequential(_mlp([latent_dim, *hidden]), nn.Linear(hidden[-1], data_dim))
        self.gaussian = GaussianOutput(n_alpha)
        self._register_load_state_dict_pre_hook(_rename_old_sigma)

    @property
    def sigma(self) -> nn.Parameter:
        return self.gaussian.sigma

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


def _rename_old_sigma(state: dict[str, Any], prefix: str, *args: Any) -> None:
    """Model files written before ``GaussianOutput`` stored ``sigma`` on the decoder."""
    if prefix + "sigma" in state:
        state[prefix + "gaussian.sigma"] = state.pop(prefix + "sigma")


class TVAE(BaseGenerator):
    """Tabular variational autoencoder.

    Parameters beyond the shared vocabulary (``epochs``, ``batch_size``, ``seed``,
    ``device``, ``dp``, and the scaffold options of ``BaseGenerator``):

    embedding_dim: size of the latent code.
    compress_dims / decompress_dims: hidden layer widths of encoder / decoder.
    l2scale: weight decay of Adam.
    loss_factor: weight of the reconstruction term against the KL term.
    learning_rate: Adam step size.
    precision: dtype of the training step's matrix products: "float32", "bfloat16"
        (float32 master weights, loss and heads; about twice as fast products on CPUs
        with native bfloat16), or "auto" (bfloat16 where the CPU has it natively).
    """

    backend_name: ClassVar[str] = "tvae"

    def __init__(
        self,
        epochs: int = 300,
        batch_size: int = 500,
        seed: int = 0,
        device: str = "auto",
        dp: Any = None,
        embedding_dim: int = 128,
        compress_dims: tuple[int, ...] = (128, 128),
        decompress_dims: tuple[int, ...] = (128, 128),
        l2scale: float = 1e-5,
        loss_factor: float = 2.0,
        learning_rate: float = 1e-3,
        precision: str = "auto",
        **scaffold: Any,
    ) -> None:
        super().__init__(
            epochs=epochs, batch_size=batch_size, seed=seed, device=device, dp=dp, **scaffold
        )
        self.embedding_dim = embedding_dim
        self.compress_dims = compress_dims
        self.decompress_dims = decompress_dims
        self.l2scale = l2scale
        self.loss_factor = loss_factor
        self.learning_rate = learning_rate
        self.precision = precision

    def _check_params(self) -> None:
        super()._check_params()
        check_widths("compress_dims", self.compress_dims)
        check_widths("decompress_dims", self.decompress_dims)
        check_int("embedding_dim", self.embedding_dim, 1)
        check_float("l2scale", self.l2scale, 0.0)
        check_float("loss_factor", self.loss_factor, 0.0, low_open=True)
        check_float("learning_rate", self.learning_rate, 0.0, low_open=True)
        check_choice("precision", self.precision, PRECISIONS)

    # ------------------------------------------------------------------ networks
    def _build(self, layout: SpanLayout, data: torch.Tensor | None) -> None:
        dim = layout.dim
        n_alpha = int(layout.alpha_index.numel())
        self.encoder_ = TVAEEncoder(dim, tuple(self.compress_dims), self.embedding_dim)
        self.decoder_ = TVAEDecoder(self.embedding_dim, tuple(self.decompress_dims), dim, n_alpha)
        self.encoder_.to(self.device_)
        self.decoder_.to(self.device_)
        self.heads_ = PaddedHeads(layout, self.device_)
        self.fused_step_ = FusedTVAEStep(
            self.encoder_, self.decoder_, self.heads_, self.compute_dtype_
        )

    def _players(self) -> list[Player]:
        return [
            Player(
                name="vae",
                modules=[self.encoder_, self.decoder_],
                optimizer=OptimizerSpec("adam", self.learning_rate, weight_decay=self.l2scale),
                loss=self._row_loss,
                fast=self._fused_loss if self.heads_.complete else None,
                after_step=self.decoder_.gaussian.clamp_,
                dp_fast=tapped_loss(
                    [self.encoder_, self.decoder_], lambda batch: self._row_loss(batch).rows
                ),
            )
        ]

    def _modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder_, "decoder": self.decoder_}

    # ------------------------------------------------------------------ loss
    def _negative_elbo(
        self, x: torch.Tensor, sample_latent: bool, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row reconstruction negative log-likelihood and KL term.

        This is the model's definition; training computes the same loss and its
        gradients in fused form (``tvae_step``), and a test holds the two equal.
        """
        mean, log_var = self.encoder_(x)
        z = mean
        if sample_latent:  # the reparameterisation trick
            noise = torch.randn_like(mean) if noise is None else noise
            z = z + noise * torch.exp(0.5 * log_var)
        out = self.decoder_(z)
        layout = self.layout_
        reconstruction = layout.cross_entropy(out, x)
        if layout.alpha_index.numel():
            index = layout.alpha_index
            reconstruction = reconstruction + self.decoder_.gaussian(out[:, index], x[:, index])
        kl = -0.5 * (1 + log_var - mean**2 - log_var.exp()).sum(dim=1)
        return reconstruction, kl

    def _latent_noise(self, rows: int, device: torch.device) -> torch.Tensor:
        return torch.randn(rows, self.embedding_dim, device=device)

    def _row_loss(self, batch: torch.Tensor) -> RowLoss:
        """The negative ELBO of each row (``batch`` in the encoded layout)."""
        noise = self._latent_noise(batch.shape[0], batch.device)
        reconstruction, kl = self._negative_elbo(batch, True, noise)
        return RowLoss(self.loss_factor * reconstruction + kl, {"kl": kl.mean().detach()})

    def _fused_loss(self, batch: torch.Tensor) -> FastLoss:
        """The same loss's mean and exact gradients, hand-derived (``batch`` padded)."""
        noise = self._latent_noise(batch.shape[0], batch.device)
        loss, kl, grads = self.fused_step_(batch, noise, self.loss_factor)
        return FastLoss(loss, {"kl": kl}, grads=grads)

    def _training_rows(self, train: torch.Tensor, accelerated: bool) -> torch.Tensor:
        # the fused step reads rows in the padded layout, autograd in the encoded one
        return self.heads_.pad_rows(train) if accelerated and self.heads_.complete else train

    def _validation_loss(self, data: torch.Tensor) -> float:
        total = 0.0
        for start in range(0, len(data), 8192):
            reconstruction, kl = self._negative_elbo(data[start : start + 8192], False)
            total += float((reconstruction + kl).sum())
        return total / len(data)

    # ------------------------------------------------------------------ sampling
    def _generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        device = self.device_
        z = torch.randn(n, self.embedding_dim, generator=generator, device=device)
        out = self.decoder_(z)
        layout = self.layout_
        rows = layout.sample_discrete(out, generator)
        if layout.alpha_index.numel():
            index = layout.alpha_index
            rows[:, index] = self.decoder_.gaussian.sample(out[:, index], generator)
        return rows

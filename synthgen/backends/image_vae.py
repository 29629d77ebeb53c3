"""ImageVAE: a class-conditional convolutional variational autoencoder.

Written from Kingma & Welling (2014, "Auto-Encoding Variational Bayes") with the class
given to both encoder and decoder (Sohn et al. 2015, "Learning Structured Output
Representation using Deep Conditional Generative Models"): the encoder maps an image
and its class to a Gaussian posterior over a latent code, the decoder maps a code and
a class to per-pixel Bernoulli means (pixels in ``[0, 1]`` are the targets of a
binary cross-entropy, the usual likelihood for digit images). The loss is the negative
evidence lower bound per image; samples are the decoder's means for codes drawn from
the prior (drawing pixel noise too only adds speckle).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from synthgen.backends.image_base import ImageGenerator
from synthgen.backends.params import check_float, check_int
from synthgen.backends.players import OptimizerSpec, Player, RowLoss
from synthgen.images.networks import ConditionalDecoder, DownsamplingBody, check_image_sides


class ImageEncoder(nn.Module):
    """``(image, label) -> (mean, log-variance)`` of the latent posterior."""

    def __init__(
        self, shape: tuple[int, int, int], latent_dim: int, n_classes: int, width: int
    ) -> None:
        super().__init__()
        features = 4 * width
        self.body = DownsamplingBody(shape, width, features)
        self.embed = nn.Embedding(n_classes, features)
        self.mean = nn.Linear(features, latent_dim)
        self.log_var = nn.Linear(features, latent_dim)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x) + self.embed(labels)
        return self.mean(h), self.log_var(h)


class ImageVAE(ImageGenerator):
    """Conditional convolutional VAE for small images.

    Parameters beyond the shared vocabulary (``epochs``, ``batch_size``, ``seed``,
    ``device``, ``dp`` and the scaffold options of ``BaseGenerator``):

    latent_dim: size of the latent code.
    width: channels of the first convolution (the second level has twice as many).
    kl_weight: weight of the KL term (1 is the ELBO; below 1 sharper, less diverse).
    learning_rate: Adam step size.
    """

    backend_name: ClassVar[str] = "image_vae"

    def __init__(
        self,
        epochs: int = 100,
        batch_size: int = 128,
        seed: int = 0,
        device: str = "auto",
        dp: Any = None,
        latent_dim: int = 16,
        width: int = 32,
        kl_weight: float = 1.0,
        learning_rate: float = 1e-3,
        **scaffold: Any,
    ) -> None:
        super().__init__(
            epochs=epochs, batch_size=batch_size, seed=seed, device=device, dp=dp, **scaffold
        )
        self.latent_dim = latent_dim
        self.width = width
        self.kl_weight = kl_weight
        self.learning_rate = learning_rate

    def _check_params(self) -> None:
        super()._check_params()
        check_int("latent_dim", self.latent_dim, 1)
        check_int("width", self.width, 1)
        check_float("kl_weight", self.kl_weight, 0.0)
        check_float("learning_rate", self.learning_rate, 0.0, low_open=True)

    # ------------------------------------------------------------------ networks
    def _build(self, layout: Any, data: torch.Tensor | None) -> None:
        shape, k = self.image_shape, self.n_classes
        check_image_sides(shape, type(self).__name__)
        width, latent = int(self.width), int(self.latent_dim)
        self.encoder_ = ImageEncoder(shape, latent, k, width).to(self.device_)
        self.decoder_ = ConditionalDecoder(shape, latent, k, width).to(self.device_)

    def _modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder_, "decoder": self.decoder_}

    def _players(self) -> list[Player]:
        return [
            Player(
                name="vae",
                modules=[self.encoder_, self.decoder_],
                optimizer=OptimizerSpec("adam", self.learning_rate),
                loss=self._row_loss,
            )
        ]

    # ------------------------------------------------------------------ loss
    def _row_loss(self, batch: torch.Tensor) -> RowLoss:
        """Negative ELBO per image: Bernoulli reconstruction (nats) plus weighted KL."""
        labels, x = self._unpack(batch)
        mean, log_var = self.encoder_(x, labels)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)
        logits = self.decoder_(z, labels)
        target = (x + 1.0) / 2.0
        reconstruction = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        reconstruction = reconstruction.flatten(1).sum(dim=1)
        kl = -0.5 * (1 + log_var - mean**2 - log_var.exp()).sum(dim=1)
        return RowLoss(reconstruction + self.kl_weight * kl, {"kl": kl.mean().detach()})

    # ------------------------------------------------------------------ sampling
    def _generate_images(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(labels.shape[0], self.latent_dim, generator=generator, device=self.device_)
        return torch.sigmoid(self.decoder_(z, labels)) * 2.0 - 1.0

"""ImageGAN: a class-conditional DCGAN with a spectrally normalised projection critic.

Written from the papers: the generator is DCGAN-shaped (Radford et al. 2016: a
projection of the latent code, transposed convolutions, normalised activations, a tanh
output); the critic is spectrally normalised (Miyato et al. 2018, "Spectral
Normalization for Generative Adversarial Networks") and class-conditional by projection
(Miyato & Koyama 2018, "cGANs with Projection Discriminator"):
``D(x, y) = psi(phi(x)) + <embed(y), phi(x)>``; the loss is the hinge loss of both
papers. Spectral normalisation rather than a gradient penalty keeps the critic's loss
free of a double backward, so DP-SGD can train it (the generator never reads a real
image and is trained without noise).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from synthgen.backends.image_base import ImageGenerator
from synthgen.backends.params import check_float, check_int
from synthgen.backends.players import OptimizerSpec, Player, RowLoss
from synthgen.images.networks import (
    ConditionalDecoder,
    DownsamplingBody,
    SNLinear,
    check_image_sides,
    power_iterations_,
)


class ProjectionCritic(nn.Module):
    """``(image, label) -> score`` (higher: more real), spectrally normalised."""

    def __init__(self, shape: tuple[int, int, int], n_classes: int, width: int) -> None:
        super().__init__()
        features = 4 * width
        self.body = DownsamplingBody(shape, width, features, spectral=True)
        self.psi = SNLinear(features, 1)
        self.embed = nn.Embedding(n_classes, features)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return self.psi(h).squeeze(1) + (self.embed(labels) * h).sum(dim=1)


class ImageGAN(ImageGenerator):
    """Conditional DCGAN (hinge loss, spectral normalisation, projection critic).

    Parameters beyond the shared vocabulary:

    latent_dim: size of the generator's noise vector.
    width: channels of the first level of both networks (the second has twice as many).
    generator_lr / critic_lr: Adam step sizes (two time-scale update rule: the critic's
        is higher).
    critic_steps: critic updates per generator update.
    """

    backend_name: ClassVar[str] = "image_gan"

    def __init__(
        self,
        epochs: int = 200,
        batch_size: int = 128,
        seed: int = 0,
        device: str = "auto",
        dp: Any = None,
        latent_dim: int = 64,
        width: int = 32,
        generator_lr: float = 2e-4,
        critic_lr: float = 4e-4,
        critic_steps: int = 1,
        **scaffold: Any,
    ) -> None:
        super().__init__(
            epochs=epochs, batch_size=batch_size, seed=seed, device=device, dp=dp, **scaffold
        )
        self.latent_dim = latent_dim
        self.width = width
        self.generator_lr = generator_lr
        self.critic_lr = critic_lr
        self.critic_steps = critic_steps

    def _check_params(self) -> None:
        super()._check_params()
        check_int("latent_dim", self.latent_dim, 1)
        check_int("width", self.width, 1)
        check_float("generator_lr", self.generator_lr, 0.0, low_open=True)
        check_float("critic_lr", self.critic_lr, 0.0, low_open=True)
        check_int("critic_steps", self.critic_steps, 1)

    # ------------------------------------------------------------------ networks
    def _build(self, layout: Any, data: torch.Tensor | None) -> None:
        shape, k = self.image_shape, self.n_classes
        check_image_sides(shape, type(self).__name__)
        width = int(self.width)
        self.generator_ = ConditionalDecoder(shape, int(self.latent_dim), k, width)
        self.generator_.to(self.device_)
        self.critic_ = ProjectionCritic(shape, k, width).to(self.device_)

    def _modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator_, "critic": self.critic_}

    def _players(self) -> list[Player]:
        betas = (0.0, 0.9)  # the SN-GAN paper's Adam settings
        return [
            Player(
                name="critic",
                modules=[self.critic_],
                optimizer=OptimizerSpec("adam", self.critic_lr, betas),
                loss=self._critic_loss,
                updates=int(self.critic_steps),
                log_name="loss_d",
                after_step=lambda: power_iterations_(self.critic_),
                dp_inputs=self._critic_inputs,
                dp_loss=self._critic_row_loss,
            ),
            Player(
                name="generator",
                modules=[self.generator_],
                optimizer=OptimizerSpec("adam", self.generator_lr, betas),
                loss=self._generator_loss,
                log_name="loss_g",
                private=False,  # it sees generated images and the critic, never a real one
            ),
        ]

    def _fake(self, labels: torch.Tensor) -> torch.Tensor:
        z = torch.randn(labels.shape[0], int(self.latent_dim), device=labels.device)
        return torch.tanh(self.generator_(z, labels))

    # ------------------------------------------------------------------ losses
    def _critic_inputs(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Real images, their labels and generated images of the same classes."""
        labels, real = self._unpack(batch)
        with torch.no_grad():
            fake = self._fake(labels)
        return real, labels, fake

    def _critic_row_loss(
        self, real: torch.Tensor, labels: torch.Tensor, fake: torch.Tensor
    ) -> RowLoss:
        """Hinge loss per real image (paired with one generated image of its class)."""
        real_score = self.critic_(real, labels)
        fake_score = self.critic_(fake, labels)
        rows = torch.relu(1.0 - real_score) + torch.relu(1.0 + fake_score)
        return RowLoss(rows)

    def _critic_loss(self, batch: torch.Tensor) -> RowLoss:
        return self._critic_row_loss(*self._critic_inputs(batch))

    def _generator_loss(self, batch: torch.Tensor) -> RowLoss:
        """``-D(G(z, y), y)`` with classes drawn from the training frequencies.

        The batch only sets the count: under DP it is a placeholder without real rows.
        """
        labels = self._draw_labels(batch.shape[0], None)
        return RowLoss(-self.critic_(self._fake(labels), labels))

    # ------------------------------------------------------------------ sampling
    def _generate_images(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(
            labels.shape[0], int(self.latent_dim), generator=generator, device=self.device_
        )
        return torch.tanh(self.generator_(z, labels))

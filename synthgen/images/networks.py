"""Convolutional networks of the image backends, each defined once.

- ``ConditionalDecoder``: (latent code, class) -> image logits, two transposed-conv
  upsamplings from ``h/4 x w/4``. The VAE's decoder and the GAN's generator are this
  one network (the VAE reads its output through a sigmoid, the GAN through a tanh).
- ``DownsamplingBody``: image -> feature vector, two strided convolutions; with
  ``spectral=True`` every layer is spectrally normalised (Miyato et al. 2018) for the
  GAN's critic. The VAE's encoder and the critic share it.

Norms: GroupNorm only, never BatchNorm, because DP-SGD takes per-row gradients one row
at a time, where batch statistics do not exist. Spectral normalisation is written
here rather than taken from ``torch.nn.utils.parametrizations``: that one updates its
power-iteration vectors inside ``forward``, which per-row gradient transforms
(``torch.func.vmap``) cannot do; here ``forward`` only reads the vector and
``power_iteration_`` (run after each optimiser step) moves it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synthgen.errors import ConfigError

GROUPS = 8


def check_image_sides(shape: tuple[int, int, int], backend: str) -> None:
    """The networks halve each side twice: sides must be multiples of 4."""
    _, h, w = shape
    if h % 4 or w % 4 or h < 4 or w < 4:
        raise ConfigError(
            f"{backend} needs image sides that are multiples of 4 (8, 16, 32, ...), got "
            f"{h}x{w}; resize the images (ImageSet.resized)"
        )


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(GROUPS, channels), channels)


class SpectralNormMixin:
    """``weight / sigma`` with ``sigma`` the power-iteration estimate of its top singular value."""

    def _init_spectral(self) -> None:
        rows = self.weight.shape[0]
        u = torch.randn(rows)
        self.register_buffer("sn_u", u / u.norm().clamp_min(1e-12))

    def normalised_weight(self) -> torch.Tensor:
        matrix = self.weight.reshape(self.weight.shape[0], -1)
        with torch.no_grad():
            v = F.normalize(matrix.detach().t() @ self.sn_u, dim=0, eps=1e-12)
            u = F.normalize(matrix.detach() @ v, dim=0, eps=1e-12)
        sigma = torch.dot(u, matrix @ v)
        return self.weight / sigma

    @torch.no_grad()
    def power_iteration_(self) -> None:
        matrix = self.weight.reshape(self.weight.shape[0], -1)
        v = F.normalize(matrix.t() @ self.sn_u, dim=0, eps=1e-12)
        self.sn_u.copy_(F.normalize(matrix @ v, dim=0, eps=1e-12))


class SNConv2d(SpectralNormMixin, nn.Conv2d):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_spectral()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.normalised_weight(), self.bias)


class SNLinear(SpectralNormMixin, nn.Linear):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_spectral()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.normalised_weight(), self.bias)


def power_iterations_(module: nn.Module) -> None:
    """One power-iteration step for every spectrally normalised layer of ``module``."""
    for layer in module.modules():
        if isinstance(layer, SpectralNormMixin):
            layer.power_iteration_()


class DownsamplingBody(nn.Module):
    """``(n, c, h, w) -> (n, features)``: conv, two stride-2 convs, a linear layer."""

    def __init__(
        self, shape: tuple[int, int, int], width: int, features: int, spectral: bool = False
    ) -> None:
        super().__init__()
        c, h, w = shape
        conv = SNConv2d if spectral else nn.Conv2d
        linear = SNLinear if spectral else nn.Linear
        # the critic uses no norm layer (spectral normalisation is its regulariser)
        norm = (lambda k: nn.Identity()) if spectral else _norm
        self.layers = nn.Sequential(
            conv(c, width, 3, padding=1),
            norm(width),
            nn.LeakyReLU(0.2),
            conv(width, 2 * width, 4, stride=2, padding=1),
            norm(2 * width),
            nn.LeakyReLU(0.2),
            conv(2 * width, 2 * width, 4, stride=2, padding=1),
            norm(2 * width),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            linear(2 * width * (h // 4) * (w // 4), features),
            nn.LeakyReLU(0.2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ConditionalDecoder(nn.Module):
    """``(z, label) -> (n, c, h, w)`` logits; the class enters as a learned embedding."""

    def __init__(
        self, shape: tuple[int, int, int], latent_dim: int, n_classes: int, width: int
    ) -> None:
        super().__init__()
        c, h, w = shape
        self.start = (2 * width, h // 4, w // 4)
        self.embed = nn.Embedding(n_classes, latent_dim)
        self.project = nn.Linear(2 * latent_dim, 2 * width * (h // 4) * (w // 4))
        self.layers = nn.Sequential(
            _norm(2 * width),
            nn.SiLU(),
            nn.ConvTranspose2d(2 * width, 2 * width, 4, stride=2, padding=1),
            _norm(2 * width),
            nn.SiLU(),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),
            _norm(width),
            nn.SiLU(),
            nn.Conv2d(width, c, 3, padding=1),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.embed(labels)], dim=1))
        return self.layers(h.reshape(z.shape[0], *self.start))

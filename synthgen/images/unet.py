"""A small class-conditional UNet: the image DDPM's noise-prediction network.

After Ho et al. (2020) and Nichol & Dhariwal (2021), cut down for small images on a
CPU: one residual block per resolution (GroupNorm, SiLU, 3x3 convolutions, the step
and class embedding added between the two convolutions), stride-2 downsampling,
nearest-neighbour upsampling, skip connections by concatenation, no attention. The
class embedding has one extra row, the "no class" token of classifier-free guidance
(Ho & Salimans 2022): training replaces a share of labels by it, sampling mixes the
conditional and unconditional predictions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synthgen.diffusion.denoiser import sinusoidal_embedding

GROUPS = 8


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(GROUPS, channels), channels)


class ResidualBlock(nn.Module):
    def __init__(self, fan_in: int, fan_out: int, embed_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = _norm(fan_in)
        self.conv1 = nn.Conv2d(fan_in, fan_out, 3, padding=1)
        self.embed = nn.Linear(embed_dim, fan_out)
        self.norm2 = _norm(fan_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(fan_out, fan_out, 3, padding=1)
        self.skip = nn.Conv2d(fan_in, fan_out, 1) if fan_in != fan_out else nn.Identity()

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.embed(embedding)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class ConditionalUNet(nn.Module):
    """``(x_t, t, label) -> predicted noise``; ``label == n_classes`` means "no class".

    ``multipliers`` give the channels of each resolution as multiples of ``width``;
    each level after the first halves the sides, so the sides must be divisible by
    ``2 ** (len(multipliers) - 1)``.
    """

    def __init__(
        self,
        channels: int,
        n_classes: int,
        width: int = 32,
        multipliers: tuple[int, ...] = (1, 2, 2),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        embed_dim = 4 * width
        self.width = width
        self.null_label = n_classes
        self.time = nn.Sequential(
            nn.Linear(width, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim)
        )
        self.label = nn.Embedding(n_classes + 1, embed_dim)
        self.conv_in = nn.Conv2d(channels, width, 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        levels = [width * m for m in multipliers]
        current = width
        for index, out in enumerate(levels):
            self.down.append(ResidualBlock(current, out, embed_dim, dropout))
            current = out
            last = index == len(levels) - 1
            self.downsample.append(
                nn.Identity() if last else nn.Conv2d(current, current, 3, stride=2, padding=1)
            )
        self.middle = ResidualBlock(current, current, embed_dim, dropout)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for index, out in reversed(list(enumerate(levels))):
            self.up.append(ResidualBlock(current + out, out, embed_dim, dropout))
            current = out
            self.upsample.append(
                nn.Identity() if index == 0 else nn.Conv2d(current, current, 3, padding=1)
            )
        self.norm_out = _norm(current)
        self.conv_out = nn.Conv2d(current, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        embedding = self.time(sinusoidal_embedding(t, self.width)) + self.label(labels)
        h = self.conv_in(x)
        skips = []
        for block, down in zip(self.down, self.downsample, strict=True):
            h = block(h, embedding)
            skips.append(h)
            h = down(h)
        h = self.middle(h, embedding)
        for block, up in zip(self.up, self.upsample, strict=True):
            h = block(torch.cat([h, skips.pop()], dim=1), embedding)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))

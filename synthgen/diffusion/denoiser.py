"""The denoising network: an MLP over the noisy encoded row, told the step ``t``.

As in TabDDPM: the row is projected to ``time_dim``, the sinusoidal embedding of ``t``
(passed through a small MLP) and, when a target column is modelled separately, a
class embedding are added, and a plain ReLU MLP maps the sum to the outputs (noise
estimates for continuous features, ``x_0`` logits for one-hot groups).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer-style sin/cos features of integer steps ``t``: shape ``(batch, dim)``."""
    half = dim // 2
    frequencies = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    angles = t.to(torch.float32)[:, None] * frequencies[None]
    embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=1)
    return embedding


class MLPDenoiser(nn.Module):
    """``(x_t, t, y) -> outputs`` of the same width as the encoded row."""

    def __init__(
        self,
        data_dim: int,
        hidden: tuple[int, ...] = (512, 512, 512),
        time_dim: int = 128,
        num_classes: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.time_dim = time_dim
        self.project = nn.Linear(data_dim, time_dim)
        self.time_mlp = nn.Sequential(
            nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim)
        )
        self.label = nn.Embedding(num_classes, time_dim) if num_classes else None
        layers: list[nn.Module] = []
        width = time_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, data_dim))
        self.body = nn.Sequential(*layers)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        embedding = self.time_mlp(sinusoidal_embedding(t, self.time_dim))
        if self.label is not None and y is not None:
            embedding = embedding + nn.functional.silu(self.label(y))
        return self.body(self.project(x) + embedding)

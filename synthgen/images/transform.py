"""``ImageTransformer``: the reversible map between an ``ImageSet`` and the scaffold's tensor.

The scaffold trains on one float32 tensor with a row per example (``BaseGenerator``);
for images a row is ``[label code, pixel_1, ..., pixel_d]`` with pixels mapped from
``[0, 1]`` to ``[-1, 1]`` (the range a tanh output or a diffusion model's data live
in). Backends reshape the pixel part to ``(c, h, w)`` with ``split_rows``. Decoding
clamps back into ``[0, 1]``, so whatever a network produces is a valid image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from synthgen.errors import DataError, NotFittedError
from synthgen.images.data import ImageSchema, ImageSet


def split_rows(
    rows: torch.Tensor, shape: tuple[int, int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded rows -> (labels as int64 ``(n,)``, images ``(n, c, h, w)`` in [-1, 1])."""
    labels = rows[:, 0].round().long()
    return labels, rows[:, 1:].reshape(rows.shape[0], *shape)


def join_rows(labels: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """The inverse of ``split_rows``."""
    flat = images.flatten(1)
    return torch.cat([labels.to(flat.dtype).unsqueeze(1), flat], dim=1)


class ImageTransformer:
    """Encode / decode image sets; its only learned state is the schema.

    ``seed`` is accepted (the scaffold passes one to every transform) and unused: the
    map has no randomness.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, images: ImageSet, schema: ImageSchema) -> ImageTransformer:
        self.schema_ = schema
        return self

    @property
    def schema(self) -> ImageSchema:
        if not hasattr(self, "schema_"):
            raise NotFittedError("this ImageTransformer is not fitted; call fit first")
        return self.schema_

    @property
    def width(self) -> int:
        """Numbers per encoded row: the label and every pixel."""
        c, h, w = self.schema.shape
        return 1 + c * h * w

    def encode(self, images: ImageSet) -> torch.Tensor:
        if tuple(images.schema.shape) != self.schema.shape:
            raise DataError(
                f"images of shape {images.schema.shape} cannot be encoded by a model of "
                f"images {self.schema.shape}; resize them first"
            )
        pixels = torch.from_numpy(np.ascontiguousarray(images.images)) * 2.0 - 1.0
        return join_rows(torch.from_numpy(images.labels), pixels).float()

    def decode(self, rows: torch.Tensor, seed: int | None = None) -> ImageSet:
        labels, pixels = split_rows(rows.detach().float().cpu(), self.schema.shape)
        labels = labels.clamp(0, self.schema.n_classes - 1)
        images = ((pixels + 1.0) / 2.0).clamp(0.0, 1.0)
        return ImageSet(images.numpy(), labels.numpy(), self.schema)

    def state_dict(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        return {"kind": "images", "schema": self.schema.to_dict()}, {}

    @classmethod
    def from_state_dict(
        cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor]
    ) -> ImageTransformer:
        if not isinstance(meta, dict) or meta.get("kind") != "images":
            raise DataError("the stored transform is not an image transform")
        out = cls()
        out.schema_ = ImageSchema.from_dict(meta["schema"])
        return out

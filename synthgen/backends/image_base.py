"""``ImageGenerator``: the tabular scaffold, fed image sets instead of frames.

Image backends train through ``BaseGenerator`` unchanged (device, seeding, progress,
checkpoints, the time budget, the optimisation step and DP-SGD): only the way in and
the way out differ. ``fit`` takes an ``ImageSet`` (encoded once by ``ImageTransformer``
into ``[label, pixels...]`` rows) and ``sample`` returns one, conditioned natively on
the class (``conditions={"label": k}``), never by rejection.

Under ``dp=`` nothing is read off the data before DP-SGD: pixels live in a fixed range
and the classes must come from a schema the caller states (public knowledge), so the
preprocessing spends no privacy budget; unconditional samples then draw labels
uniformly, because the training class frequencies are private.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from synthgen.backends.base import BaseGenerator
from synthgen.backends.params import check_int
from synthgen.errors import ConfigError, DataError
from synthgen.images.data import ImageSchema, ImageSet
from synthgen.images.transform import ImageTransformer, join_rows, split_rows
from synthgen.training import SeedStreams, forked_torch_rng, make_generator

#: Bytes a sampled pixel may take on its way out (encoded float32 and the image copies).
BYTES_PER_SAMPLED_PIXEL = 24


@dataclass
class PublicPreprocessing:
    """The DP view of an image set: no statistic is released, so nothing is spent.

    Field names are those of ``private.PrivateData``, which the scaffold's DP fit reads.
    """

    pseudo: ImageSet
    delta: float
    delta_source: str
    release: Any = None
    preprocessing_epsilon: float = 0.0
    preprocessing_delta: float = 0.0


class ImageGenerator(BaseGenerator):
    """Base class of ``ImageVAE``, ``ImageGAN`` and ``ImageDDPM``."""

    transformer_class = ImageTransformer

    # ------------------------------------------------------------------ the way in
    def fit(self, images: ImageSet, schema: ImageSchema | None = None, resume: bool = False):
        """Learn ``images`` (an ``ImageSet``). Returns ``self``.

        ``schema`` (an ``ImageSchema``) defaults to the set's own; a given schema may
        list more classes than the set holds (a class absent from training can still
        be asked for, though the model has not seen it). Under ``dp`` it is required.
        """
        return super().fit(images, schema=schema, resume=resume)

    def _encode_training_data(
        self, images: Any, schema: Any, streams: SeedStreams, device: torch.device
    ) -> tuple[ImageTransformer, torch.Tensor, PublicPreprocessing | None]:
        name = type(self).__name__
        if not isinstance(images, ImageSet):
            raise DataError(
                f"{name}.fit takes an ImageSet, not {type(images).__name__}; build one with "
                "ImageSet.from_arrays(images, labels), ImageSet.from_folder(path) or "
                "synthgen.images.load_digits()"
            )
        if len(images) < 2:
            raise DataError(
                f"the image set has {len(images)} image; {name} needs at least 2 to learn from"
            )
        if schema is None:
            if self.dp is not None:
                raise ConfigError(
                    "dp: the classes read off the images would leak which classes occur; "
                    "pass the public schema, e.g. fit(images, schema=images.schema) when the "
                    "class list is public knowledge"
                )
            schema = images.schema
        images = _conform(images, schema)
        options = {"seed": streams.small_seed("transform"), **(self.transformer_options or {})}
        transformer = ImageTransformer(**options).fit(images, schema)
        data = transformer.encode(images).to(device)
        self.class_prior_ = self._class_prior(images, schema)
        if self.dp is None:
            return transformer, data, None
        delta, source = self.dp.resolve_delta(len(images))
        empty = ImageSet(np.zeros((0, *schema.shape), np.float32), np.zeros(0, np.int64), schema)
        return transformer, data, PublicPreprocessing(empty, float(delta), source)

    def _class_prior(self, images: ImageSet, schema: ImageSchema) -> torch.Tensor:
        """Label frequencies for unconditional samples (uniform under DP: they are private)."""
        if self.dp is not None:
            return torch.full((schema.n_classes,), 1.0 / schema.n_classes)
        counts = np.bincount(images.labels, minlength=schema.n_classes).astype(np.float64)
        return torch.from_numpy(counts / counts.sum()).float()

    def _make_layout(self, transformer: Any, device: torch.device) -> None:
        return None

    # ------------------------------------------------------------------ helpers for backends
    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.transformer_.schema.shape

    @property
    def n_classes(self) -> int:
        return self.transformer_.schema.n_classes

    def _unpack(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoded rows -> (labels, images in [-1, 1])."""
        return split_rows(rows, self.image_shape)

    def _draw_labels(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        prior = self.class_prior_.to(self.device_)
        if n == 0:
            return torch.zeros(0, dtype=torch.long, device=self.device_)
        return torch.multinomial(prior, n, replacement=True, generator=generator)

    def _validation_loss(self, data: torch.Tensor) -> float:
        """Mean of the first player's row loss over the validation images."""
        player = self._players()[0]
        total, count = 0.0, 0
        for start in range(0, data.shape[0], 512):
            rows = player.loss(data[start : start + 512]).rows
            total += float(rows.sum())
            count += rows.shape[0]
        return total / max(count, 1)

    # ------------------------------------------------------------------ generation hooks
    def _generate_images(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Images ``(n, c, h, w)`` in [-1, 1] of the given classes (the backend's sampler)."""
        raise NotImplementedError  # pragma: no cover

    def _generate(self, n: int, generator: torch.Generator) -> torch.Tensor:
        labels = self._draw_labels(n, generator)
        return join_rows(labels, self._generate_images(labels, generator))

    def _generate_for(
        self, n: int, generator: torch.Generator, condition: dict[str, Any]
    ) -> torch.Tensor:
        code = int(condition["label"])
        labels = torch.full((n,), code, dtype=torch.long, device=self.device_)
        return join_rows(labels, self._generate_images(labels, generator))

    # ------------------------------------------------------------------ the way out
    def sample(  # type: ignore[override]
        self,
        n: int,
        seed: int | None = None,
        conditions: dict[str, Any] | None = None,
        max_tries: int = 1,
    ) -> ImageSet:
        """``n`` images as an ``ImageSet``; ``conditions={"label": k}`` fixes the class.

        ``k`` is a class name (or its code). Without conditions labels follow the
        training class frequencies (uniform under DP). The same ``seed`` gives the
        same images on the same device. ``max_tries`` is accepted for the tabular
        signature; conditioning is native, so nothing is ever rejected.
        """
        self._check_fitted()
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ConfigError(f"n={n!r} must be a non-negative integer number of images")
        if seed is not None:
            check_int("seed", seed, 0)
        condition = self._image_condition(conditions)
        self._check_sample_size(int(n))
        sample_seed = SeedStreams(seed).seed("sample")
        generator = make_generator(sample_seed, self.device_)
        with forked_torch_rng(self.device_, sample_seed):
            rows = self._generate_encoded(int(n), generator, condition)
        return self.transformer_.decode(rows)

    def _image_condition(self, conditions: Any) -> dict[str, int] | None:
        if conditions is None:
            return None
        if not isinstance(conditions, dict):
            raise ConfigError(
                f"conditions={conditions!r}: image models take a dict {{'label': class}}"
            )
        unknown = sorted(str(k) for k in conditions if k != "label")
        if unknown:
            raise ConfigError(
                f"image models condition on 'label' only, not {unknown}; use "
                "conditions={'label': class}"
            )
        return {"label": self.transformer_.schema.code_of(conditions["label"])}

    def _check_sample_size(self, n: int) -> None:
        import psutil

        c, h, w = self.image_shape
        needed = n * c * h * w * BYTES_PER_SAMPLED_PIXEL
        available = psutil.virtual_memory().available
        if needed > available:
            raise ConfigError(
                f"n={n} images would need about {needed / 1e9:.3g} GB of memory but "
                f"{available / 1e9:.3g} GB are available; sample in smaller batches"
            )

    # ------------------------------------------------------------------ persistence
    def _extra_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        return {}, {"class_prior": self.class_prior_}

    def _load_extra_state(self, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        prior = tensors["class_prior"].float()
        if prior.shape != (self.transformer_.schema.n_classes,) or not bool(
            torch.isfinite(prior).all() and (prior >= 0).all() and prior.sum() > 0
        ):
            raise ValueError("the stored class frequencies do not fit the schema")
        self.class_prior_ = prior / prior.sum()


def _conform(images: ImageSet, schema: ImageSchema) -> ImageSet:
    """``images`` relabelled into ``schema``'s classes (which may list more)."""
    if not isinstance(schema, ImageSchema):
        raise ConfigError(
            f"schema must be an ImageSchema for image models, not {type(schema).__name__}"
        )
    if images.schema.shape != schema.shape:
        raise DataError(
            f"the images are {images.schema.shape} (channels, height, width) but the schema "
            f"says {schema.shape}; resize the images or fix the schema"
        )
    if images.schema.classes == schema.classes:
        return images
    missing = [c for c in images.schema.classes if c not in schema.classes]
    if missing:
        raise DataError(
            f"the images hold class(es) {missing} that the schema's classes "
            f"{list(schema.classes)} do not list; add them to the schema"
        )
    mapping = np.array([schema.classes.index(c) for c in images.schema.classes], np.int64)
    return ImageSet(images.images, mapping[images.labels], schema)

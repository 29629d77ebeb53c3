"""The project's image feature extractor: a small CNN classifier trained on real images.

Why our own network: FID, KID and precision/recall are only as meaningful as the
feature space they are computed in. Inception-v3 (the standard) needs a 95 MB weights
file that is not bundled and cannot be downloaded at run time, and it was trained on
299x299 photographs, not on 8x8 digits. A CNN trained to classify the real training
images learns the features that tell its classes apart; its penultimate layer is the
feature space, its class head answers "does this synthetic image look like the class
it was generated for". Numbers are comparable only between runs that use the same
extractor, so it has a ``digest`` (SHA-256 of its configuration and weights) that every
report records, and ``save`` / ``load`` so a caller can keep it next to the dataset.

Pixels go in as ``uint8`` (``ImageSet.to_uint8``), the form torch-fidelity hands its
feature extractors, so ``features`` here and the features torch-fidelity computes
through :class:`TorchFidelityCNN` are the same numbers.

Files: the project's safe model format (``synthgen.io``: safetensors tensors, a JSON
header, SHA-256 digests of both; never pickle).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.helpers import vassert

from synthgen.errors import ConfigError, DataError, ModelFileError, NotFittedError
from synthgen.images.data import ImageSchema, ImageSet
from synthgen.io import canonical_json, read_model_file, tensor_digest, write_model_file

__all__ = [
    "EXTRACTOR_KIND",
    "TORCH_FIDELITY_NAME",
    "ExtractorConfig",
    "ImageFeatureExtractor",
    "TorchFidelityCNN",
    "register_with_torch_fidelity",
]

#: The name the extractor is registered under in torch-fidelity's registry.
TORCH_FIDELITY_NAME = "synthgen-image-cnn"
#: ``kind`` recorded in reports for numbers computed with this extractor.
EXTRACTOR_KIND = "project-cnn"
#: ``backend`` entry of the model-file header (so ``synthgen.load_model`` names it).
FILE_BACKEND = "image-feature-extractor"
GROUPS = 8
BATCH = 256


@dataclass(frozen=True)
class ExtractorConfig:
    """Everything that fixes the network and its input: part of the digest."""

    channels: int
    height: int
    width: int
    classes: tuple[str, ...]
    conv_width: int = 32
    feature_dim: int = 64

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["classes"] = list(self.classes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtractorConfig:
        return cls(
            channels=int(data["channels"]),
            height=int(data["height"]),
            width=int(data["width"]),
            classes=tuple(str(c) for c in data["classes"]),
            conv_width=int(data["conv_width"]),
            feature_dim=int(data["feature_dim"]),
        )


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm, not BatchNorm: features must not depend on what else is in the batch."""
    return nn.GroupNorm(min(GROUPS, channels), channels)


class CNNClassifier(nn.Module):
    """Three 3x3 convolutions (two strided), a feature layer and a linear class head.

    ``forward`` returns ``(features, logits)``. The features are the pre-activation
    output of the penultimate layer (unbounded, roughly Gaussian, which is what the
    Frechet distance assumes), standardised with the per-unit mean and spread measured
    on the training images after training (buffers, part of the weights and the
    digest): KID's polynomial kernel ``(x.y / d + 1) ** 3`` assumes features of order
    one. The head reads the raw features through a ReLU.
    """

    def __init__(self, config: ExtractorConfig) -> None:
        super().__init__()
        c, w = config.channels, config.conv_width
        self.body = nn.Sequential(
            nn.Conv2d(c, w, 3, padding=1),
            _norm(w),
            nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
            _norm(2 * w),
            nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1),
            _norm(2 * w),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
        )
        self.feature = nn.Linear(8 * w, config.feature_dim)
        self.head = nn.Linear(config.feature_dim, len(config.classes))
        self.register_buffer("feature_mean", torch.zeros(config.feature_dim))
        self.register_buffer("feature_scale", torch.ones(config.feature_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.feature(self.body(x))
        return (z - self.feature_mean) / self.feature_scale, self.head(F.relu(z))

    @torch.no_grad()
    def standardise_features_(self, x: torch.Tensor) -> None:
        """Set the feature mean and scale from inputs ``x`` (the training images)."""
        self.eval()
        self.feature_mean.zero_()
        self.feature_scale.fill_(1.0)
        z = torch.cat([self(x[i : i + BATCH])[0] for i in range(0, len(x), BATCH)])
        spread = z.std(dim=0, unbiased=False) if len(z) > 1 else torch.ones_like(z[0])
        floor = max(float(spread.mean()) * 1e-2, 1e-6)  # a unit constant on the training set
        self.feature_mean.copy_(z.mean(dim=0))
        self.feature_scale.copy_(spread.clamp_min(floor))


def uint8_to_input(x: torch.Tensor) -> torch.Tensor:
    """``uint8`` pixels -> the network's float input in ``[-1, 1]``."""
    return x.to(torch.float32) / 127.5 - 1.0


def train_classifier(
    net: CNNClassifier,
    pixels: np.ndarray,
    labels: np.ndarray,
    steps: int,
    seed: int,
    batch_size: int = 64,
    lr: float = 3e-3,
) -> list[float]:
    """Adam on cross-entropy for ``steps`` mini-batches (seeded shuffles); mean loss per pass.

    A fixed number of steps (not epochs) lets the utility comparison give the
    real-only and the augmented classifier the same training budget.
    """
    x = uint8_to_input(torch.from_numpy(pixels))
    y = torch.from_numpy(labels.astype(np.int64))
    generator = torch.Generator().manual_seed(int(seed))
    optimiser = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    batch = max(1, min(int(batch_size), len(x)))
    losses: list[float] = []
    done, running = 0, []
    net.train()
    while done < steps:
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch):
            index = order[start : start + batch]
            loss = F.cross_entropy(net(x[index])[1], y[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            running.append(loss.item())
            done += 1
            if done >= steps:
                break
        losses.append(float(np.mean(running)))
        running = []
    net.eval()
    return losses


def new_classifier(config: ExtractorConfig, seed: int) -> CNNClassifier:
    """A freshly initialised network; the global torch RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return CNNClassifier(config)


def _check_images(images: Any, what: str) -> ImageSet:
    if not isinstance(images, ImageSet):
        raise DataError(
            f"{what} must be an ImageSet, not {type(images).__name__}; build one with "
            "ImageSet.from_arrays"
        )
    return images


class ImageFeatureExtractor:
    """A small CNN classifier whose penultimate layer is the feature space of the image metrics.

    ``fit`` trains it on real images (seeded, CPU, seconds on digits); ``features``,
    ``predict`` and ``accuracy`` use it; ``save`` / ``load`` keep it; ``digest`` and
    ``name`` say which extractor produced a number.
    """

    def __init__(self, conv_width: int = 32, feature_dim: int = 64) -> None:
        for name, value in (("conv_width", conv_width), ("feature_dim", feature_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024:
                raise ConfigError(f"{name}={value!r} must be a whole number in 1..1024")
        self.conv_width = int(conv_width)
        self.feature_dim = int(feature_dim)
        self.config: ExtractorConfig | None = None
        self.net: CNNClassifier | None = None
        self.training: dict[str, Any] = {}
        self._digest: str | None = None

    # ----------------------------------------------------------------- training
    def fit(
        self, images: ImageSet, seed: int = 0, epochs: int = 10, batch_size: int = 64
    ) -> ImageFeatureExtractor:
        """Train on labelled real images; returns self. Same data and seed, same weights."""
        images = _check_images(images, "images")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ConfigError(f"epochs={epochs!r} must be a whole number >= 1")
        if len(images) < 2:
            raise DataError(
                f"the feature extractor needs at least 2 training images, got {len(images)}"
            )
        schema = images.schema
        config = ExtractorConfig(
            schema.channels,
            schema.height,
            schema.width,
            schema.classes,
            self.conv_width,
            self.feature_dim,
        )
        net = new_classifier(config, seed)
        steps = epochs * math.ceil(len(images) / max(1, min(batch_size, len(images))))
        pixels = images.to_uint8()
        losses = train_classifier(net, pixels, images.labels, steps, seed, batch_size=batch_size)
        net.standardise_features_(uint8_to_input(torch.from_numpy(pixels)))
        self.config, self.net, self._digest = config, net, None
        self.training = {
            "seed": int(seed),
            "epochs": int(epochs),
            "batch_size": int(batch_size),
            "images": len(images),
            "loss_per_epoch": [round(v, 6) for v in losses],
            "train_accuracy": self.accuracy(images),
        }
        return self

    # ----------------------------------------------------------------- using it
    def _require_fitted(self) -> tuple[ExtractorConfig, CNNClassifier]:
        if self.config is None or self.net is None:
            raise NotFittedError(
                "the image feature extractor is not trained; call fit(real_images) or "
                "ImageFeatureExtractor.load(path)"
            )
        return self.config, self.net

    def check_shape(self, images: ImageSet, what: str = "images") -> None:
        """Refuse images of another shape than the extractor was trained on."""
        config, _ = self._require_fitted()
        shape = images.schema.shape
        if shape != config.shape:
            raise DataError(
                f"{what} are {'x'.join(map(str, shape))} (channels x height x width) but the "
                f"feature extractor {self.name!r} was trained on "
                f"{'x'.join(map(str, config.shape))} images; resize them "
                f"(ImageSet.resized) or train an extractor on images of this size"
            )

    def check_classes(self, images: ImageSet, what: str = "images") -> None:
        """Refuse labels the classifier head does not know (its codes would mean other classes)."""
        config, _ = self._require_fitted()
        if tuple(images.schema.classes) != config.classes:
            raise DataError(
                f"{what} have classes {list(images.schema.classes)} but the feature extractor "
                f"{self.name!r} was trained on classes {list(config.classes)}; use an "
                "extractor trained on these classes"
            )

    def _outputs(self, images: ImageSet, what: str) -> tuple[np.ndarray, np.ndarray]:
        images = _check_images(images, what)
        _, net = self._require_fitted()
        self.check_shape(images, what)
        feats, logits = [], []
        pixels = torch.from_numpy(images.to_uint8())
        net.eval()
        with torch.no_grad():
            for start in range(0, len(pixels), BATCH):
                z, out = net(uint8_to_input(pixels[start : start + BATCH]))
                feats.append(z)
                logits.append(out)
        if not feats:
            dim, k = self.config.feature_dim, len(self.config.classes)
            return np.zeros((0, dim), np.float32), np.zeros((0, k), np.float32)
        return torch.cat(feats).numpy(), torch.cat(logits).numpy()

    def features(self, images: ImageSet) -> np.ndarray:
        """Penultimate-layer features ``(n, feature_dim)`` float32 (the metrics' space)."""
        return self._outputs(images, "images")[0]

    def predict(self, images: ImageSet) -> np.ndarray:
        """Predicted class codes ``(n,)`` (into the extractor's classes)."""
        return self._outputs(images, "images")[1].argmax(axis=1).astype(np.int64)

    def accuracy(self, images: ImageSet) -> float:
        """Share of ``images`` classified as their label (NaN for an empty set)."""
        images = _check_images(images, "images")
        self.check_classes(images)
        if len(images) == 0:
            return math.nan
        return float(np.mean(self.predict(images) == images.labels))

    # ----------------------------------------------------------------- identity
    def _tensors(self) -> dict[str, torch.Tensor]:
        _, net = self._require_fitted()
        return {f"net.{k}": v.detach().cpu().clone() for k, v in net.state_dict().items()}

    @property
    def digest(self) -> str:
        """SHA-256 of the configuration and the weights: equal digests, equal features."""
        if self._digest is None:
            config, _ = self._require_fitted()
            hasher = hashlib.sha256(canonical_json(config.to_dict()).encode("utf-8"))
            hasher.update(tensor_digest(self._tensors()).encode("ascii"))
            self._digest = hasher.hexdigest()
        return self._digest

    @property
    def name(self) -> str:
        """A readable identifier: the registered name, the input shape, the digest's start."""
        config, _ = self._require_fitted()
        return f"{TORCH_FIDELITY_NAME}-{'x'.join(map(str, config.shape))}-{self.digest[:12]}"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self._require_fitted()[0].shape

    def info(self) -> dict[str, Any]:
        """The ``extractor`` block of a report."""
        config, _ = self._require_fitted()
        return {
            "kind": EXTRACTOR_KIND,
            "name": self.name,
            "digest": self.digest,
            "input_shape": list(config.shape),
            "feature_dim": config.feature_dim,
            "classes": list(config.classes),
            "training": dict(self.training),
        }

    def __repr__(self) -> str:
        if self.config is None:
            return "ImageFeatureExtractor(not trained)"
        return f"ImageFeatureExtractor({self.name})"

    # ----------------------------------------------------------------- files
    def save(self, path: str | os.PathLike) -> None:
        """Write the extractor in the project's safe model format (no pickle), atomically."""
        config, _ = self._require_fitted()
        header = {
            "backend": FILE_BACKEND,
            "params": config.to_dict(),
            "transform": {},
            "training_log": dict(self.training),
            "extra": {"extractor_digest": self.digest},
        }
        write_model_file(path, header, self._tensors())

    @classmethod
    def load(cls, path: str | os.PathLike) -> ImageFeatureExtractor:
        """Read a file written by ``save``; any problem with it is a ``ModelFileError``."""
        header, tensors = read_model_file(path)
        text = os.fspath(path)
        if header.get("backend") != FILE_BACKEND:
            raise ModelFileError(
                f"{text!r} holds a {header.get('backend')!r} model, not an image feature "
                "extractor; give a file written by ImageFeatureExtractor.save"
            )
        try:
            config = ExtractorConfig.from_dict(header["params"])
            ImageSchema(config.height, config.width, config.channels, config.classes)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(
                f"{text!r} is damaged: its extractor configuration is not valid ({exc})"
            ) from None
        extractor = cls(conv_width=config.conv_width, feature_dim=config.feature_dim)
        net = CNNClassifier(config)
        state = {k.removeprefix("net."): v for k, v in tensors.items()}
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelFileError(
                f"{text!r} is damaged: its weights do not fit the extractor network ({exc})"
            ) from None
        net.eval()
        extractor.config, extractor.net = config, net
        extractor.training = dict(header.get("training_log", {}))
        stored = header.get("extra", {}).get("extractor_digest")
        if stored is not None and stored != extractor.digest:
            raise ModelFileError(
                f"{text!r} is damaged: its weights do not give the digest it was saved with"
            )
        return extractor


# --------------------------------------------------------------------- torch-fidelity
class TorchFidelityCNN(FeatureExtractorBase):
    """The project extractor as a torch-fidelity feature extractor.

    torch-fidelity builds extractors itself from a registered class, a list of
    requested feature names and the keyword arguments of ``calculate_metrics``; the
    weights come from ``feature_extractor_weights_path`` (a file written by
    ``ImageFeatureExtractor.save``). Inputs are ``uint8`` ``B x C x H x W`` of the shape
    the extractor was trained on.
    """

    def __init__(
        self, name: str, features_list: list[str], feature_extractor_weights_path=None, **kwargs
    ) -> None:
        super().__init__(name, features_list)
        vassert(
            feature_extractor_weights_path is not None,
            f"{TORCH_FIDELITY_NAME} needs feature_extractor_weights_path (a file written by "
            "ImageFeatureExtractor.save)",
        )
        extractor = ImageFeatureExtractor.load(feature_extractor_weights_path)
        self.shape = extractor.input_shape
        self.net = extractor.net

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("features", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return "features"

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros((1, 1, 8, 8), dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        vassert(torch.is_tensor(x) and x.dtype == torch.uint8, "Expecting uint8 images")
        vassert(
            x.dim() == 4 and tuple(x.shape[1:]) == tuple(self.shape),
            f"Input is {tuple(x.shape)}, expected B x {' x '.join(map(str, self.shape))}",
        )
        z, logits = self.net(uint8_to_input(x))
        out = {"features": z, "logits": logits}
        return tuple(out[name] for name in self.features_list)


def register_with_torch_fidelity() -> str:
    """Register :class:`TorchFidelityCNN` once (torch-fidelity refuses a second time)."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if FEATURE_EXTRACTORS_REGISTRY.get(TORCH_FIDELITY_NAME) is not TorchFidelityCNN:
        if TORCH_FIDELITY_NAME in FEATURE_EXTRACTORS_REGISTRY:
            raise ConfigError(
                f"torch-fidelity already has another feature extractor named "
                f"{TORCH_FIDELITY_NAME!r}; remove that registration"
            )
        register_feature_extractor(TORCH_FIDELITY_NAME, TorchFidelityCNN)
    return TORCH_FIDELITY_NAME

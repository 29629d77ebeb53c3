"""Image job specs: the tabular job spec's shape, for an image set.

An image job is a job spec whose source is ``source: {images: ...}``; ``parse_spec``
and ``load_spec`` (``pipelines.jobs.spec``) return an ``ImageJobSpec`` for it, with the
same rules: pydantic validation, unknown fields refused, every error naming the field
and its line in the file.

```yaml
name: digits_vae
seed: 0
source:
  images: {digits: {size: 8}}   # or folder: path | parquet: path | catalog: NAME[@VERSION]
  name: digits8                 # catalog name it is registered under
  classes: ["0", "1", ...]      # the public class list (required under DP, except digits)
holdout: {fraction: 0.2}        # stratified: the same share of every class
model: {backend: image_vae, params: {epochs: 30}, dp: {epsilon: 8}}
produce: {per_class: 50}        # or images: 500 (labels drawn as in training)
validation: {require_all_classes: true}
evaluate: {extractor: null, inception_weights: null, utility: true}
gates: {max_fid: 5, min_classifier_accuracy: 0.8, min_augmentation_gain: 0.0}
export: {name: digits_synthetic, tags: [images]}
```
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pipelines.jobs.spec import DPSpec, Export, Holdout, Resources, Schedule, _Strict
from synthgen.errors import ConfigError

#: The backend an image job uses when none is named (the fastest to train on CPUs).
DEFAULT_IMAGE_BACKEND = "image_vae"
SOURCE_KINDS = ("digits", "folder", "parquet", "catalog")
#: Image gates: gate -> (score in ``report.scores``, higher is better).
SCORE_GATES: dict[str, tuple[str, bool]] = {
    "max_fid": ("fid.image", False),
    "max_kid": ("kid.mean", False),
    "min_precision": ("prc.precision", True),
    "min_recall": ("prc.recall", True),
    "min_classifier_accuracy": ("classifier.synthetic_accuracy", True),
    "min_augmentation_gain": ("utility.augmentation_gain", True),
}


def image_backends() -> dict[str, type]:
    """The registered backends that generate images (``ImageGenerator`` subclasses)."""
    from synthgen.backends import BACKENDS
    from synthgen.backends.image_base import ImageGenerator

    return {k: v for k, v in BACKENDS.items() if issubclass(v, ImageGenerator)}


def is_image_spec(data: Any) -> bool:
    """Whether a parsed YAML mapping is an image job (its source is ``images:``)."""
    source = data.get("source") if isinstance(data, dict) else None
    return isinstance(source, dict) and "images" in source


class Digits(_Strict):
    size: Literal[8, 16, 32] = 8


class ImageOrigin(_Strict):
    """Exactly one of ``digits``, ``folder``, ``parquet``, ``catalog``."""

    digits: Digits | None = None
    folder: str | None = Field(None, description="one sub-folder of image files per class")
    parquet: str | None = Field(None, description="Parquet of PNGs (ImageSet.to_parquet)")
    catalog: str | None = Field(None, description="an image dataset in the catalog")

    @model_validator(mode="after")
    def _one_kind(self) -> ImageOrigin:
        given = [k for k in SOURCE_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of digits, folder, parquet or catalog"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in SOURCE_KINDS if getattr(self, k) is not None)


class ImageSource(_Strict):
    images: ImageOrigin
    name: str | None = Field(None, description="catalog name the source is registered under")
    classes: list[str] | None = Field(
        None, description="the public class list and its order (required under DP)"
    )

    @field_validator("classes")
    @classmethod
    def _classes(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("classes must list at least one class")
            dupes = sorted({c for c in value if value.count(c) > 1})
            if dupes:
                raise ValueError(f"classes {dupes} appear more than once")
        return value


class ImageModelSpec(_Strict):
    backend: str = DEFAULT_IMAGE_BACKEND
    params: dict[str, Any] = Field(default_factory=dict)
    dp: DPSpec | None = None

    @field_validator("backend")
    @classmethod
    def _known(cls, value: str) -> str:
        from synthgen.backends import BACKENDS

        images = image_backends()
        name = value.lower()
        if name in BACKENDS and name not in images:
            raise ValueError(
                f"backend {value!r} generates tables, not images; an image job takes one of "
                f"{', '.join(sorted(images))}"
            )
        if name not in images:
            raise ValueError(
                f"unknown image backend {value!r}; available: {', '.join(sorted(images))}"
            )
        return name


class ImageProduce(_Strict):
    """``images: N`` (labels drawn as in training), ``per_class: K`` (K of every class,
    conditioned on the class), or neither: as many images as the training split."""

    images: int | None = Field(None, ge=1)
    per_class: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one(self) -> ImageProduce:
        if self.images is not None and self.per_class is not None:
            raise ValueError("give images or per_class, not both")
        return self


class ImageValidation(_Strict):
    require_all_classes: bool = Field(
        False, description="every class must have at least one image (per_class implies it)"
    )


class ImageEvaluate(_Strict):
    enabled: bool = True
    extractor: str | None = Field(None, description="a saved ImageFeatureExtractor file")
    extractor_from: str | None = Field(
        None, description="an image dataset in the catalog whose stored extractor to reuse"
    )
    extractor_epochs: int | None = Field(None, ge=1)
    inception_weights: str | None = Field(
        None, description="torch-fidelity's inception-v3-compat weights file (never downloaded)"
    )
    utility: bool = True

    @model_validator(mode="after")
    def _one_extractor(self) -> ImageEvaluate:
        if self.extractor is not None and self.extractor_from is not None:
            raise ValueError("give extractor (a file) or extractor_from (a dataset), not both")
        if self.extractor_from is not None:
            from pipelines.catalog.catalog import parse_ref

            try:
                parse_ref(self.extractor_from)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return self


class ImageGates(_Strict):
    max_fid: float | None = Field(None, ge=0)
    max_kid: float | None = None
    min_precision: float | None = Field(None, ge=0, le=1)
    min_recall: float | None = Field(None, ge=0, le=1)
    min_classifier_accuracy: float | None = Field(None, ge=0, le=1)
    min_augmentation_gain: float | None = Field(None, ge=-1, le=1)
    max_epsilon: float | None = Field(None, gt=0)
    validation_must_pass: bool = True

    def score_gates(self) -> dict[str, float]:
        """The score gates that are set: gate -> threshold."""
        return {g: getattr(self, g) for g in SCORE_GATES if getattr(self, g) is not None}


class ImageJobSpec(_Strict):
    name: str
    seed: int = 0
    source: ImageSource
    holdout: Holdout | None = Field(default_factory=Holdout)
    model: ImageModelSpec = Field(default_factory=ImageModelSpec)
    produce: ImageProduce = Field(default_factory=ImageProduce)
    validation: ImageValidation = Field(default_factory=ImageValidation)
    evaluate: ImageEvaluate = Field(default_factory=ImageEvaluate)
    gates: ImageGates = Field(default_factory=ImageGates)
    export: Export
    schedule: Schedule | None = None
    resources: Resources = Field(default_factory=Resources)
    #: Folder relative paths in the spec are resolved against (the spec file's folder).
    base_dir: str = Field(".", exclude=True)

    @field_validator("name")
    @classmethod
    def _job_name(cls, value: str) -> str:
        from pipelines.catalog.catalog import check_name

        try:
            return check_name(value, "job name")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _consistent(self) -> ImageJobSpec:
        scored = self.gates.score_gates()
        if scored and not self.evaluate.enabled:
            raise ValueError(
                f"gates {sorted(scored)} need scores, but evaluate.enabled is false; enable "
                "the evaluation or remove the gates"
            )
        if self.gates.min_augmentation_gain is not None and not self.evaluate.utility:
            raise ValueError("gates.min_augmentation_gain needs evaluate.utility: true")
        if self.gates.min_augmentation_gain is not None and self.holdout is None:
            raise ValueError(
                "gates.min_augmentation_gain is measured on holdout images; give a holdout "
                "or remove the gate"
            )
        if self.gates.max_epsilon is not None and self.model.dp is None:
            raise ValueError(
                "gates.max_epsilon needs model.dp (a model trained without DP has no epsilon)"
            )
        dp, most = self.model.dp, self.gates.max_epsilon
        if dp is not None and most is not None and dp.epsilon > most:
            raise ValueError(
                f"model.dp.epsilon {dp.epsilon:g} is above gates.max_epsilon {most:g}; lower "
                "the epsilon or raise the gate"
            )
        if dp is not None and self.source.classes is None and self.source.images.kind != "digits":
            raise ValueError(
                "model.dp: the class list read off the images would leak which classes "
                "occur; state the public classes as source.classes: [...]"
            )
        return self

    @property
    def modality(self) -> str:
        return "images"

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (Path(self.base_dir) / p)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def model_key(self, source_digest: str) -> str:
        """Cache key of the fitted model: same source content, split and model config."""
        payload = {
            "modality": "images",
            "source": source_digest,
            "holdout": self.holdout.model_dump() if self.holdout else None,
            "seed": self.seed,
            "model": self.model.model_dump(mode="json"),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

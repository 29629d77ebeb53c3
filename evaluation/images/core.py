"""``evaluate_images``: score synthetic images against real ones (and a holdout).

What is measured, and why each number is there:

- ``fid.image``, ``kid.*``, ``prc.*``: how close the synthetic images' distribution is
  to the real one in a learned feature space (torch-fidelity computes them);
- ``fid.real_vs_real``: the same distance between the real training images and the
  holdout, the floor that finite samples put under any FID;
- ``classifier.*``: whether synthetic images are recognisable as the class they were
  generated for (and, as the reference, how well the classifier does on real holdout
  images);
- ``utility.*``: whether adding the synthetic images to scarce real data trains a
  better classifier.

Heavy libraries (torch, torch-fidelity, PIL) are imported inside the functions, so that
``import evaluation`` stays cheap.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from evaluation.images.report import ImageReport, grid_png
from synthgen.errors import ConfigError, DataError
from synthgen.images.data import ImageSet

if TYPE_CHECKING:
    from evaluation.images.extractor import ImageFeatureExtractor

__all__ = ["check_image_sets", "evaluate_images"]

MIN_IMAGES = 2


def _require_set(images: Any, what: str) -> ImageSet:
    if not isinstance(images, ImageSet):
        raise DataError(
            f"{what} must be an ImageSet, not {type(images).__name__}; build one with "
            "ImageSet.from_arrays or load it with ImageSet.from_parquet"
        )
    if len(images) < MIN_IMAGES:
        raise DataError(
            f"{what} hold {len(images)} image(s); image metrics need at least {MIN_IMAGES} "
            "(FID needs a covariance, precision/recall a nearest neighbour)"
        )
    return images


def check_image_sets(real: ImageSet, others: dict[str, ImageSet]) -> None:
    """Every set must have real's shape, channels and classes; else name the difference."""
    ref = real.schema
    for what, images in others.items():
        schema = images.schema
        if schema.channels != ref.channels:
            raise DataError(
                f"{what} have {schema.channels} channel(s) but the real images have "
                f"{ref.channels}; convert them to the same colour mode"
            )
        if (schema.height, schema.width) != (ref.height, ref.width):
            raise DataError(
                f"{what} are {schema.height}x{schema.width} pixels but the real images are "
                f"{ref.height}x{ref.width}; resize them (ImageSet.resized(({ref.height}, "
                f"{ref.width})))"
            )
        if schema.classes != ref.classes:
            raise DataError(
                f"{what} have classes {list(schema.classes)} but the real images have "
                f"{list(ref.classes)}; give both the same class list (from_arrays(classes=...))"
            )


def _resolve_extractor(
    extractor: Any, real: ImageSet, seed: int, epochs: int
) -> tuple[ImageFeatureExtractor, bool]:
    """The project extractor to use and whether it was trained here."""
    from evaluation.images.extractor import ImageFeatureExtractor

    if extractor is None:
        return ImageFeatureExtractor().fit(real, seed=seed, epochs=epochs), True
    if isinstance(extractor, str | os.PathLike):
        extractor = ImageFeatureExtractor.load(extractor)
    if not isinstance(extractor, ImageFeatureExtractor):
        raise ConfigError(
            f"extractor must be None, an ImageFeatureExtractor or the path of a saved one, "
            f"not {type(extractor).__name__}"
        )
    extractor.check_shape(real, "real images")
    extractor.check_classes(real, "real images")
    return extractor, False


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed={seed!r} must be a whole number")
    return int(seed)


def evaluate_images(
    real: ImageSet,
    synthetic: ImageSet,
    holdout: ImageSet | None = None,
    extractor: ImageFeatureExtractor | str | os.PathLike | None = None,
    inception_weights: str | os.PathLike | None = None,
    seed: int = 0,
    utility: bool = True,
    *,
    extractor_epochs: int = 10,
    utility_fraction: float = 0.1,
    utility_repeats: int = 3,
    utility_steps: int = 150,
) -> ImageReport:
    """Score ``synthetic`` images against the ``real`` training images (and a ``holdout``).

    ``extractor``: the project CNN whose features the metrics use (an
    ``ImageFeatureExtractor`` or the path of a saved one); ``None`` trains one on
    ``real`` (seeded) and keeps it on ``report.extractor``. ``inception_weights``: the
    path of torch-fidelity's ``inception-v3-compat`` weights file; when given, FID, KID
    and precision/recall use Inception (grayscale repeated to RGB) and the project CNN
    is used for the classifier scores only. Nothing is downloaded or cached.
    """
    from evaluation.images.metrics import KID_SUBSET, PRC_NEIGHBORHOOD, feature_space

    started = time.perf_counter()
    seed = _check_seed(seed)
    real = _require_set(real, "real images")
    synthetic = _require_set(synthetic, "synthetic images")
    others = {"synthetic images": synthetic}
    if holdout is not None:
        others["holdout images"] = _require_set(holdout, "holdout images")
    check_image_sets(real, others)
    cnn, trained = _resolve_extractor(extractor, real, seed, extractor_epochs)
    scores: dict[str, float] = {}
    skipped: dict[str, str] = {}
    meta: dict[str, Any] = {
        "images": {
            "real": len(real),
            "synthetic": len(synthetic),
            "holdout": None if holdout is None else len(holdout),
        },
        "shape": list(real.schema.shape),
        "classes": list(real.schema.classes),
        "seed": seed,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "extractor_trained_here": trained,
    }
    with feature_space(cnn, inception_weights) as space:
        scores.update(space.metrics(synthetic, real, seed=seed))
        if holdout is not None:
            floor = space.metrics(holdout, real, kid=False, prc=False, seed=seed)
            scores["fid.real_vs_real"] = floor["fid.image"]
        info = dict(space.info)
    n = min(len(real), len(synthetic))
    meta["kid_subset_size"] = min(KID_SUBSET, n)
    meta["prc_neighborhood"] = min(PRC_NEIGHBORHOOD, n - 1)
    scores["classifier.synthetic_accuracy"] = cnn.accuracy(synthetic)
    if holdout is not None:
        scores["classifier.holdout_accuracy"] = cnn.accuracy(holdout)
    if info.get("kind") != "project-cnn":
        meta["classifier"] = cnn.info()
    if utility and holdout is None:
        skipped["utility"] = "no holdout images to measure accuracy on"
    elif utility:
        from evaluation.images.utility import augmentation_utility

        gains, details = augmentation_utility(
            real,
            synthetic,
            holdout,
            seed=seed,
            fraction=utility_fraction,
            repeats=utility_repeats,
            steps=utility_steps,
        )
        scores.update(gains)
        if "skipped" in details:
            skipped["utility"] = details.pop("skipped")
        meta["utility"] = details
    if skipped:
        meta["skipped"] = skipped
    png = grid_png(synthetic, per_class=8, reference=real)
    meta["seconds"] = round(time.perf_counter() - started, 3)
    return ImageReport(scores, info, meta, png, extractor=cnn)

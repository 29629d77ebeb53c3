"""Augmentation utility: do synthetic images help a classifier trained on few real ones?

The question an augmentation user asks is not "do the images look real" but "does
adding them to my scarce real data train a better model". The test here: a stratified
``fraction`` (10%) of the real training images is the scarce set; a fresh small CNN is
trained on it alone and, from the same initial weights and for the same number of
steps, on it plus the synthetic images (with the labels they were generated for);
both are scored on the holdout. The gain is the difference, averaged over a few seeds
(each seed draws another scarce set and another initialisation), because one small
training run is noisy. The same step budget for both runs keeps the comparison about
the data, not about how long each model trained.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from synthgen.images.data import ImageSet

__all__ = ["augmentation_utility"]

#: A narrower network than the feature extractor: six trainings must stay cheap.
UTILITY_CONV_WIDTH = 16
#: Fewest real images the scarce training set may hold.
MIN_SCARCE = 2


def _holdout_accuracy(net: Any, holdout: ImageSet) -> float:
    import torch

    from evaluation.images.extractor import uint8_to_input

    with torch.no_grad():
        logits = net(uint8_to_input(torch.from_numpy(holdout.to_uint8())))[1]
    return float(np.mean(logits.argmax(1).numpy() == holdout.labels))


def _train_and_score(
    config: Any, train: ImageSet, holdout: ImageSet, steps: int, seed: int
) -> float:
    from evaluation.images.extractor import new_classifier, train_classifier

    net = new_classifier(config, seed)
    train_classifier(net, train.to_uint8(), train.labels, steps, seed)
    return _holdout_accuracy(net, holdout)


def augmentation_utility(
    real: ImageSet,
    synthetic: ImageSet,
    holdout: ImageSet,
    seed: int = 0,
    fraction: float = 0.1,
    repeats: int = 3,
    steps: int = 150,
) -> tuple[dict[str, float], dict[str, Any]]:
    """``(scores, details)``: real-only vs augmented holdout accuracy and their difference.

    Scores: ``utility.real_only_accuracy``, ``utility.augmented_accuracy``,
    ``utility.augmentation_gain`` (means over ``repeats`` seeds). Details: the per-seed
    numbers and the set sizes. Schemas are assumed to match (checked by the caller).
    """
    from evaluation.images.extractor import ExtractorConfig

    schema = real.schema
    config = ExtractorConfig(
        schema.channels,
        schema.height,
        schema.width,
        schema.classes,
        conv_width=UTILITY_CONV_WIDTH,
        feature_dim=32,
    )
    runs: list[dict[str, Any]] = []
    for k in range(int(repeats)):
        run_seed = int(seed) + k
        _, scarce = real.split(fraction, seed=run_seed)
        if len(scarce) < MIN_SCARCE:
            reason = (
                f"a {fraction:g} share of {len(real)} real images is {len(scarce)} images; "
                f"the utility test needs at least {MIN_SCARCE}"
            )
            return {}, {"skipped": reason}
        augmented = scarce.concat(synthetic)
        runs.append(
            {
                "seed": run_seed,
                "real_images": len(scarce),
                "augmented_images": len(augmented),
                "real_only_accuracy": _train_and_score(config, scarce, holdout, steps, run_seed),
                "augmented_accuracy": _train_and_score(config, augmented, holdout, steps, run_seed),
            }
        )
    real_only = float(np.mean([r["real_only_accuracy"] for r in runs]))
    augmented = float(np.mean([r["augmented_accuracy"] for r in runs]))
    scores = {
        "utility.real_only_accuracy": real_only,
        "utility.augmented_accuracy": augmented,
        "utility.augmentation_gain": augmented - real_only,
    }
    gains = [r["augmented_accuracy"] - r["real_only_accuracy"] for r in runs]
    details = {
        "fraction": float(fraction),
        "steps": int(steps),
        "repeats": int(repeats),
        "gain_std": float(np.std(gains)) if len(gains) > 1 else math.nan,
        "runs": runs,
    }
    return scores, details

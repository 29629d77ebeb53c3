"""Image evaluation: FID, KID and precision/recall (torch-fidelity), classifier and utility.

``evaluate_images(real, synthetic, holdout)`` returns an ``ImageReport``; see
``evaluation.images.core`` for what each score means. The feature extractor, the
torch-fidelity plumbing and the utility test load torch on first use only
(``ImageFeatureExtractor``, ``image_metrics`` and ``augmentation_utility`` are
resolved lazily), so ``import evaluation`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evaluation.images.core import evaluate_images
from evaluation.images.report import ImageReport, sample_grid

if TYPE_CHECKING:
    from evaluation.images.extractor import ImageFeatureExtractor
    from evaluation.images.metrics import image_metrics
    from evaluation.images.utility import augmentation_utility

__all__ = [
    "ImageFeatureExtractor",
    "ImageReport",
    "augmentation_utility",
    "evaluate_images",
    "image_metrics",
    "sample_grid",
]

_LAZY = {
    "ImageFeatureExtractor": "evaluation.images.extractor",
    "image_metrics": "evaluation.images.metrics",
    "augmentation_utility": "evaluation.images.utility",
}


def __getattr__(name: str) -> Any:
    """Load the torch-backed names on first use (PEP 562)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'evaluation.images' has no attribute {name!r}")

"""Privacy: DP training helpers, accounting and empirical attacks."""

from privacy.attacks import (
    DCRResult,
    dcr_overfitting,
    exact_copy_rate,
    knn_euclidean,
    membership_inference_auc,
    nearest_distances,
    nndr,
)

__all__ = [
    "DCRResult",
    "dcr_overfitting",
    "exact_copy_rate",
    "knn_euclidean",
    "membership_inference_auc",
    "nearest_distances",
    "nndr",
]

"""FID for tables: Frechet distance between real and synthetic rows in a fixed space.

Images use Inception features; a table has no pretrained network, so the feature space
is (a) the standardised one-hot encoding fitted on the real table (``fid.tabular``)
and, optionally, (b) the penultimate layer of a small MLP classifier trained on the
real rows to predict the target (``fid.mlp``), which weighs features by how much they
matter for the task. The statistics and the distance come from torch-fidelity
(``fid_features_to_statistics`` / ``fid_statistics_to_metric``), as do KID (polynomial
kernel MMD over random subsets) and the k-NN precision/recall of Kynkaanniemi et al.,
computed on subsamples so that the cost stays bounded. Nothing is downloaded.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

KID_SUBSET = 1000
KID_SUBSETS = 50
PRC_ROWS = 3000


def frechet_distance(real: np.ndarray, synthetic: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to the two feature sets (torch-fidelity).

    With one feature numpy's covariance is a 0-d array, which torch-fidelity's shape
    check refuses; it is the 1 x 1 covariance matrix, and is passed on as one.
    """
    s_r = fid_features_to_statistics(torch.from_numpy(real.astype("float64")))
    s_s = fid_features_to_statistics(torch.from_numpy(synthetic.astype("float64")))
    for stats in (s_r, s_s):
        stats["sigma"] = np.atleast_2d(stats["sigma"])
    value = float(fid_statistics_to_metric(s_r, s_s, verbose=False)["frechet_inception_distance"])
    return max(value, 0.0)  # identical tables can come out as -1e-16 from rounding


def _subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= n else x[rng.choice(len(x), n, replace=False)]


def kid_and_prc(real: np.ndarray, synthetic: np.ndarray, seed: int = 0) -> dict[str, float]:
    """KID (mean, std) and precision/recall/F, where the sample sizes allow them."""
    out: dict[str, float] = {}
    n = min(len(real), len(synthetic))
    if n >= 20:
        subset = min(KID_SUBSET, n)
        kid = kid_features_to_metric(
            torch.from_numpy(real.astype("float32")),
            torch.from_numpy(synthetic.astype("float32")),
            kid_subsets=KID_SUBSETS,
            kid_subset_size=subset,
            verbose=False,
            rng_seed=seed,
            kid_kernel="poly",
            kid_kernel_poly_degree=3,
            kid_kernel_poly_gamma=None,
            kid_kernel_poly_coef0=1,
        )
        out["fid.kid_mean"] = float(kid["kernel_inception_distance_mean"])
        out["fid.kid_std"] = float(kid["kernel_inception_distance_std"])
    if n >= 10:
        rng = np.random.default_rng(seed)
        r = torch.from_numpy(_subsample(real, PRC_ROWS, rng).astype("float32"))
        s = torch.from_numpy(_subsample(synthetic, PRC_ROWS, rng).astype("float32"))
        prc = prc_features_to_metric(
            s, r, prc_neighborhood=3, prc_batch_size=2048, save_cpu_ram=True, verbose=False
        )
        out["fid.precision"] = float(prc["precision"])
        out["fid.recall"] = float(prc["recall"])
        out["fid.f_score"] = float(prc["f_score"])
    return out


def mlp_features(
    x_real: np.ndarray,
    y_real: np.ndarray,
    others: list[np.ndarray],
    seed: int = 0,
    max_rows: int = 10_000,
) -> list[np.ndarray]:
    """Penultimate-layer activations of an MLP trained on real rows to predict the target."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x_real), min(max_rows, len(x_real)), replace=False)
    is_class = y_real.dtype.kind in "OUSb"
    cls = MLPClassifier if is_class else MLPRegressor
    y = y_real[idx]
    if not is_class:
        y = (y - y.mean()) / (y.std() or 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 60 epochs are enough features
        model = cls(
            hidden_layer_sizes=(64, 32), max_iter=60, random_state=seed, early_stopping=False
        ).fit(x_real[idx], y)

    def hidden(x: np.ndarray) -> np.ndarray:
        h = x.astype("float64")
        for w, b in zip(model.coefs_[:-1], model.intercepts_[:-1], strict=True):
            h = np.maximum(h @ w + b, 0.0)
        return h

    return [hidden(x) for x in others]


def fid(
    real: np.ndarray,
    synthetic: np.ndarray,
    seed: int = 0,
    y_real: np.ndarray | None = None,
    mlp: bool = False,
) -> dict[str, float]:
    """FID (standardised space; optionally MLP space), KID and precision/recall."""
    scores = {"fid.tabular": frechet_distance(real, synthetic) if len(real) > 1 else math.nan}
    scores.update(kid_and_prc(real, synthetic, seed))
    if mlp and y_real is not None:
        h_r, h_s = mlp_features(real, y_real, [real, synthetic], seed)
        scores["fid.mlp"] = frechet_distance(h_r, h_s)
    return scores

"""Alpha-precision, beta-recall and authenticity (Alaa et al., ICML 2022).

Written from the paper, in the standardised one-hot space of ``TableEncoder`` (the
paper's optional learnt embedding is replaced by this fixed encoding, so the numbers
do not depend on training an extra network).

- alpha-precision: the real data's alpha-support is the smallest ball around the real
  mean holding a fraction alpha of the real rows. P_alpha is the share of synthetic
  rows inside that ball; a faithful generator has P_alpha = alpha for every alpha.
  The score is 1 - 2 * integral |P_alpha - alpha| d alpha (1 = perfect).
- beta-recall: the same with the roles swapped: a real row counts as covered at level
  beta when it lies inside the k-NN ball (k = 5, radius = distance to its 5th nearest
  synthetic neighbour) of its nearest synthetic row, and that synthetic row lies inside
  the synthetic beta-support (ball around the synthetic mean holding a share beta of the
  synthetic rows). Score 1 - 2 * integral |R_beta - beta| d beta.
- authenticity: share of synthetic rows that are farther from their closest real row
  than that real row is from its own closest real neighbour (a synthetic row closer
  than that looks like a copy).
"""

from __future__ import annotations

import numpy as np

from privacy.attacks import knn_euclidean

N_STEPS = 30
K_RECALL = 5


def alpha_precision(
    real: np.ndarray, synthetic: np.ndarray, max_rows: int | None = 10_000, seed: int = 0
) -> dict[str, float]:
    """Alpha-precision, beta-recall and authenticity of encoded real/synthetic rows."""
    rng = np.random.default_rng(seed)
    if max_rows and len(real) > max_rows:
        real = real[rng.choice(len(real), max_rows, replace=False)]
    if max_rows and len(synthetic) > max_rows:
        synthetic = synthetic[rng.choice(len(synthetic), max_rows, replace=False)]
    real = real.astype("float64")
    synthetic = synthetic.astype("float64")
    alphas = np.linspace(0, 1, N_STEPS)
    center_r = real.mean(axis=0)
    center_s = synthetic.mean(axis=0)
    radii = np.quantile(np.linalg.norm(real - center_r, axis=1), alphas)
    syn_to_center = np.linalg.norm(synthetic - center_r, axis=1)
    p_curve = np.array([(syn_to_center <= r).mean() for r in radii])

    real_nn, _ = knn_euclidean(real, real, k=1, exclude_self=True)
    real_to_real = real_nn[:, 0]
    syn_nn, _ = knn_euclidean(synthetic, synthetic, k=K_RECALL, exclude_self=True)
    syn_radius = syn_nn[:, -1]
    real_to_syn, syn_idx = knn_euclidean(real, synthetic, k=1)
    real_to_syn, syn_idx = real_to_syn[:, 0], syn_idx[:, 0]
    closest_syn_d = np.linalg.norm(synthetic[syn_idx] - center_s, axis=1)
    syn_radii = np.quantile(np.linalg.norm(synthetic - center_s, axis=1), alphas)
    covered = real_to_syn <= syn_radius[syn_idx]
    r_curve = np.array([(covered & (closest_syn_d <= r)).mean() for r in syn_radii])

    syn_to_real, real_idx = knn_euclidean(synthetic, real, k=1)
    authentic = syn_to_real[:, 0] > real_to_real[real_idx[:, 0]]
    step = alphas[1] - alphas[0]
    return {
        "alpha_precision.alpha_precision": float(1 - 2 * np.abs(p_curve - alphas).sum() * step),
        "alpha_precision.beta_recall": float(1 - 2 * np.abs(r_curve - alphas).sum() * step),
        "alpha_precision.authenticity": float(authentic.mean()),
    }

"""Privacy risk section: runs the attacks of ``privacy.attacks`` and summarises them.

- ``privacy.dcr_share``: share of synthetic rows closer to a training row than to any
  holdout row (SDMetrics DCROverfittingProtection's distance, on one numeric scale for
  both references: ``privacy.attacks.dcr_overfitting``), measured against
  equally many training and holdout rows: the larger table is subsampled (seeded) to
  the smaller one's size, because with unequal sizes a row drawn from the real
  distribution is closer to the larger table more often than not (26,000 vs 6,561
  real rows score about 0.8 unbalanced). So 0.5 is ideal whatever the split; near 1
  means memorised rows. The detail table ``privacy.dcr_reference`` gives both sizes
  and the size used.
- ``privacy.dcr_protection``: SDMetrics' score, ``min(2 * (1 - dcr_share), 1)``.
- ``privacy.nndr_mean`` / ``privacy.nndr_p05``: nearest-neighbour distance ratio of
  synthetic rows to training rows (low = a synthetic row singles out one record).
- ``privacy.exact_copy_rate``: share of synthetic rows that are verbatim training rows.
- ``privacy.mia_auc``: ROC AUC of a distance-based membership-inference attack
  (training rows = members, holdout rows = non-members). 0.5 = no leakage.

DCR, MIA need a holdout that the generator never saw; without one they are left out
(a random split of the training data would not be unseen by the generator).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from privacy.attacks import (
    dcr_overfitting,
    exact_copy_rate,
    membership_inference_auc,
    nearest_distances,
)
from synthgen.schema import Schema


def _sample(df: pd.DataFrame, n: int | None, rng: np.random.Generator) -> pd.DataFrame:
    if n is None or len(df) <= n:
        return df
    return df.iloc[np.sort(rng.choice(len(df), n, replace=False))]


def _reference_sizes(
    real: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    searched: pd.DataFrame,
    used: int,
) -> pd.DataFrame:
    """What the DCR share was measured on: the sizes given and the balanced size used."""
    return pd.DataFrame(
        {
            "table": ["training", "holdout", "synthetic"],
            "rows_given": [len(real), len(holdout), len(synthetic)],
            "rows_used": [used, used, len(searched)],
        }
    )


def privacy_risk(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame | None,
    schema: Schema,
    max_rows: int | None = None,
    mia_rows: int = 2500,
    seed: int = 0,
) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
    """Run every attack.

    ``max_rows`` caps the synthetic rows whose nearest neighbours are searched (a seeded
    sample; None = all rows): DCR share and NNDR are averages over synthetic rows, so
    10,000 rows pin them to about +-0.005 while bounding the cost. ``mia_rows`` members
    and as many non-members are attacked, against every synthetic row.
    """
    rng = np.random.default_rng(seed)
    syn = _sample(synthetic, max_rows, rng)
    d_train = nearest_distances(syn, real, schema, k=2)
    d1 = d_train[:, 0]
    d2 = d_train[:, 1] if d_train.shape[1] > 1 else d_train[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(d1 == 0, 0.0, d1 / d2)
    scores = {
        "privacy.exact_copy_rate": exact_copy_rate(synthetic, real, schema),
        "privacy.dcr_median": float(np.median(d1)),
        "privacy.nndr_mean": float(np.mean(ratio)),
        "privacy.nndr_p05": float(np.quantile(ratio, 0.05)),
    }
    table = {"dcr_training": d1, "nndr": ratio}
    details: dict[str, pd.DataFrame] = {}
    if holdout is not None:
        dcr = dcr_overfitting(real, syn, holdout, schema, seed=seed)
        d_hold = dcr.dcr_holdout
        share = float(dcr.closer_to_training)
        scores["privacy.dcr_share"] = share
        scores["privacy.dcr_protection"] = min((1.0 - share) * 2.0, 1.0)
        scores["privacy.mia_auc"] = membership_inference_auc(
            real, holdout, synthetic, schema, max_rows=mia_rows, seed=seed
        )
        table["dcr_holdout"] = d_hold
        details["privacy.dcr_reference"] = _reference_sizes(
            real, holdout, synthetic, syn, int(dcr.n_used or len(real))
        )
    quantiles = [0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 1.0]
    summary = pd.DataFrame(
        {name: np.quantile(v, quantiles) for name, v in table.items()},
        index=[f"q{int(q * 100):02d}" for q in quantiles],
    )
    summary.insert(0, "quantile", summary.index)
    details["privacy.distances"] = summary.reset_index(drop=True)
    return scores, details

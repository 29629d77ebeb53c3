"""Detection: can a classifier tell real rows from synthetic rows?

A classifier two-sample test: label real rows 0 and synthetic rows 1, fit a
HistGradientBoosting model under stratified k-fold cross-validation and measure the
out-of-fold ROC AUC. AUC 0.5 means the tables are indistinguishable to the model; 1.0
means every synthetic row is recognisable. The headline ``detection.score`` maps that
to [0, 1] with 1 = indistinguishable: ``1 - 2 * max(AUC - 0.5, 0)``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from evaluation.encoding import TableEncoder
from evaluation.threads import model_threads


def _sample(df: pd.DataFrame, n: int | None, rng: np.random.Generator) -> pd.DataFrame:
    if n is None or len(df) <= n:
        return df
    return df.iloc[np.sort(rng.choice(len(df), n, replace=False))]


def detection(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    encoder: TableEncoder,
    folds: int = 3,
    max_rows: int | None = 20_000,
    seed: int = 0,
    n_jobs: int | None = 1,
) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
    """Cross-validated real-vs-synthetic ROC AUC (each side capped at ``max_rows``)."""
    rng = np.random.default_rng(seed)
    r, s = _sample(real, max_rows, rng), _sample(synthetic, max_rows, rng)
    x_r, mask = encoder.ordinal(r)
    x_s, _ = encoder.ordinal(s)
    x = np.vstack([x_r, x_s])
    y = np.r_[np.zeros(len(x_r)), np.ones(len(x_s))]
    folds = max(2, min(folds, len(x_r), len(x_s)))
    pred = np.zeros(len(y))
    rows = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for i, (tr, te) in enumerate(splitter.split(x, y)):
        model = HistGradientBoostingClassifier(
            max_iter=100,
            categorical_features=np.array(mask, dtype=bool) if mask else None,
            early_stopping=False,
            random_state=seed,
        )
        with model_threads(n_jobs):
            model.fit(x[tr], y[tr])
            pred[te] = model.predict_proba(x[te])[:, 1]
        rows.append((i, float(roc_auc_score(y[te], pred[te]))))
    auc = float(roc_auc_score(y, pred)) if len(np.unique(y)) == 2 else math.nan
    score = 1.0 - 2.0 * max(auc - 0.5, 0.0) if not math.isnan(auc) else math.nan
    details = pd.DataFrame(rows, columns=["fold", "auc"])
    return {"detection.auc": auc, "detection.score": score}, {"detection.folds": details}

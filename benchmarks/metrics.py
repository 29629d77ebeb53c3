"""Quality and utility scores of one synthetic table, computed the same way for every backend.

Quality is SDMetrics' own ``QualityReport`` (0.32), not a re-implementation, so the
numbers are the ones SDV users know. Utility is the usual TSTR/TRTR pair: one
HistGradientBoosting model trained on synthetic rows, one on the real training rows,
both scored on the same real holdout that no generator saw.

With a holdout there are two more yardsticks. Memorisation: the share of synthetic rows
closer to a training row than to any holdout row (equal-size references, 0.5 ideal) and
the exact-copy rate, next to the rate at which real unseen rows equal a training row.
The real-data floor: the quality score of k real training rows against k real holdout
rows, the best a generator can be expected to reach at sample size k, compared with the
backend's own score at the same k.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.backends import TABLE, sdv_metadata_dict

#: HistGradientBoosting treats at most this many categories natively.
MAX_NATIVE_CATEGORIES = 250
#: Most synthetic rows the memorisation checks compare: the nearest-neighbour search
#: costs rows x reference rows, and 10,000 rows already give a share to +-0.01.
MAX_MEMORISATION_ROWS = 10_000


def seconds_per_million_cells(seconds: float, rows: int, columns: int) -> float | None:
    """Fit seconds per million training cells (rows x columns); None for an empty table.

    Datasets differ in both length and width; per cell, a fit on the 92-column ``msq``
    and one on the 15-column Adult are on one scale (a backend whose cost grows faster
    than linearly in the width shows it as a larger figure on wide tables).
    """
    cells = rows * columns
    if cells <= 0:
        return None
    return seconds / cells * 1e6


def floor_rows(quality_rows: int, holdout_rows: int) -> int:
    """k of the real-data floor: as many rows as both the quality sample and holdout allow."""
    return min(quality_rows, holdout_rows)


def memorisation_rows(holdout_rows: int) -> int:
    """Synthetic rows the DCR share and exact-copy rate are measured on."""
    return min(holdout_rows, MAX_MEMORISATION_ROWS)


def memorisation_scores(
    train: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame,
    schema: Any,
    seed: int,
) -> dict[str, float]:
    """DCR share (closer to training than to holdout; 0.5 ideal) and exact-copy rate.

    ``privacy.attacks.dcr_overfitting`` cuts the larger reference table to the smaller
    one's size itself. A tie (a synthetic row exactly as far from both tables, common
    on tables of small integer codes, e.g. at distance 0 from a duplicate present in
    both) counts one half: with the strict "closer" of SDMetrics, ties pull the share
    below 0.5 and would hide copying (credit_default: 0.24 strict). ``dcr_ties`` is
    the share of such rows.
    """
    from privacy.attacks import dcr_overfitting, exact_copy_rate

    dcr = dcr_overfitting(train, synthetic, holdout, schema, seed=seed)
    closer = np.asarray(dcr.dcr_training) < np.asarray(dcr.dcr_holdout)
    ties = np.asarray(dcr.dcr_training) == np.asarray(dcr.dcr_holdout)
    return {
        "dcr_share": float(closer.mean() + 0.5 * ties.mean()),
        "dcr_ties": float(ties.mean()),
        "exact_copies": float(exact_copy_rate(synthetic, train, schema)),
        "dcr_rows": len(synthetic),
    }


def holdout_copy_rate(train: pd.DataFrame, holdout: pd.DataFrame, schema: Any) -> float:
    """How often a real row the generators never saw equals a training row (the reference
    for ``exact_copies``: duplicates in the data itself, not memorisation)."""
    from privacy.attacks import exact_copy_rate

    return float(exact_copy_rate(holdout, train, schema))


def quality_scores(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Any) -> dict[str, float]:
    """SDMetrics QualityReport: overall score, Column Shapes and Column Pair Trends."""
    from sdmetrics.reports import QualityReport

    metadata = sdv_metadata_dict(schema)
    metadata.pop("METADATA_SPEC_VERSION", None)
    report = QualityReport()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.generate({TABLE: real}, {TABLE: synthetic[real.columns]}, metadata, verbose=False)
    properties = report.get_properties().set_index("Property")["Score"]
    return {
        "quality": float(report.get_score()),
        "column_shapes": float(properties["Column Shapes"]),
        "pair_trends": float(properties["Column Pair Trends"]),
    }


def _features(frame: pd.DataFrame, schema: Any, target: str) -> pd.DataFrame:
    """Model inputs with a fixed encoding shared by real and synthetic frames.

    Categories come from the schema (learned on the real training rows), so a category
    code means the same thing in every frame; unseen values become missing.
    """
    out: dict[str, Any] = {}
    for name, spec in schema.columns.items():
        if name == target or spec.kind == "id":
            continue
        column = frame[name]
        if spec.kind in ("categorical", "boolean"):
            values = pd.Categorical(column, categories=list(spec.categories or []))
            if len(values.categories) <= MAX_NATIVE_CATEGORIES:
                out[name] = values
            else:
                out[name] = np.where(values.codes < 0, np.nan, values.codes.astype("float64"))
        elif spec.kind == "datetime":
            values = pd.to_datetime(column, errors="coerce")
            out[name] = values.astype("int64").where(values.notna()).astype("float64")
        else:
            out[name] = pd.to_numeric(column, errors="coerce").astype("float64")
    return pd.DataFrame(out, index=frame.index)


def _positive_label(train_target: pd.Series) -> Any:
    """The minority class of a binary label: the one F1 is about (``>50K``, default=1)."""
    return train_target.value_counts().idxmin()


def utility_scores(
    train: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame,
    schema: Any,
    target: str,
    task: str,
    seed: int,
) -> dict[str, float]:
    """TSTR and TRTR scores: F1 and ROC AUC for classification, R2 for regression."""
    tstr = _fit_and_score(synthetic, holdout, train, schema, target, task, seed)
    trtr = _fit_and_score(train, holdout, train, schema, target, task, seed)
    scores = {f"tstr_{k}": v for k, v in tstr.items()}
    scores.update({f"trtr_{k}": v for k, v in trtr.items()})
    return scores


def _fit_and_score(
    fit_frame: pd.DataFrame,
    test: pd.DataFrame,
    train: pd.DataFrame,
    schema: Any,
    target: str,
    task: str,
    seed: int,
) -> dict[str, float]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import f1_score, r2_score, roc_auc_score

    fit_frame = fit_frame[fit_frame[target].notna()]
    x_fit, x_test = _features(fit_frame, schema, target), _features(test, schema, target)
    if task == "regression":
        y_fit = pd.to_numeric(fit_frame[target], errors="coerce").to_numpy("float64")
        model = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=seed)
        model.fit(x_fit, y_fit)
        y_test = pd.to_numeric(test[target], errors="coerce").to_numpy("float64")
        return {"r2": float(r2_score(y_test, model.predict(x_test)))}

    classes = sorted(pd.unique(train[target].dropna()), key=str)
    if len(classes) == 2:
        positive = _positive_label(train[target])
        y_fit = (fit_frame[target] == positive).to_numpy(int)
        y_test = (test[target] == positive).to_numpy(int)
    else:
        lookup = {value: i for i, value in enumerate(classes)}
        known = fit_frame[target].isin(lookup)
        x_fit, y_fit = x_fit[known.to_numpy()], fit_frame[target][known].map(lookup).to_numpy()
        y_test = test[target].map(lookup).to_numpy()
    if len(np.unique(y_fit)) < 2:
        # A generator that produced a single class cannot train a classifier at all.
        return {"f1": math.nan, "roc_auc": math.nan}
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
    model.fit(x_fit, y_fit)
    proba = model.predict_proba(x_test)
    predicted = model.classes_[proba.argmax(axis=1)]
    if len(classes) == 2:
        return {
            "f1": float(f1_score(y_test, predicted)),
            "roc_auc": float(roc_auc_score(y_test, proba[:, list(model.classes_).index(1)])),
        }
    full = np.zeros((len(y_test), len(classes)))
    full[:, model.classes_] = proba
    auc = roc_auc_score(y_test, full, multi_class="ovr", labels=list(range(len(classes))))
    return {"f1": float(f1_score(y_test, predicted, average="macro")), "roc_auc": float(auc)}

"""Utility: is a model trained on synthetic data as good as one trained on real data?

TSTR (train on synthetic, test on real) against TRTR (train on real, test on real),
both tested on the same real holdout rows (or, without a holdout, on a seeded 20%
split of the real table that the TRTR model does not train on). Models are
scikit-learn HistGradientBoosting with fixed hyper-parameters and seed, so the only
thing that changes between TSTR and TRTR is the training data.

Classification (categorical/boolean target): ROC AUC, F1, accuracy. For a binary target
the positive class is the real table's minority class (e.g. ``>50K``), which is the
class F1 and the fairness metrics care about; for more classes F1 is macro-averaged and
ROC AUC is one-vs-rest, weighted. Regression (numerical target): R2 and MAE.

With ``augmentation=True`` a third model trains on real + synthetic rows and the gain
over TRTR is reported (``utility.aug_gain_<metric>``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score, roc_auc_score
from sklearn.model_selection import train_test_split

from evaluation.encoding import TableEncoder, category_keys
from evaluation.threads import model_threads
from synthgen.errors import ConfigError
from synthgen.schema import Schema


@dataclass
class UtilityRun:
    """What the bias section needs from the utility models."""

    task: str  # "classification" | "regression"
    test: pd.DataFrame
    y_true: np.ndarray
    positive: object = None
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # model -> labels


def task_of(schema: Schema, target: str) -> str:
    kind = schema[target].kind
    if kind in ("categorical", "boolean"):
        return "classification"
    if kind == "numerical":
        return "regression"
    raise ConfigError(
        f"target column {target!r} is of kind {kind!r}; utility needs a categorical, boolean "
        "or numerical target (pass another target= or change the column's kind in the schema)"
    )


def positive_class(real: pd.DataFrame, target: str) -> object:
    """The minority class of the real target (the class of interest for F1 / fairness)."""
    counts = category_keys(real[target]).dropna().value_counts()
    return counts.index[-1]


def _model(task: str, mask: list[bool], seed: int):
    cats = np.array(mask, dtype=bool) if any(mask) else None
    if task == "classification":
        return HistGradientBoostingClassifier(
            max_iter=100, categorical_features=cats, random_state=seed
        )
    return HistGradientBoostingRegressor(max_iter=100, categorical_features=cats, random_state=seed)


def _no_empty_columns(x: np.ndarray) -> np.ndarray:
    """Training features with all-missing columns set to 0.

    HistGradientBoosting cannot bin a feature with no value at all (a synthetic column
    that came out all null); a constant carries the same (no) information, and a tree
    never splits on it, so the model is the one it would have been without the column.
    """
    empty = np.isnan(x).all(axis=0) if len(x) else np.zeros(x.shape[1], dtype=bool)
    if not empty.any():
        return x
    x = x.copy()
    x[:, empty] = 0.0
    return x


def _labels(df: pd.DataFrame, target: str) -> np.ndarray:
    return category_keys(df[target]).astype(str).to_numpy()


def _classification_metrics(model, x, y, classes: list[str], positive: str) -> dict[str, float]:
    pred = model.predict(x)
    out = {"accuracy": float(accuracy_score(y, pred))}
    proba = np.zeros((len(x), len(classes)))
    model_classes = [str(c) for c in model.classes_]
    p = model.predict_proba(x)
    for j, c in enumerate(model_classes):
        if c in classes:
            proba[:, classes.index(c)] = p[:, j]
    present = sorted(set(y))
    if len(classes) == 2:
        # F1 of the positive class; ``labels=[positive]`` rather than ``pos_label`` so
        # that a class only the synthetic table has (predicted by the TSTR model) counts
        # as a wrong prediction instead of making scikit-learn refuse a "binary" task.
        out["f1"] = float(f1_score(y, pred, labels=[positive], average="macro", zero_division=0))
        y_bin = (y == positive).astype(int)
        out["roc_auc"] = (
            float(roc_auc_score(y_bin, proba[:, classes.index(positive)]))
            if len(set(y_bin)) == 2
            else math.nan
        )
    else:
        out["f1"] = float(f1_score(y, pred, average="macro", zero_division=0))
        try:
            cols = [classes.index(c) for c in present]
            sub = proba[:, cols]
            sub = sub / np.clip(sub.sum(axis=1, keepdims=True), 1e-12, None)
            out["roc_auc"] = float(
                roc_auc_score(y, sub, multi_class="ovr", average="weighted", labels=present)
            )
        except ValueError:
            out["roc_auc"] = math.nan
    return out


def utility(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame | None,
    target: str,
    schema: Schema,
    encoder: TableEncoder,
    augmentation: bool = False,
    seed: int = 0,
    n_jobs: int | None = 1,
) -> tuple[dict[str, float], dict[str, pd.DataFrame], UtilityRun]:
    """TSTR / TRTR (and optionally augmentation) scores for ``target``."""
    with model_threads(n_jobs):
        return _utility(real, synthetic, holdout, target, schema, encoder, augmentation, seed)


def _utility(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame | None,
    target: str,
    schema: Schema,
    encoder: TableEncoder,
    augmentation: bool,
    seed: int,
) -> tuple[dict[str, float], dict[str, pd.DataFrame], UtilityRun]:
    task = task_of(schema, target)
    real = real[real[target].notna()]
    synthetic = synthetic[synthetic[target].notna()]
    if holdout is None:
        strat = _labels(real, target) if task == "classification" else None
        try:
            train, test = train_test_split(real, test_size=0.2, random_state=seed, stratify=strat)
        except ValueError:
            train, test = train_test_split(real, test_size=0.2, random_state=seed)
    else:
        train, test = real, holdout[holdout[target].notna()]
    exclude = (target,)
    x_test, mask = encoder.ordinal(test, exclude)
    sets = {"trtr": train, "tstr": synthetic}
    if augmentation:
        sets["aug"] = pd.concat([train, synthetic], ignore_index=True)
    run = UtilityRun(task=task, test=test, y_true=np.array([]))
    rows: list[tuple[str, str, float]] = []
    if task == "classification":
        y_test = _labels(test, target)
        classes = sorted(set(_labels(real, target)) | set(y_test))
        positive = str(positive_class(real, target))
        run.y_true, run.positive = y_test, positive
        for name, frame in sets.items():
            y = _labels(frame, target)
            if len(set(y)) < 2:
                metrics = {"roc_auc": math.nan, "f1": math.nan, "accuracy": math.nan}
            else:
                x, _ = encoder.ordinal(frame, exclude)
                model = _model(task, mask, seed).fit(_no_empty_columns(x), y)
                metrics = _classification_metrics(model, x_test, y_test, classes, positive)
                run.predictions[name] = model.predict(x_test)
            rows.extend((name, m, v) for m, v in metrics.items())
    else:
        y_test = test[target].to_numpy(dtype="float64")
        run.y_true = y_test
        for name, frame in sets.items():
            x, _ = encoder.ordinal(frame, exclude)
            y = frame[target].to_numpy(dtype="float64")
            model = _model(task, mask, seed).fit(_no_empty_columns(x), y)
            pred = model.predict(x_test)
            run.predictions[name] = pred
            rows.extend(
                [
                    (name, "r2", float(r2_score(y_test, pred))),
                    (name, "mae", float(mean_absolute_error(y_test, pred))),
                ]
            )
    table = pd.DataFrame(rows, columns=["model", "metric", "value"])
    scores = {f"utility.{m}_{k}": v for m, k, v in rows}
    if augmentation:
        for metric in table["metric"].unique():
            gain = scores[f"utility.aug_{metric}"] - scores[f"utility.trtr_{metric}"]
            scores[f"utility.aug_gain_{metric}"] = gain
    return scores, {"utility.models": table}, run

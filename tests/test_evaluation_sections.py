"""Individual sections on small synthetic problems where the right answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation import evaluate
from evaluation.alpha_precision import alpha_precision
from evaluation.fid import frechet_distance


def people(n: int, seed: int, gap: float = 0.1) -> pd.DataFrame:
    """A table where group 'b' has a lower positive rate by ``gap``."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b"], n, p=[0.6, 0.4])
    x = rng.normal(0, 1, n)
    base = 1 / (1 + np.exp(-2 * x))
    p = np.clip(base - np.where(group == "b", gap, 0.0), 0, 1)
    y = np.where(rng.random(n) < p, "pos", "neg")
    return pd.DataFrame({"x": x, "z": x * 0.5 + rng.normal(0, 1, n), "group": group, "y": y})


def test_bias_flags_a_widened_gap_and_not_a_kept_one():
    real, hold = people(3000, 0), people(2000, 1)
    fair = evaluate(
        real, people(3000, 2), hold, target="y", sensitive="group", metrics=["utility", "bias"]
    )
    unfair = evaluate(
        real,
        people(3000, 3, gap=0.45),
        hold,
        target="y",
        sensitive=["group"],
        metrics=["utility", "bias"],
    )
    assert fair.scores["bias.group.share_max_diff"] < 0.05
    gaps = unfair.details["bias.gaps"]
    row = gaps[gaps["measure"] == "target_rate_gap"].iloc[0]
    assert row["widened"] and row["synthetic"] > row["real"] + 0.2
    assert unfair.scores["bias.widened_gaps"] > fair.scores["bias.widened_gaps"]
    assert unfair.scores["bias.group.dp_diff_tstr"] > unfair.scores["bias.group.dp_diff_trtr"]


def test_utility_regression_without_holdout_uses_a_split():
    rng = np.random.default_rng(0)
    n = 1200
    x = rng.normal(size=(n, 3))
    real = pd.DataFrame(
        {
            "a": x[:, 0],
            "b": x[:, 1],
            "c": rng.choice(["u", "v"], n),
            "t": 3 * x[:, 0] - x[:, 1] + rng.normal(0, 0.1, n),
        }
    )
    noise = real.assign(t=rng.permutation(real["t"].to_numpy()))
    good = evaluate(real, real.sample(frac=1, random_state=1), target="t", metrics=["utility"])
    bad = evaluate(real, noise, target="t", metrics=["utility"])
    assert good.scores["utility.trtr_r2"] > 0.9
    assert good.scores["utility.tstr_r2"] > 0.9
    assert bad.scores["utility.tstr_r2"] < 0.2
    assert bad.scores["utility.tstr_mae"] > good.scores["utility.tstr_mae"]


def test_utility_single_class_synthetic_is_nan_not_a_crash():
    real = people(1000, 0)
    syn = real.assign(y="neg")
    report = evaluate(real, syn, target="y", metrics=["utility"])
    assert np.isnan(report.scores["utility.tstr_roc_auc"])
    assert report.scores["utility.trtr_roc_auc"] > 0.7


def test_alpha_precision_and_fid_react_to_a_shift():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(2000, 5))
    same = rng.normal(size=(2000, 5))
    shifted = rng.normal(size=(2000, 5)) + 1.5
    ok, off = alpha_precision(real, same), alpha_precision(real, shifted)
    assert ok["alpha_precision.alpha_precision"] > 0.85
    assert off["alpha_precision.alpha_precision"] < 0.6
    assert off["alpha_precision.beta_recall"] < ok["alpha_precision.beta_recall"]
    assert frechet_distance(real, same) < 0.1
    assert frechet_distance(real, shifted) == pytest.approx(5 * 1.5**2, rel=0.1)


def test_copied_training_data_is_caught_by_the_report():
    real, hold = people(1500, 0), people(1500, 1)
    report = evaluate(real, real.copy(), hold, metrics=["privacy"])
    assert report.scores["privacy.dcr_share"] > 0.95
    assert report.scores["privacy.mia_auc"] > 0.95
    assert report.scores["privacy.exact_copy_rate"] == 1.0

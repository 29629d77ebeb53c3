"""End to end: every section on Adult, JSON round trip, HTML in headless Chromium."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from browser import dump_dom

from evaluation import SECTIONS, EvaluationReport, evaluate
from synthgen import datasets


@pytest.fixture(scope="module")
def splits():
    df = datasets.load("adult").sample(9000, random_state=0).reset_index(drop=True)
    return (
        df.iloc[:3000],
        df.iloc[3000:6000].reset_index(drop=True),
        df.iloc[6000:].reset_index(drop=True),
    )


@pytest.fixture(scope="module")
def real_vs_real(splits):
    train, other, holdout = splits
    return evaluate(
        train,
        other,
        holdout,
        target="income",
        sensitive=["sex", "race"],
        dp={"epsilon": 4.0, "delta": 1e-5, "accountant": "rdp"},
        utility_augmentation=True,
        fid_mlp=True,
        seed=0,
    )


def test_every_section_runs_and_real_vs_real_scores_near_perfect(real_vs_real):
    s = real_vs_real.scores
    assert set(real_vs_real.meta["sections"]) == set(SECTIONS)
    for name in [
        "fidelity.column_shapes",
        "fidelity.pair_trends",
        "fidelity.overall",
        "detection.score",
        "detection.auc",
        "utility.tstr_roc_auc",
        "utility.trtr_roc_auc",
        "utility.tstr_f1",
        "utility.trtr_accuracy",
        "utility.aug_gain_roc_auc",
        "fid.tabular",
        "fid.mlp",
        "fid.kid_mean",
        "fid.precision",
        "bias.sex.share_max_diff",
        "bias.sex.dp_diff_tstr",
        "bias.race.eo_diff_trtr",
        "bias.widened_gaps",
        "privacy.dcr_share",
        "privacy.mia_auc",
        "privacy.exact_copy_rate",
        "privacy.nndr_mean",
        "alpha_precision.alpha_precision",
        "alpha_precision.beta_recall",
        "alpha_precision.authenticity",
        "dp.epsilon",
        "dp.delta",
    ]:
        assert name in s, name
    assert s["fidelity.overall"] > 0.97
    assert s["detection.auc"] < 0.6
    assert 0.4 < s["privacy.dcr_share"] < 0.6
    assert s["privacy.mia_auc"] < 0.6
    assert abs(s["utility.tstr_roc_auc"] - s["utility.trtr_roc_auc"]) < 0.03
    assert s["alpha_precision.alpha_precision"] > 0.9
    assert s["alpha_precision.beta_recall"] > 0.6
    assert s["dp.epsilon"] == 4.0 and s["dp.delta"] == 1e-5
    assert isinstance(real_vs_real.details["fidelity.column_shapes"], pd.DataFrame)
    assert {"column", "group", "share_real", "share_synthetic"} <= set(
        real_vs_real.details["bias.groups"].columns
    )


def test_worse_synthetic_data_scores_worse(splits, real_vs_real):
    train, other, holdout = splits
    rng = np.random.default_rng(0)
    bad = pd.DataFrame({c: rng.permutation(other[c].to_numpy()) for c in other.columns})
    bad["age"] = bad["age"] + 15
    report = evaluate(
        train,
        bad,
        holdout,
        target="income",
        metrics=["fidelity", "detection", "fid", "utility", "alpha_precision"],
    )
    s, good = report.scores, real_vs_real.scores
    assert s["fidelity.pair_trends"] < good["fidelity.pair_trends"] - 0.1
    assert s["detection.auc"] > 0.9
    assert s["fid.tabular"] > good["fid.tabular"] + 0.5
    assert s["utility.tstr_roc_auc"] < good["utility.tstr_roc_auc"] - 0.1
    assert s["alpha_precision.alpha_precision"] < good["alpha_precision.alpha_precision"]


def test_metrics_subset_and_seed_determinism(splits):
    train, other, holdout = splits
    a = evaluate(train, other, holdout, metrics=["fidelity", "detection"], seed=3)
    b = evaluate(train, other, holdout, metrics="fidelity,detection", seed=3)
    assert a.scores == b.scores
    assert all(k.split(".")[0] in ("fidelity", "detection") for k in a.scores)


def test_json_round_trip_is_versioned_and_strict(tmp_path, real_vs_real):
    path = tmp_path / "report.json"
    real_vs_real.to_json(path)
    data = json.loads(path.read_text())  # strict JSON: no NaN literals
    assert data["format"] == "synthgen.evaluation" and data["version"] == 1
    assert set(data) == {"format", "version", "meta", "scores", "details", "plots"}
    back = EvaluationReport.from_json(path)
    for k, v in real_vs_real.scores.items():
        assert (math.isnan(v) and math.isnan(back.scores[k])) or back.scores[k] == v
    assert list(back.details) == list(real_vs_real.details)


def test_html_is_self_contained_and_renders_without_console_errors(tmp_path, real_vs_real):
    page = real_vs_real.to_html(tmp_path / "report.html")
    assert 'id="scorecard"' in page and "<svg" in page
    for needle in ("http://", "https://", "<link", "src="):
        assert needle not in page, needle
    for section in ("distributions", "pair-heatmap", "bias-gaps", "privacy-table", "dp-table"):
        assert section in page, section
    dom = dump_dom((tmp_path / "report.html").as_uri(), tmp_path / "profile")
    assert 'data-ready="yes"' in dom  # our script ran to the end
    cards = int(dom.split('data-cards="')[1].split('"')[0])
    assert cards >= 10
    errors = re.search(r'<pre id="js-errors"[^>]*>(.*?)</pre>', dom, re.S)
    assert errors is not None and errors.group(1).strip() == ""

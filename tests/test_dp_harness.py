"""The DP harness's parts: the independent-marginals baseline and the canary scores."""

from __future__ import annotations

import numpy as np

import synthgen as sg
from benchmarks.dp import Marginals, canary_scores, make_model


def _frame():
    df = sg.datasets.load("adult").sample(600, random_state=1).reset_index(drop=True)
    return df[["age", "workclass", "sex", "hours-per-week", "income"]]


def test_independent_marginals_spend_the_whole_budget_and_keep_the_columns():
    df = _frame()
    baseline = Marginals(epsilon=2.0, delta=1e-6).fit(df)
    assert baseline.privacy_spent["epsilon"] <= 2.0
    assert baseline.privacy_spent["epsilon"] > 1.99
    syn = baseline.sample(300, seed=0)
    assert list(syn.columns) == list(df.columns) and len(syn) == 300
    assert set(syn["sex"].dropna()) <= set(df["sex"])


def test_canary_scores_use_the_likelihood_or_the_distance_of_a_dp_model():
    df = _frame()
    canaries = df.sample(8, random_state=2)
    model = make_model("tabular_ar", 3.0, 1e-6, {"tabular_ar": {"epochs": 1, "hidden_dim": 8}})
    model.fit(df)
    scores = canary_scores(model, canaries, sg.Schema.infer(df))
    assert scores.shape == (8,) and np.isfinite(scores).all()


def test_marginal_backends_and_the_tvd_columns(tmp_path):
    import json

    from benchmarks.dp import markdown_table, tvd_scores

    model = make_model("mst", 1.0, 1e-6, {})
    assert isinstance(model, sg.MST) and model.dp.epsilon == 1.0 and model.progress is False
    assert isinstance(make_model("aim", 3.0, 1e-6, {}), sg.AIM)
    df = _frame()
    syn = Marginals(epsilon=2.0, delta=1e-6).fit(df).sample(600, seed=0)
    scores = tvd_scores(df, syn)
    # every pair lies in as many triples, and a triple's TVD bounds its pairs' from above
    assert 0 < scores["tvd_2way"] <= scores["tvd_3way"] < 1
    assert tvd_scores(df, df) == {"tvd_2way": 0.0, "tvd_3way": 0.0}
    row = {
        "backend": "mst", "epsilon_target": 1.0, "spent": {"epsilon": 1.0}, "quality": 0.9,
        "pair_trends": 0.8, "tstr_roc_auc": 0.8, "trtr_roc_auc": 0.9, "mia_auc": 0.5,
        "fit_seconds": 20, **scores,
    }  # fmt: skip
    path = tmp_path / "dp.jsonl"
    path.write_text(json.dumps(row) + "\n")
    assert f"| {scores['tvd_2way']:.4f} | {scores['tvd_3way']:.4f} |" in markdown_table(path)

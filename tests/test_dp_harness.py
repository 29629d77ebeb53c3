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

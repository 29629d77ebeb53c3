"""Privacy attacks: the torch distance equals SDMetrics' DCR distance; attacks behave."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from evaluation.fidelity import sdv_metadata
from privacy.attacks import (
    balanced_references,
    dcr_overfitting,
    exact_copy_rate,
    knn_euclidean,
    membership_inference_auc,
    nearest_distances,
    nndr,
)
from synthgen import datasets
from synthgen.schema import Schema


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return datasets.load("adult").sample(frac=1, random_state=0).reset_index(drop=True)


def mixed(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "x": rng.normal(0, 1, n),
            "k": rng.integers(0, 5, n),
            "when": pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 400, n), unit="D"),
            "flag": rng.random(n) > 0.5,
            "cat": rng.choice(["a", "b", "c"], n),
            "const": 3.0,
            "row_id": np.arange(n) + seed * 10_000,
        }
    )
    df.loc[rng.choice(n, n // 10, replace=False), "x"] = np.nan
    df.loc[rng.choice(n, n // 10, replace=False), "cat"] = None
    return df


def test_distances_equal_sdmetrics_calculate_dcr():
    from sdmetrics.single_table.privacy.dcr_utils import calculate_dcr

    ref, query = mixed(300, 0), mixed(250, 1)
    query.loc[:9, "k"] = 12  # outside the reference range: exercises the clipped path
    query.loc[10:14, "const"] = 4.0  # zero-range column: any difference counts 1
    schema = Schema.infer(ref)
    assert schema["row_id"].kind == "id"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = calculate_dcr(query, ref, sdv_metadata(schema)).to_numpy()
    got64 = nearest_distances(query, ref, schema, dtype=torch.float64)[:, 0]
    np.testing.assert_allclose(got64, expected, atol=1e-12)
    got32 = nearest_distances(query, ref, schema)[:, 0]
    np.testing.assert_allclose(got32, expected, atol=1e-6)


def test_dcr_share_equals_sdmetrics_overfitting_protection(adult):
    from sdmetrics.single_table import DCROverfittingProtection

    train, hold, syn = adult.iloc[:400], adult.iloc[400:800], adult.iloc[800:1200]
    schema = Schema.infer(adult)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = DCROverfittingProtection.compute_breakdown(
            train, syn, hold, sdv_metadata(schema), None
        )
    ours = dcr_overfitting(train, syn, hold, schema, common_scale=False)
    share = ref["synthetic_data_percentages"]["closer_to_training"]
    assert ours.closer_to_training == pytest.approx(share, abs=1e-9)
    assert ours.score == pytest.approx(ref["score"], abs=1e-9)


def test_real_vs_real_is_balanced_and_copy_is_caught(adult):
    train, hold = adult.iloc[:3000], adult.iloc[3000:6000].reset_index(drop=True)
    syn = adult.iloc[6000:9000].reset_index(drop=True)
    schema = Schema.infer(adult)
    fair = dcr_overfitting(train, syn, hold, schema)
    assert 0.4 < fair.closer_to_training < 0.6
    assert 0.4 < membership_inference_auc(train, hold, syn, schema) < 0.6
    copy = train.sample(frac=1, random_state=2).reset_index(drop=True)
    leaked = dcr_overfitting(train, copy, hold, schema)
    assert leaked.closer_to_training > 0.95
    assert membership_inference_auc(train, hold, copy, schema) > 0.95
    assert exact_copy_rate(copy, train, schema) == pytest.approx(1.0)
    assert exact_copy_rate(syn, train, schema) < 0.05
    assert np.median(nndr(copy, train, schema)) == 0.0
    assert np.median(nndr(syn, train, schema)) > 0.3


def test_knn_euclidean_matches_brute_force():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 7)), rng.normal(size=(500, 7))
    d, idx = knn_euclidean(a, b, k=3)
    full = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(d, np.sort(full, axis=1)[:, :3], atol=1e-4)
    np.testing.assert_array_equal(idx[:, 0], full.argmin(1))
    d_self, idx_self = knn_euclidean(b, b, k=1, exclude_self=True)
    full_b = np.sqrt(((b[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(full_b, np.inf)
    np.testing.assert_allclose(d_self[:, 0], full_b.min(1), atol=1e-4)


def gaussian_mixture(n: int, seed: int) -> pd.DataFrame:
    """Three Gaussian clusters in two numbers plus the cluster label (no distance ties)."""
    rng = np.random.default_rng(seed)
    comp = rng.integers(0, 3, n)
    centres = np.array([[0.0, 0.0], [4.0, -2.0], [-3.0, 3.0]])
    x = centres[comp] + rng.normal(size=(n, 2))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "group": np.array(["p", "q", "r"])[comp]})


@pytest.mark.parametrize(("n_train", "n_holdout"), [(2000, 300), (300, 2000)])
def test_real_rows_as_synthetic_score_half_whatever_the_split(n_train, n_holdout):
    # With 300 reference rows the share itself varies by about 0.04 (one sd) from one
    # draw of the data to the next, so the data are a fixed draw; the unbalanced share
    # is 0.9 / 0.1 on every draw.
    pool = gaussian_mixture(2300 + 1000, seed=7)
    schema = Schema.infer(pool)
    train, hold = pool.iloc[:n_train], pool.iloc[n_train : n_train + n_holdout]
    fresh = pool.iloc[2300:]  # neither training nor holdout rows, same distribution
    fair = dcr_overfitting(train, fresh, hold, schema)
    assert abs(fair.closer_to_training - 0.5) < 0.06
    assert (fair.n_training, fair.n_holdout, fair.n_used) == (n_train, n_holdout, 300)
    # measured against the tables as given, the larger one wins most rows
    unbalanced = dcr_overfitting(train, fresh, hold, schema, balance=False)
    assert abs(unbalanced.closer_to_training - 0.5) > 0.3
    assert unbalanced.n_used is None


def test_balanced_references_are_seeded_and_equal_sizes_are_untouched():
    pool = gaussian_mixture(900, seed=1)
    big, small = pool.iloc[:600], pool.iloc[600:]
    a1, b1 = balanced_references(big, small, seed=4)
    a2, _ = balanced_references(big, small, seed=4)
    a3, _ = balanced_references(big, small, seed=5)
    assert len(a1) == len(b1) == 300 and b1 is small
    assert a1.index.equals(a2.index) and not a1.index.equals(a3.index)
    assert a1.index.is_monotonic_increasing and a1.index.isin(big.index).all()
    same, other = balanced_references(small, small.copy())
    assert same is small and len(other) == len(small)


def test_evaluate_reports_the_reference_sizes_and_a_fair_share(tmp_path):
    from evaluation import evaluate

    pool = gaussian_mixture(3300, seed=7)
    report = evaluate(
        pool.iloc[:2000], pool.iloc[2300:], holdout=pool.iloc[2000:2300], metrics=["privacy"]
    )
    assert abs(report.scores["privacy.dcr_share"] - 0.5) < 0.06
    sizes = report.details["privacy.dcr_reference"].set_index("table")
    assert sizes.loc["training"].tolist() == [2000, 300]
    assert sizes.loc["holdout"].tolist() == [300, 300]
    assert sizes.loc["synthetic"].tolist() == [1000, 1000]
    page = report.to_html(tmp_path / "r.html")
    assert 'id="privacy-dcr-reference"' in page and "<td>2000</td>" in page


def test_one_ruler_for_both_references_keeps_real_rows_at_one_half():
    """An extreme value in the holdout widens its range; scaled per table (SDMetrics),
    every distance to the holdout shrinks and fresh real rows look 'closer to holdout'."""
    rng = np.random.default_rng(3)

    def draw(n: int) -> pd.DataFrame:
        return pd.DataFrame({"a": rng.lognormal(0, 1, n), "b": rng.lognormal(0, 1, n)})

    train, hold, fresh = draw(1500), draw(1500), draw(1500)
    hold.loc[0, ["a", "b"]] = [1e4, 1e4]  # one outlier, as heavy-tailed amounts have
    schema = Schema.infer(train)
    per_table = dcr_overfitting(train, fresh, hold, schema, common_scale=False)
    one_ruler = dcr_overfitting(train, fresh, hold, schema)
    assert per_table.closer_to_training < 0.2
    assert abs(one_ruler.closer_to_training - 0.5) < 0.05

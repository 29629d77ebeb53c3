"""Fidelity equals SDMetrics 0.32's QualityReport, and behaves on easy cases."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluation.fidelity import column_shapes, fidelity, pair_trends, sdv_metadata
from synthgen.schema import Schema

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def load(name: str) -> pd.DataFrame:
    from synthgen import datasets

    if name in datasets.names():
        return datasets.load(name)
    path = SHARED / f"{name}.csv"
    if not path.exists():
        pytest.skip(f"dataset {name} not available at {path}")
    return pd.read_csv(path, skipinitialspace=True, na_values="?")


def perturbed(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Another sample of the table, with shuffled columns, noise, nulls and a new category."""
    rng = np.random.default_rng(seed)
    syn = df.sample(n, random_state=seed + 100).reset_index(drop=True)
    cols = list(syn.columns)
    for c in cols[1:4]:
        syn[c] = rng.permutation(syn[c].to_numpy())
    num = [c for c in cols if pd.api.types.is_numeric_dtype(syn[c])]
    syn[num[0]] = syn[num[0]] + rng.normal(0, syn[num[0]].std() * 0.3, n)
    syn.loc[rng.choice(n, 50, replace=False), num[1]] = np.nan
    obj = [c for c in cols if syn[c].dtype == object]
    if obj:
        syn.loc[rng.choice(n, 20, replace=False), obj[0]] = "brand-new-category"
    return syn


def sdmetrics_report(real, syn, schema):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the single-table report is marked deprecated
        from sdmetrics.reports.single_table import QualityReport

        qr = QualityReport()
        qr.generate(real, syn, sdv_metadata(schema), verbose=False)
    return qr


@pytest.mark.parametrize("name", ["adult", "credit_default"])
def test_scores_equal_sdmetrics_quality_report(name):
    df = load(name)
    real = df.sample(5000, random_state=0).reset_index(drop=True)
    syn = perturbed(df, 5000, seed=1)
    schema = Schema.infer(real)
    ours, details = fidelity(real, syn, schema)
    qr = sdmetrics_report(real, syn, schema)
    props = qr.get_properties().set_index("Property")["Score"]
    assert ours["fidelity.column_shapes"] == pytest.approx(props["Column Shapes"], abs=1e-6)
    assert ours["fidelity.pair_trends"] == pytest.approx(props["Column Pair Trends"], abs=1e-6)
    assert ours["fidelity.overall"] == pytest.approx(qr.get_score(), abs=1e-6)
    shapes = qr.get_details("Column Shapes")
    np.testing.assert_allclose(
        details["fidelity.column_shapes"]["score"], shapes["Score"], atol=1e-6
    )
    pairs = qr.get_details("Column Pair Trends")
    mine = details["fidelity.pair_trends"]
    assert list(mine["column_1"]) == list(pairs["Column 1"])
    np.testing.assert_allclose(
        mine["score"].to_numpy(float), pairs["Score"].to_numpy(float), atol=1e-6, equal_nan=True
    )
    np.testing.assert_array_equal(
        mine["meets_threshold"].to_numpy(bool),
        pairs["Meets Threshold?"].fillna(False).to_numpy(bool),
    )


def test_mixed_kinds_with_nulls_datetimes_and_booleans_equal_sdmetrics():
    rng = np.random.default_rng(0)
    n = 800

    def frame(shift: float) -> pd.DataFrame:
        x = rng.normal(shift, 1, n)
        df = pd.DataFrame(
            {
                "x": x,
                "y": 2 * x + rng.normal(0, 0.5, n),
                "when": pd.Timestamp("2020-01-01")
                + pd.to_timedelta((x * 30 + rng.normal(0, 5, n)).astype(int), unit="D"),
                "flag": x + rng.normal(0, 0.3, n) > shift,
                "cat": np.where(x > 0.5, "hi", np.where(x < -0.5, "lo", "mid")),
                "const": 1.0,
            }
        )
        df.loc[rng.choice(n, 40, replace=False), "y"] = np.nan
        df.loc[rng.choice(n, 30, replace=False), "when"] = pd.NaT
        df.loc[rng.choice(n, 25, replace=False), "cat"] = None
        return df

    real, syn = frame(0.0), frame(0.3)
    schema = Schema.infer(real)
    ours, details = fidelity(real, syn, schema)
    qr = sdmetrics_report(real, syn, schema)
    assert ours["fidelity.overall"] == pytest.approx(qr.get_score(), abs=1e-6)
    props = qr.get_properties().set_index("Property")["Score"]
    assert ours["fidelity.pair_trends"] == pytest.approx(props["Column Pair Trends"], abs=1e-6)


def test_real_vs_real_is_near_perfect():
    df = load("adult").sample(frac=1, random_state=3).reset_index(drop=True)
    a, b = df.iloc[:8000], df.iloc[8000:16000].reset_index(drop=True)
    scores, _ = fidelity(a, b, Schema.infer(a))
    assert scores["fidelity.column_shapes"] > 0.97
    assert scores["fidelity.pair_trends"] > 0.97
    assert scores["fidelity.overall"] > 0.97


def test_column_shuffled_table_loses_pair_trends_but_not_shapes():
    df = load("adult").sample(8000, random_state=4).reset_index(drop=True)
    rng = np.random.default_rng(0)
    shuffled = pd.DataFrame({c: rng.permutation(df[c].to_numpy()) for c in df.columns})
    schema = Schema.infer(df)
    same, _ = fidelity(df, df.sample(frac=1, random_state=1).reset_index(drop=True), schema)
    broken, _ = fidelity(df, shuffled, schema)
    assert broken["fidelity.column_shapes"] == pytest.approx(1.0)
    assert broken["fidelity.pair_trends"] < same["fidelity.pair_trends"] - 0.15


def test_id_columns_are_skipped():
    real = pd.DataFrame(
        {"user_id": np.arange(300), "v": np.arange(300) % 7, "c": list("abc") * 100}
    )
    schema = Schema.infer(real)
    assert schema["user_id"].kind == "id"
    assert "user_id" not in set(column_shapes(real, real, schema)["column"])
    pairs = pair_trends(real, real, schema)
    assert "user_id" not in set(pairs["column_1"]) | set(pairs["column_2"])


def test_single_column_metrics_equal_sdmetrics():
    from sdmetrics.single_column import KSComplement, TVComplement

    from evaluation.fidelity import ks_complement, tv_complement

    rng = np.random.default_rng(5)
    a = pd.Series(rng.normal(0, 1, 700)).where(rng.random(700) > 0.05)
    b = pd.Series(rng.normal(0.2, 1.1, 500))
    assert ks_complement(a.to_numpy(), b.to_numpy()) == pytest.approx(
        KSComplement.compute(a, b), abs=1e-12
    )
    c = pd.Series(rng.choice(["x", "y", "z", None], 600))
    d = pd.Series(rng.choice(["x", "y", "new"], 400))
    assert tv_complement(c, d) == pytest.approx(TVComplement.compute(c, d), abs=1e-12)

"""Augmentation by conditional sampling, from Python and from the CLI."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

import synthgen as sg
from pipelines.cli import app
from synthgen.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def model(adult_small):
    return sg.CTGAN(epochs=1, batch_size=200, seed=0, device="cpu").fit(adult_small)


def test_balance_tops_up_the_minority(model, adult_small):
    out = sg.augment(adult_small, model, target="income", strategy="balance", seed=0)
    counts = out["income"].value_counts()
    assert counts[">50K"] == counts["<=50K"] == (adult_small["income"] == "<=50K").sum()
    assert out["is_synthetic"].sum() == len(out) - len(adult_small)
    pd.testing.assert_frame_equal(
        out.iloc[: len(adult_small)].drop(columns="is_synthetic"), adult_small
    )
    assert out.drop(columns="is_synthetic").dtypes.equals(adult_small.dtypes)


def test_exact_class_totals(model, adult_small):
    real = adult_small["income"].value_counts()
    asked = {">50K": int(real[">50K"]) + 321, "<=50K": int(real["<=50K"]) + 5}
    out = sg.augment(adult_small, model, target="income", strategy=asked, indicator=None)
    assert out["income"].value_counts().to_dict() == asked
    assert "is_synthetic" not in out


def test_ratio_and_tvae_rejection(adult_small):
    tvae = sg.TVAE(epochs=1, batch_size=200, device="cpu").fit(adult_small)
    out = sg.augment(adult_small, tvae, target="income", ratio=0.5, seed=1)
    majority = (adult_small["income"] == "<=50K").sum()
    assert (out["income"] == ">50K").sum() == round(majority * 0.5)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"target": "salary"}, DataError, "'salary'"),
        ({"target": "age"}, ConfigError, "categorical target"),
        ({"target": "income", "strategy": {"rich": 10}}, ConfigError, "'rich'"),
        ({"target": "income", "strategy": {">50K": 1}}, ConfigError, "never dropped"),
        ({"target": "income", "strategy": "oversample"}, ConfigError, "'oversample'"),
        ({"target": "income", "ratio": 2.0}, ConfigError, "ratio"),
    ],
)
def test_bad_requests(model, adult_small, kwargs, error, match):
    with pytest.raises(error, match=match):
        sg.augment(adult_small, model, **kwargs)


def test_cli_augment(model, adult_small, tmp_path):
    data = tmp_path / "train.csv"
    adult_small.to_csv(data, index=False)
    path = tmp_path / "m.synth"
    model.save(str(path))
    out = tmp_path / "aug.parquet"
    runner = CliRunner()
    args = ["augment", str(data), "--model", str(path), "--target", "income", "--out", str(out)]
    result = runner.invoke(app, [*args, "--balance"])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert frame["income"].value_counts().nunique() == 1 and frame["is_synthetic"].any()
    result = runner.invoke(app, [*args, "--counts", ">50K=600,<=50K=1600"])
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(out)["income"].value_counts().to_dict() == {"<=50K": 1600, ">50K": 600}
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "exactly one of --balance or --counts" in result.output

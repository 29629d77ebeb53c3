"""Bad input is rejected at the boundary with a SynthgenError that names the problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation import evaluate
from synthgen.errors import ConfigError, DataError, SchemaError, SynthgenError


@pytest.fixture()
def frames():
    rng = np.random.default_rng(0)
    n = 200
    df = pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "sex": rng.choice(["F", "M"], n),
            "y": rng.choice(["no", "yes"], n),
        }
    )
    return df, df.sample(frac=1, random_state=1).reset_index(drop=True)


def test_mismatched_columns_name_the_columns(frames):
    real, syn = frames
    with pytest.raises(SchemaError, match="missing column.*'sex'"):
        evaluate(real, syn.drop(columns="sex"), metrics=["fidelity"])
    with pytest.raises(SchemaError, match="unexpected column.*'extra'"):
        evaluate(real, syn.assign(extra=1), metrics=["fidelity"])
    with pytest.raises(SchemaError, match="holdout"):
        evaluate(real, syn, holdout=syn.drop(columns="y"), metrics=["fidelity"])


def test_empty_frames(frames):
    real, syn = frames
    with pytest.raises(DataError, match="synthetic has no rows"):
        evaluate(real, syn.iloc[:0])
    with pytest.raises(DataError, match="real has no rows"):
        evaluate(real.iloc[:0], syn)
    with pytest.raises(DataError, match="real has no columns"):
        evaluate(pd.DataFrame(), syn)
    with pytest.raises(DataError, match="DataFrame"):
        evaluate(real, [1, 2, 3])


def test_unknown_target_sensitive_and_section(frames):
    real, syn = frames
    with pytest.raises(ConfigError, match="target column 'income'"):
        evaluate(real, syn, target="income")
    with pytest.raises(ConfigError, match="sensitive column 'race'"):
        evaluate(real, syn, sensitive="sex,race")
    with pytest.raises(ConfigError, match="unknown metric section.*'speed'"):
        evaluate(real, syn, metrics=["fidelity", "speed"])
    with pytest.raises(ConfigError, match="dp"):
        evaluate(real, syn, metrics=["fidelity"], dp=3.0)


def test_wrong_value_types_name_column_and_value(frames):
    real, syn = frames
    syn = syn.astype({"age": object})
    syn.loc[3, "age"] = "old"
    with pytest.raises(DataError, match="'age'.*'old'"):
        evaluate(real, syn, metrics=["fidelity"])


def test_errors_are_synthgen_errors_and_sections_without_inputs_are_skipped(frames):
    real, syn = frames
    assert issubclass(ConfigError, SynthgenError)
    report = evaluate(real, syn, metrics=["utility", "bias", "fidelity"])
    assert set(report.meta["skipped"]) == {"utility", "bias"}
    assert "fidelity.overall" in report.scores


def test_tiny_tables_skip_model_sections_instead_of_failing():
    real = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0], "c": list("ababa")})
    report = evaluate(real, real.iloc[::-1], holdout=real, target="c", sensitive="c")
    assert {"detection", "alpha_precision", "utility", "fid"} <= set(report.meta["skipped"])
    assert report.scores["fidelity.overall"] == pytest.approx(1.0)
    assert "privacy.dcr_share" in report.scores

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


# ------------------------------------------------------------ odd frames found by fuzzing
def _odd_frames() -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """(real, synthetic) pairs that once ended in a raw traceback."""
    rng = np.random.default_rng(3)
    n = 120
    base = pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(["a", "b"], n)})
    with_na = base.assign(i=pd.array([1, None, 3] * 40, dtype="Int64"))
    single = pd.DataFrame({"x": rng.normal(size=n)})
    const_time = base.assign(t=pd.Timestamp("2021-06-01"))
    tz = base.assign(t=pd.date_range("2021-01-01", periods=n, freq="h", tz="Europe/Berlin"))
    return {
        "Int64 column holding NA": (with_na, with_na.copy()),
        "single numerical column": (single, single.sample(frac=1, random_state=0)),
        "constant datetime column": (const_time, const_time.copy()),
        "one synthetic row": (base, base.iloc[:1]),
        "nullable boolean and string": (
            base.assign(
                b=pd.array([True, None, False] * 40, dtype="boolean"),
                s=pd.array(["u", None, "v"] * 40, dtype="string"),
            ),
            base.assign(
                b=pd.array([False, True, None] * 40, dtype="boolean"),
                s=pd.array(["v", "u", None] * 40, dtype="string"),
            ),
        ),
        "all-null columns": (
            base.assign(z=np.nan, o=None),
            base.assign(z=np.nan, o=None),
        ),
        "all-null synthetic column": (base, base.assign(x=np.nan)),
        "categorical dtype": (base.astype({"c": "category"}), base.copy()),
        "tz-aware datetimes": (tz, tz.assign(t=tz["t"].dt.tz_convert("Asia/Tokyo"))),
        "class only the synthetic table has": (base, base.assign(c=rng.choice(["a", "z"], n))),
    }


@pytest.mark.parametrize("case", list(_odd_frames()))
def test_odd_frames_give_a_report(case, tmp_path):
    real, syn = _odd_frames()[case]
    target = "c" if "c" in real else None
    report = evaluate(real, syn, holdout=real, target=target, sensitive=target)
    assert 0.0 <= report.scores["fidelity.overall"] <= 1.0
    assert "privacy.dcr_share" in report.scores
    if len(syn) >= 20:  # every section that has its inputs ran
        assert report.scores["fid.tabular"] >= 0.0
        assert 0.0 <= report.scores["detection.score"] <= 1.0
        assert set(report.meta["skipped"]) <= {"utility", "bias"}
    else:  # too few rows: the model sections are skipped, and the report says why
        assert "20 real and synthetic rows" in report.meta["skipped"]["fid"]
    page = report.to_html(tmp_path / "r.html")
    assert "Privacy risk" in page and (tmp_path / "r.html").exists()


def test_identical_frame_with_int64_na_scores_perfect_fidelity():
    df = pd.DataFrame({"i": pd.array([1, None, 3, 4] * 30, dtype="Int64"), "c": list("abcd") * 30})
    report = evaluate(df, df.copy(), metrics=["fidelity"])
    assert report.scores["fidelity.column_shapes"] == pytest.approx(1.0)


def test_one_synthetic_row_skips_model_sections_with_the_reason():
    real = pd.DataFrame({"x": np.arange(50.0), "c": ["a", "b"] * 25})
    report = evaluate(real, real.iloc[:1], holdout=real, target="c")
    assert (
        report.meta["skipped"]["utility"]
        == "needs at least 20 real and synthetic rows (got 50 and 1)"
    )
    assert "fidelity.overall" in report.scores and "privacy.dcr_share" in report.scores


@pytest.mark.parametrize(
    ("where", "match"),
    [
        ("synthetic", r"column 'x' of synthetic holds 1 infinite value.*replace them with NaN"),
        ("holdout", r"column 'x' of holdout holds 1 infinite value"),
    ],
)
def test_infinite_values_are_refused_naming_the_column(where, match):
    real = pd.DataFrame({"x": np.arange(40.0), "c": ["a", "b"] * 20})
    bad = real.copy()
    bad.loc[5, "x"] = np.inf
    frames = {"synthetic": real, "holdout": real}
    frames[where] = bad
    with pytest.raises(DataError, match=match):
        evaluate(real, frames["synthetic"], holdout=frames["holdout"])


def test_naive_synthetic_datetimes_against_aware_real_ones_are_refused():
    real = pd.DataFrame({"t": pd.date_range("2021", periods=40, freq="D", tz="UTC")})
    syn = real.assign(t=real["t"].dt.tz_localize(None))
    with pytest.raises(DataError, match=r"column 't' of synthetic is time-zone naive.*tz_localize"):
        evaluate(real, syn, metrics=["fidelity"])


def test_only_id_columns_are_refused():
    ids = pd.DataFrame({"user": [f"u{i:03d}" for i in range(150)]})
    with pytest.raises(SchemaError, match="every column of real is an id column"):
        evaluate(ids, ids.copy())


@pytest.mark.parametrize("writer", ["to_html", "to_json"])
@pytest.mark.parametrize("where", ["missing folder", "a directory", "under a file"])
def test_report_writers_refuse_bad_paths_before_writing(writer, where, tmp_path):
    real = pd.DataFrame({"x": np.arange(30.0)})
    report = evaluate(real, real.copy(), metrics=["fidelity"])
    (tmp_path / "file.txt").write_text("x")
    path = {
        "missing folder": tmp_path / "nodir" / "r.html",
        "a directory": tmp_path,
        "under a file": tmp_path / "file.txt" / "r.html",
    }[where]
    expected = {
        "missing folder": "does not exist; create it first",
        "a directory": "is a directory",
        "under a file": "is a file, not a folder",
    }[where]
    with pytest.raises(SynthgenError, match=expected):
        getattr(report, writer)(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]

"""The great-expectations gate: a derived suite passes the real table and catches each
kind of drift in an export, naming the column and the values; suites round-trip as
JSON files, hand edits are honoured, bad files and inputs fail with the fix; the
``synthgen validate`` command exits 0 / 1 / 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from pipelines import validate_cmd
from pipelines.validation import (
    ValidationResult,
    derive_suite,
    load_suite,
    save_suite,
    validate,
)
from synthgen import datasets
from synthgen.errors import ConfigError, DataError, SchemaError
from synthgen.schema import Schema


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    """One column of each kind; ``score`` and ``city`` have nulls."""
    rng = np.random.default_rng(0)
    n = 200
    score = rng.normal(size=n)
    score[rng.random(n) < 0.1] = np.nan
    city = rng.choice(np.array(["north", "south", "east"], dtype=object), n)
    city[:15] = None
    return pd.DataFrame(
        {
            "user_id": np.arange(1000, 1000 + n),
            "age": rng.integers(18, 90, n),
            "score": score,
            "city": city,
            "member": rng.random(n) < 0.5,
            "joined": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 10**7, n), "s"),
        }
    )


@pytest.fixture(scope="module")
def small_suite(small: pd.DataFrame) -> dict:
    return derive_suite(small)


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return datasets.load("adult").head(2000)


@pytest.fixture(scope="module")
def adult_suite(adult: pd.DataFrame) -> dict:
    return derive_suite(adult, rows=len(adult))


def failures_of(result: ValidationResult, expectation: str, column: str | None):
    return [f for f in result.failures if f.expectation == expectation and f.column == column]


def one_failure(result: ValidationResult, expectation: str, column: str | None):
    assert not result.success
    found = failures_of(result, expectation, column)
    assert len(found) == 1, result.summary()
    return found[0]


# --------------------------------------------------------------------------- deriving
def test_suite_passes_on_the_real_table_and_a_resample(small, small_suite):
    assert validate(small, small_suite).success
    resample = small.sample(len(small), replace=True, random_state=1).reset_index(drop=True)
    resample["user_id"] = np.arange(len(resample)) + 5000  # ids are minted anew, unique
    result = validate(resample, small_suite)
    assert result.success, result.summary()
    assert result.summary() == f"all {len(small_suite['expectations'])} expectations passed"


def test_adult_suite_passes_on_adult_and_a_resample(adult, adult_suite):
    assert validate(adult, adult_suite).success
    resample = adult.sample(len(adult), replace=True, random_state=3).reset_index(drop=True)
    assert validate(resample, adult_suite).success


def test_suite_content(small, small_suite):
    by_key = {
        (e["type"], e["kwargs"].get("column")): e["kwargs"] for e in small_suite["expectations"]
    }
    assert by_key[("expect_table_columns_to_match_ordered_list", None)]["column_list"] == list(
        small.columns
    )
    ints = by_key[("expect_column_values_to_be_in_type_list", "age")]["type_list"]
    assert {"int64", "Int64Dtype", "int32"} <= set(ints) and "float64" not in ints
    assert (
        "datetime64[ns]"
        in by_key[("expect_column_values_to_be_in_type_list", "joined")]["type_list"]
    )
    age = by_key[("expect_column_values_to_be_between", "age")]
    assert (age["min_value"], age["max_value"]) == (small["age"].min(), small["age"].max())
    joined = by_key[("expect_column_values_to_be_between", "joined")]
    assert pd.Timestamp(joined["min_value"]) == small["joined"].min()
    assert sorted(by_key[("expect_column_values_to_be_in_set", "city")]["value_set"]) == [
        "east",
        "north",
        "south",
    ]
    assert by_key[("expect_column_values_to_be_in_set", "member")]["value_set"] == [False, True]
    assert ("expect_column_values_to_be_unique", "user_id") in by_key
    assert ("expect_column_values_to_be_unique", "age") not in by_key
    # never null in the real data -> never null; nullable -> real share + tolerance
    assert by_key[("expect_column_values_to_not_be_null", "age")].get("mostly", 1.0) == 1.0
    city_nulls = small["city"].isna().mean()
    mostly = by_key[("expect_column_values_to_not_be_null", "city")]["mostly"]
    assert mostly == pytest.approx(1 - (city_nulls + 0.05), abs=1e-6)
    assert small_suite["meta"]["derived_by"] == "synthgen"
    assert small_suite["meta"]["real_rows"] == len(small)
    assert small_suite["meta"]["null_tolerance"] == 0.05
    json.dumps(small_suite, allow_nan=False)


def test_schema_bounds_win_over_the_real_ones(small):
    schema = Schema.infer(small)
    schema["age"].min, schema["age"].max = 0, 150
    suite = derive_suite(small, schema)
    (age,) = [
        e["kwargs"]
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_be_between" and e["kwargs"]["column"] == "age"
    ]
    assert (age["min_value"], age["max_value"]) == (0, 150)


# --------------------------------------------------------------------------- failures
def test_out_of_bounds_values_are_named(adult, adult_suite):
    syn = adult.copy()
    syn.loc[[0, 1, 2], "age"] = [-5, 120, 130]
    failure = one_failure(validate(syn, adult_suite), "expect_column_values_to_be_between", "age")
    assert failure.message.startswith("column 'age': 3 of 2000 values")
    assert "outside [17, 90]: -5, 120, 130" in failure.message
    assert failure.unexpected == [-5, 120, 130]


def test_unseen_category_is_named_with_its_count(adult, adult_suite):
    syn = adult.copy()
    syn.loc[10:21, "workclass"] = "Martian"
    result = validate(syn, adult_suite)
    failure = one_failure(result, "expect_column_values_to_be_in_set", "workclass")
    assert "column 'workclass': unexpected categories 'Martian' (12 rows)" in failure.message
    assert failure.unexpected == ["Martian"]
    assert len(result.failures) == 1


def test_missing_column(adult, adult_suite):
    result = validate(adult.drop(columns=["fnlwgt"]), adult_suite)
    failure = one_failure(result, "expect_table_columns_to_match_ordered_list", None)
    assert "missing 'fnlwgt'" in failure.message
    assert failure.unexpected == ["fnlwgt"]
    assert {f.column for f in result.failures} == {None, "fnlwgt"}
    assert all("column 'fnlwgt' is missing" in f.message for f in result.failures if f.column)


def test_reordered_columns(adult, adult_suite):
    columns = list(adult.columns)
    columns[0], columns[1] = columns[1], columns[0]
    result = validate(adult[columns], adult_suite)
    failure = one_failure(result, "expect_table_columns_to_match_ordered_list", None)
    assert "misplaced 'age' (expected position 1, found 2)" in failure.message
    assert "'workclass' (expected position 2, found 1)" in failure.message
    assert len(result.failures) == 1


def test_extra_column(small, small_suite):
    failure = one_failure(
        validate(small.assign(extra=1), small_suite),
        "expect_table_columns_to_match_ordered_list",
        None,
    )
    assert "extra 'extra'" in failure.message


def test_nulls_in_a_never_null_column(small, small_suite):
    syn = small.copy()
    syn["age"] = syn["age"].astype("Int64")
    syn.loc[:59, "age"] = pd.NA
    failure = one_failure(validate(syn, small_suite), "expect_column_values_to_not_be_null", "age")
    assert failure.message == (
        "column 'age': 60 of 200 values (30.0%) are null; it must never be null"
    )


def test_null_share_tolerance(small, small_suite):
    real_share = small["score"].isna().mean()
    within = small.assign(score=small["score"].fillna(0.0))
    nulls = int((real_share + 0.03) * len(small))  # real share + 3 points: tolerated
    within.loc[: nulls - 1, "score"] = np.nan
    assert validate(within, small_suite).success
    beyond = within.copy()
    beyond.loc[:99, "score"] = np.nan  # 50% null, the real share is ~10%
    failure = one_failure(
        validate(beyond, small_suite), "expect_column_values_to_not_be_null", "score"
    )
    assert "column 'score': 100 of 200 values (50.0%) are null; at most" in failure.message


def test_duplicated_ids(small, small_suite):
    syn = small.copy()
    syn.loc[[1, 2], "user_id"] = syn.loc[0, "user_id"]
    failure = one_failure(
        validate(syn, small_suite), "expect_column_values_to_be_unique", "user_id"
    )
    assert "column 'user_id': 3 of 200 values" in failure.message
    assert "1000 (3 rows)" in failure.message
    assert failure.unexpected == [1000]


def test_wrong_row_count(adult, adult_suite):
    failure = one_failure(
        validate(adult.head(1500), adult_suite), "expect_table_row_count_to_equal", None
    )
    assert failure.message == "table has 1500 rows, expected exactly 2000"


def test_text_in_a_numeric_column(small, small_suite):
    syn = small.copy()
    syn["age"] = syn["age"].astype(object)
    syn.loc[[3, 4], "age"] = "abc"
    result = validate(syn, small_suite)
    failure = one_failure(result, "expect_column_values_to_be_in_type_list", "age")
    assert failure.message.startswith("column 'age': dtype object: 2 of 200 values")
    assert "not of an integer dtype: 'abc' (2 rows)" in failure.message
    # the bounds check cannot compare text with numbers: reported, not raised
    between = one_failure(result, "expect_column_values_to_be_between", "age")
    assert "could not run" in between.message


def test_float_dtype_for_an_integer_column(small, small_suite):
    failure = one_failure(
        validate(small.assign(age=small["age"].astype("float64")), small_suite),
        "expect_column_values_to_be_in_type_list",
        "age",
    )
    assert failure.message.startswith("column 'age': dtype float64 is not an integer dtype")


def test_datetime_out_of_bounds(small, small_suite):
    syn = small.copy()
    syn.loc[0, "joined"] = pd.Timestamp("1999-12-31")
    failure = one_failure(
        validate(syn, small_suite), "expect_column_values_to_be_between", "joined"
    )
    assert "column 'joined': 1 of 200 values" in failure.message
    assert "1999-12-31T00:00:00" in failure.message


# --------------------------------------------------------------------------- dtypes
def test_nullable_and_extension_dtypes_pass_the_same_suite(small, small_suite):
    """int64 vs Int64, bool vs boolean, object vs string / category: one family each."""
    syn = small.copy()
    syn["user_id"] = syn["user_id"].astype("Int64")
    syn["age"] = syn["age"].astype("int32")
    syn["score"] = syn["score"].astype("Float64")
    syn["city"] = syn["city"].astype("category")
    syn["member"] = syn["member"].astype("boolean")
    syn["joined"] = syn["joined"].astype("datetime64[us]")
    result = validate(syn, small_suite)
    assert result.success, result.summary()
    assert syn["city"].dtype == "category"  # the caller's frame is left as it was
    syn["city"] = small["city"].astype("string")
    assert validate(syn, small_suite).success


def test_tz_aware_datetimes_are_checked_in_utc():
    when = pd.date_range("2021-03-01", periods=50, freq="h", tz="Europe/Paris")
    real = pd.DataFrame({"when": when, "n": range(50)})
    suite = derive_suite(real)
    assert validate(real, suite).success
    later = real.assign(when=when + pd.Timedelta(days=30))
    failure = one_failure(validate(later, suite), "expect_column_values_to_be_between", "when")
    assert "outside [2021-02-28T23:00:00, 2021-03-03T00:00:00]" in failure.message


def test_nulls_of_every_flavour_do_not_crash_and_result_is_json(small_suite, small):
    syn = small.copy()
    syn["score"] = syn["score"].astype(object)
    syn.loc[0, "score"] = None
    syn.loc[1, "score"] = pd.NA
    syn.loc[2, "score"] = np.inf
    syn["city"] = syn["city"].astype("string")
    syn.loc[3, "city"] = pd.NA
    syn.loc[4, "joined"] = pd.NaT
    syn["member"] = syn["member"].astype("boolean")
    syn.loc[5, "member"] = pd.NA
    result = validate(syn, small_suite)
    assert not result.success
    text = json.dumps(result.to_dict(), allow_nan=False)  # strict JSON: no NaN / Infinity
    assert json.loads(text)["result"]["statistics"] == result.statistics
    columns = {f.column for f in result.failures}
    assert "joined" in columns and "member" in columns  # NaT / NA in never-null columns
    assert len(result.summary().splitlines()) == len(result.failures)


# --------------------------------------------------------------------------- editing
def _find(suite: dict, kind: str, column: str | None) -> dict:
    (entry,) = [
        e
        for e in suite["expectations"]
        if e["type"] == kind and e["kwargs"].get("column") == column
    ]
    return entry


def test_edited_suite_file_is_used_as_edited(tmp_path, adult, adult_suite):
    syn = adult.copy()
    syn.loc[[0, 1], "age"] = [-5, 120]
    syn.loc[2:4, "workclass"] = "Martian"
    path = save_suite(adult_suite, tmp_path / "suite.json")
    assert len(validate(syn, load_suite(path)).failures) == 2

    edited = json.loads(path.read_text())
    _find(edited, "expect_column_values_to_be_between", "age")["kwargs"].update(
        min_value=-10, max_value=200
    )  # loosened bound
    edited["expectations"].remove(
        _find(edited, "expect_column_values_to_be_in_set", "workclass")
    )  # removed check
    edited["expectations"].append(  # added check
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "hours-per-week", "min_value": 0, "max_value": 40},
        }
    )
    path.write_text(json.dumps(edited))
    result = validate(syn, load_suite(path))
    assert [(f.expectation, f.column) for f in result.failures] == [
        ("expect_column_values_to_be_between", "hours-per-week")
    ]
    assert "outside [0, 40]" in result.failures[0].message


def test_date_only_bound_edit_works(small, small_suite):
    suite = json.loads(json.dumps(small_suite))
    _find(suite, "expect_column_values_to_be_between", "joined")["kwargs"].update(
        min_value="2020-01-01", max_value="2020-02-01"
    )
    failure = one_failure(validate(small, suite), "expect_column_values_to_be_between", "joined")
    assert "outside [2020-01-01T00:00:00, 2020-02-01T00:00:00]" in failure.message


def test_other_expectation_types_are_reported(small, small_suite):
    suite = json.loads(json.dumps(small_suite))
    suite["expectations"].append(
        {
            "type": "expect_column_mean_to_be_between",
            "kwargs": {"column": "age", "min_value": 0, "max_value": 1},
        }
    )
    failure = one_failure(validate(small, suite), "expect_column_mean_to_be_between", "age")
    assert failure.message.startswith("column 'age': expect_column_mean_to_be_between failed")
    assert f"{small['age'].mean():g}" in failure.message


def test_save_load_round_trip(tmp_path, small_suite):
    path = save_suite(small_suite, tmp_path / "s.json")
    assert load_suite(path) == small_suite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]  # no temp file left
    with pytest.raises(ConfigError, match="does not exist; create it first"):
        save_suite(small_suite, tmp_path / "nodir" / "s.json")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "is not an expectation suite"),
        ('{"name": "x"}', "is not an expectation suite"),
        (
            '{"name": "x", "expectations": [{"type": "expect_martian", "kwargs": {}}]}',
            "unknown expectation type 'expect_martian'",
        ),
        (
            '{"name": "x", "expectations": [{"type": "expect_column_values_to_be_between",'
            ' "kwargs": {"column": "a", "min_value": 0, "max_vale": 3}}]}',
            "column 'a'\\) is invalid: max_vale: extra fields not permitted",
        ),
        ('{"name": "x", "expectations": [5]}', "expectation 1 must be an object"),
    ],
)
def test_malformed_suite_files(tmp_path, text, reason):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=reason) as info:
        load_suite(path)
    assert str(path) in str(info.value)


def test_missing_suite_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.json' does not exist"):
        load_suite(tmp_path / "nope.json")


# --------------------------------------------------------------------------- bad inputs
def test_bad_inputs(small, small_suite):
    with pytest.raises(DataError, match="must be a pandas DataFrame, got list"):
        validate([1, 2], small_suite)
    with pytest.raises(DataError, match="has no rows"):
        validate(small.head(0), small_suite)
    with pytest.raises(DataError, match="has no columns"):
        validate(pd.DataFrame(), small_suite)
    with pytest.raises(DataError, match="the real table must be a pandas DataFrame"):
        derive_suite("train.csv")
    with pytest.raises(ConfigError, match="null_tolerance=2 must be a number in"):
        derive_suite(small, null_tolerance=2)
    with pytest.raises(ConfigError, match="rows=-1"):
        derive_suite(small, rows=-1)
    with pytest.raises(SchemaError, match=r"columns \['age'\] are not in the schema"):
        derive_suite(small, Schema.infer(small.drop(columns=["age"])))
    with pytest.raises(ConfigError, match="the suite is not an expectation suite"):
        validate(small, {"expectations": "all"})


def test_import_is_cheap():
    code = "import sys, pipelines.validation; print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    validate_cmd.register(app)

    @app.command("noop")
    def noop() -> None:  # a second command keeps typer in multi-command mode
        """Nothing."""

    return app


@pytest.fixture(scope="module")
def files(tmp_path_factory, adult):
    d = tmp_path_factory.mktemp("validate")
    adult.head(500).to_csv(d / "train.csv", index=False)
    real = pd.read_csv(d / "train.csv")
    real.sample(400, replace=True, random_state=0).to_parquet(d / "good.parquet", index=False)
    bad = real.copy()
    bad.loc[0, "age"] = 130
    bad.to_parquet(d / "bad.parquet", index=False)
    return d


def test_cli_pass_fail_and_json(app, files):
    runner = CliRunner()
    good = runner.invoke(
        app, ["validate", "--real", str(files / "train.csv"), str(files / "good.parquet")]
    )
    assert good.exit_code == 0, good.output
    assert "validation PASSED" in good.stdout

    bad = runner.invoke(
        app, ["validate", "--real", str(files / "train.csv"), str(files / "bad.parquet"), "--json"]
    )
    assert bad.exit_code == 1, bad.output
    doc = json.loads(bad.stdout)
    assert doc["success"] is False
    assert set(doc) == {"success", "failures", "statistics"}
    assert doc["statistics"]["unsuccessful_expectations"] == 1
    (failure,) = doc["failures"]
    assert failure["column"] == "age" and failure["unexpected"] == [130]
    assert "column 'age': 1 of 500 values" in failure["message"]


def test_cli_saved_suite_rows_and_out(app, files):
    runner = CliRunner()
    suite, out = files / "suite.json", files / "result.json"
    args = ["validate", "--real", str(files / "train.csv"), str(files / "good.parquet")]
    res = runner.invoke(app, [*args, "--rows-from-data", "--save-suite", str(suite)])
    assert res.exit_code == 1  # 400 rows, the real table has 500
    assert "table has 400 rows, expected exactly 500" in res.stdout
    res = runner.invoke(
        app, ["validate", "--suite", str(suite), str(files / "train.csv"), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    written = json.loads(out.read_text())
    assert written["success"] is True and written["result"]["statistics"] == written["statistics"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{data}"], "give exactly one of --real"),
        (["--real", "{train}", "--suite", "{train}", "{data}"], "give exactly one of --real"),
        (["--suite", "{train}", "--rows", "5", "{data}"], "--rows only apply with --real"),
        (["--real", "{dir}/missing.csv", "{data}"], "missing.csv' does not exist"),
        (["--suite", "{dir}/broken.json", "{data}"], "broken.json' is not valid JSON"),
        (["--real", "{train}", "{data}", "--out", "{dir}/nodir/r.json"], "does not exist"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(app, files, args, message):
    (files / "broken.json").write_text("{oops")
    fill = {"data": files / "good.parquet", "train": files / "train.csv", "dir": files}
    res = CliRunner().invoke(app, ["validate", *(a.format(**fill) for a in args)])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]

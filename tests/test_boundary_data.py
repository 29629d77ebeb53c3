"""Regressions of the data-side boundary (issue 11, item 7): each bad input found by the
fuzz either works end to end or is refused with a SynthgenError naming the column / value
and the fix; each silently wrong output is now right."""

from __future__ import annotations

import datetime
import decimal

import numpy as np
import pandas as pd
import pytest

import synthgen as sg
from synthgen import ColumnSpec, Schema
from synthgen.backends.conditions import ConditionSampler
from synthgen.errors import ConditionError, ConfigError, DataError, SchemaError
from synthgen.transforms import TableTransformer
from synthgen.transforms.columns import NumericalEncoder
from synthgen.transforms.quantile import QuantileTableTransformer
from synthgen.transforms.tokens import TokenTransformer


def _tvae(**kwargs) -> sg.TVAE:
    return sg.TVAE(epochs=1, batch_size=64, seed=0, device="cpu", progress=False, **kwargs)


# ------------------------------------------------------------------ decimals and rounding
def test_inferred_decimals_never_round_away_small_values():
    tiny = pd.DataFrame({"p": np.linspace(1e-12, 1e-10, 200)})
    assert Schema.infer(tiny)["p"].decimals is None
    amounts = pd.DataFrame({"a": np.random.default_rng(0).lognormal(0, 4, 500)})
    assert Schema.infer(amounts)["a"].decimals is None
    money = pd.DataFrame({"m": np.round(np.random.default_rng(1).lognormal(3, 1, 500), 2)})
    assert Schema.infer(money)["m"].decimals == 2


def test_tiny_values_are_not_sampled_as_zero():
    frame = pd.DataFrame({"p": np.linspace(1e-12, 1e-10, 200)})
    out = _tvae().fit(frame).sample(200, seed=0)["p"]
    assert (out > 0).all()
    assert out.between(1e-12, 1e-10).all()
    # the mixture is fitted at the column's own scale: samples spread over the range
    assert out.nunique() > 10


def test_lognormal_amounts_get_no_exact_zeros():
    frame = pd.DataFrame({"a": np.random.default_rng(0).lognormal(0, 4, 300)})
    out = _tvae().fit(frame).sample(300, seed=0)["a"]
    assert (out == 0).sum() == 0


def test_rounding_happens_before_clipping():
    spec = ColumnSpec("x", "numerical", "float64", min=0.005, max=0.996, decimals=2)
    encoder = NumericalEncoder(spec)
    out = encoder.restore(np.array([0.001, 0.004, 0.5, 0.9991, 5.0]))
    assert out.between(0.005, 0.996).all()
    integer = NumericalEncoder(ColumnSpec("k", "numerical", "int64", min=1, max=3, integer=True))
    assert integer.restore(np.array([0.6, 3.4, 2.2])).tolist() == [1, 3, 2]


def test_datetimes_stay_within_bounds_on_their_resolution():
    spec = ColumnSpec(
        "t", "datetime", "datetime64[ns]", min="2020-01-01T00:00:00", max="2020-01-31T00:00:00"
    )
    encoder = NumericalEncoder(spec)
    encoder.resolution_ns = 86_400 * 10**9
    low = pd.Timestamp(spec.min).value / 1e9
    high = pd.Timestamp(spec.max).value / 1e9
    out = encoder.restore(np.array([low - 1e6, low + 0.4, high + 1.0, 1e30, -1e30]))
    assert out.between(pd.Timestamp(spec.min), pd.Timestamp(spec.max)).all()
    assert (out.dt.normalize() == out).all()


def test_a_non_finite_generator_output_is_not_a_null():
    frame = pd.DataFrame({"x": np.random.default_rng(0).normal(size=200)})
    transformer = TableTransformer().fit(frame)
    block = transformer.encode(frame).numpy().copy()
    block[:5, 0] = [np.nan, np.inf, -np.inf, np.nan, 1e30]
    out = transformer.decode(block)["x"]
    assert out.notna().all() and np.isfinite(out).all()
    quantile = QuantileTableTransformer().fit(frame)
    block = quantile.encode(frame).numpy().copy()
    block[:2, 0] = np.nan
    assert quantile.decode(block)["x"].notna().all()


# ------------------------------------------------------------------ durations
@pytest.mark.parametrize("rows", [30, 300])
def test_timedelta_columns_round_trip(rows, tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "wait": pd.to_timedelta(rng.integers(0, 500, rows), unit="h"),
            "x": rng.normal(size=rows),
        }
    )
    schema = Schema.infer(frame)
    assert schema["wait"].kind == "numerical"
    assert schema["wait"].max == frame["wait"].max().total_seconds()  # bounds in seconds
    transformer = TableTransformer().fit(frame)
    back = transformer.decode(transformer.encode(frame))
    pd.testing.assert_series_equal(back["wait"], frame["wait"])
    model = _tvae().fit(frame)
    out = model.sample(50, seed=0)
    assert out["wait"].dtype == frame["wait"].dtype
    assert (out["wait"] % pd.Timedelta("1h") == pd.Timedelta(0)).all()
    assert out["wait"].between(frame["wait"].min(), frame["wait"].max()).all()
    model.save(str(tmp_path / "m.synth"))
    again = sg.load_model(str(tmp_path / "m.synth")).sample(50, seed=0)
    assert again["wait"].dtype == frame["wait"].dtype


def test_timedelta_through_tokens_keeps_dtype():
    frame = pd.DataFrame({"d": pd.to_timedelta(np.arange(300) * 120, unit="s")})
    tokens = TokenTransformer().fit(frame)
    back = tokens.decode(tokens.encode(frame))
    assert back["d"].dtype == frame["d"].dtype
    assert (back["d"] % pd.Timedelta("1min") == pd.Timedelta(0)).all()  # the observed unit


# ------------------------------------------------------------------ refused column types
REFUSED = {
    "period": (pd.period_range("2020-01", periods=30, freq="M"), "to_timestamp"),
    "interval": (pd.cut(np.linspace(0, 1, 30), 3), "astype\\(str\\)"),
    "list": (pd.Series([[1, 2]] * 30), "explode"),
    "dict": (pd.Series([{"k": 1}] * 30), "single values"),
    "bytes": (pd.Series([b"a", b"b"] * 15), "decode"),
    "decimal": (pd.Series([decimal.Decimal("1.5")] * 30), "astype\\(float\\)"),
    "date": (pd.Series([datetime.date(2020, 1, 1 + i) for i in range(30)]), "pd.to_datetime"),
    "time": (pd.Series([datetime.time(i % 24) for i in range(30)]), "to_timedelta"),
    "mixed_tz": (
        pd.Series(
            [pd.Timestamp("2020-01-01", tz=tz) for tz in ["UTC", "Asia/Tokyo"] * 15], dtype=object
        ),
        "utc=True",
    ),
    "complex": (pd.Series(np.arange(30) * (1 + 1j)), "real"),
}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_unsupported_cells_are_refused_naming_column_and_fix(kind):
    values, fix = REFUSED[kind]
    frame = pd.DataFrame({"odd": values, "x": np.arange(30.0)})
    with pytest.raises(SchemaError, match=f"'odd'.*{fix}"):
        Schema.infer(frame)
    with pytest.raises(SchemaError, match="'odd'"):
        _tvae().fit(frame)


def test_an_interval_categorical_is_refused_even_with_a_given_schema():
    frame = pd.DataFrame({"i": pd.cut(np.linspace(0, 1, 30), 3).astype(str)})
    schema = Schema.infer(frame)
    bad = pd.DataFrame({"i": pd.cut(np.linspace(0, 1, 30), 3)})
    with pytest.raises(SchemaError, match="'i'"):
        schema.validate(bad)


def test_datetimes_beyond_nanoseconds_are_refused_at_fit():
    years = np.array(["2500-01-01", "2550-06-01", "2600-01-01"] * 10, dtype="datetime64[s]")
    frame = pd.DataFrame({"t": years})
    with pytest.raises(SchemaError, match="'t'.*2262"):
        Schema.infer(frame)
    with pytest.raises(SchemaError, match="'t'"):
        _tvae().fit(frame)


def test_second_resolution_datetimes_keep_their_unit(tmp_path):
    stamps = pd.date_range("2020-01-01", periods=60, freq="h").astype("datetime64[s]")
    frame = pd.DataFrame({"t": stamps, "x": np.arange(60.0)})
    out = _tvae().fit(frame).sample(20, seed=0)
    assert out["t"].dtype == frame["t"].dtype


def test_category_dtype_keeps_declared_categories():
    dtype = pd.CategoricalDtype(["lo", "mid", "hi"])
    frame = pd.DataFrame({"c": pd.Series(["lo", "hi"] * 20, dtype=dtype)})
    assert Schema.infer(frame)["c"].categories == ["lo", "mid", "hi"]
    out = TableTransformer().fit(frame).decode(TableTransformer().fit(frame).encode(frame))
    assert out["c"].dtype == dtype


def test_inf_in_an_object_column_names_the_column():
    frame = pd.DataFrame({"o": pd.Series([1.0, np.inf, 2.0], dtype=object)})
    with pytest.raises(DataError, match="column 'o'"):
        Schema.infer(frame)


def test_a_table_of_ids_only_is_refused():
    frame = pd.DataFrame({"id": np.arange(50)})
    with pytest.raises(SchemaError, match="nothing to learn"):
        sg.CTGAN(epochs=1, batch_size=10, pac=1, device="cpu", progress=False).fit(frame)


# ------------------------------------------------------------------ schema validation
def test_min_above_max_is_refused_everywhere():
    with pytest.raises(SchemaError, match="min=3 is above max=1"):
        ColumnSpec("x", "numerical", "float64", min=3, max=1)
    with pytest.raises(SchemaError, match="'x'"):
        Schema.from_dict({"columns": [{"name": "x", "kind": "numerical", "min": 3, "max": 1}]})
    frame = pd.DataFrame({"x": np.arange(50.0)})
    schema = Schema.infer(frame)
    schema["x"].min, schema["x"].max = 10.0, 5.0  # an edit bypasses __post_init__
    with pytest.raises(SchemaError, match="min=10.0 is above max=5.0"):
        _tvae().fit(frame, schema=schema)


@pytest.mark.parametrize(
    "entry, match",
    [
        ({"name": "x", "kind": "numerical", "min": "low"}, "finite number"),
        ({"name": "x", "kind": "numerical", "max": float("inf")}, "finite number"),
        ({"name": "x", "kind": "numerical", "decimals": -1}, "decimals"),
        ({"name": "x", "kind": "numerical", "nullable": "yes"}, "nullable"),
        ({"name": "t", "kind": "datetime", "min": "whenever"}, "ISO date"),
        ({"name": "t", "kind": "datetime", "min": "2021-01-01", "max": "2020-01-01"}, "above"),
        ({"name": "c", "kind": "categorical", "categories": "abc"}, "list"),
        ({"name": "c", "kind": "categorical", "categories": [[1]]}, "string, number"),
    ],
)
def test_malformed_specs_are_refused(entry, match):
    with pytest.raises(SchemaError, match=match):
        Schema.from_dict({"columns": [entry]})


def test_schema_dict_shape_is_checked():
    with pytest.raises(SchemaError, match="must be a dict"):
        Schema.from_dict({"columns": ["x"]})
    with pytest.raises(SchemaError, match="more than once"):
        Schema.from_dict({"columns": [{"name": "x", "kind": "id"}, {"name": "x", "kind": "id"}]})


def test_from_json_names_a_missing_or_odd_file(tmp_path):
    with pytest.raises(SchemaError, match="'missing.json' does not exist"):
        Schema.from_json("missing.json")
    with pytest.raises(SchemaError, match="is a directory"):
        Schema.from_json(str(tmp_path))
    schema = Schema.infer(pd.DataFrame({"x": [1.0, 2.0]}))
    schema.to_json(str(tmp_path / "s.json"))
    assert Schema.from_json(tmp_path / "s.json").to_dict() == schema.to_dict()  # a Path works


# ------------------------------------------------------------------ conditions
@pytest.fixture(scope="module")
def condition_schema() -> Schema:
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame(
        {
            "x": rng.uniform(0, 20, n),
            "k": rng.integers(0, 50, n),
            "c": rng.choice(["a", "b"], n),
            "t": pd.date_range("2020-01-01", periods=n, freq="D", tz="Europe/Paris"),
            "naive": pd.date_range("2020-01-01", periods=n, freq="D"),
            "d": pd.to_timedelta(rng.integers(0, 500, n), unit="h"),
        }
    )
    return Schema.infer(frame)


def _never(n, row):
    raise AssertionError("the condition should have been refused before generating")


@pytest.mark.parametrize(
    "condition, match",
    [
        ({"x": ("a", "z")}, "'x'.*'a' is not a number"),
        ({"x": "abc"}, "'x'.*not a number"),
        ({"x": (1e6, 2e6)}, "impossible.*lie in \\[0"),
        ({"x": -5}, "impossible"),
        ({"x": (np.nan, 3)}, "not a number"),
        ({"x": (5, 1)}, "above high"),
        ({"x": (1, 2, 3)}, "pair"),
        ({"k": 2.5}, "decimal"),
        ({"k": (2.2, 2.8)}, "contains none"),
        ({"c": "zzz"}, "not a known category.*'a', 'b'"),
        ({"c": ("a", "b")}, "not a range"),
        ({"t": ("soon", None)}, "'t'.*'soon' does not parse"),
        ({"t": ("1990-01-01", "1990-02-01")}, "impossible"),
        ({"t": 5}, "not a datetime"),
        ({"naive": pd.Timestamp("2020-02-01", tz="UTC")}, "time zone"),
        ({"d": 5}, "not a duration"),
        ({"d": ("1000d", None)}, "impossible"),
        ({"d": "never"}, "does not parse as a duration"),
    ],
)
def test_bad_or_impossible_conditions_fail_before_any_generation(
    condition_schema, condition, match
):
    with pytest.raises(ConditionError, match=match):
        ConditionSampler(condition_schema, condition).sample(5, _never)


def test_naive_datetimes_on_a_tz_aware_column_are_read_in_its_zone(condition_schema):
    sampler = ConditionSampler(condition_schema, {"t": ("2020-02-01", "2020-03-01")})
    low, high = sampler.rows[0]["t"]
    assert str(low.tz) == "Europe/Paris" and low == pd.Timestamp("2020-02-01", tz="Europe/Paris")


def test_conditions_on_durations_and_datetimes_are_met():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "t": pd.date_range("2020-01-01", periods=200, freq="D", tz="Europe/Paris"),
            "d": pd.to_timedelta(rng.integers(0, 500, 200), unit="h"),
        }
    )
    model = _tvae().fit(frame)
    out = model.sample(20, seed=0, conditions={"t": ("2020-02-01", None), "d": ("10h", "300h")})
    assert len(out) == 20
    assert (out["t"] >= pd.Timestamp("2020-02-01", tz="Europe/Paris")).all()
    assert out["d"].between(pd.Timedelta("10h"), pd.Timedelta("300h")).all()


# ------------------------------------------------------------------ augment
@pytest.fixture(scope="module")
def labelled():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x": rng.normal(size=100), "y": rng.choice(["a", "b"], 100, p=[0.8, 0.2])}
    )
    return frame, _tvae().fit(frame)


def test_augment_refuses_a_frame_with_other_columns(labelled):
    frame, model = labelled
    with pytest.raises(DataError, match="'extra'.*not trained on"):
        sg.augment(frame.assign(extra=1), model, target="y")
    with pytest.raises(DataError, match="missing column"):
        sg.augment(frame[["y"]], model, target="y")


def test_augment_refuses_absurd_sizes_with_the_limit(labelled):
    frame, model = labelled
    with pytest.raises(ConfigError, match="max_rows=10,000,000"):
        sg.augment(frame, model, target="y", strategy={"b": 10**9})
    with pytest.raises(ConfigError, match="max_rows=10"):
        sg.augment(frame, model, target="y", max_rows=10)
    with pytest.raises(ConfigError, match="ratio"):
        sg.augment(frame, model, target="y", ratio="half")
    counts = frame["y"].value_counts()
    out = sg.augment(frame, model, target="y", strategy={"b": np.int64(counts["b"] + 3)}, seed=0)
    assert len(out) == len(frame) + 3

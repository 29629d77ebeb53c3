"""The shared reversible transform: exact round trips, spans, persistence, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthgen import Schema, TableTransformer
from synthgen.errors import ConfigError, DataError, NotFittedError
from synthgen.transforms.numerical import (
    decode_modes,
    encode_modes,
    fit_mode_normalizer,
)


def test_adult_round_trip_is_exact(adult):
    transformer = TableTransformer(seed=0).fit(adult)
    encoded = transformer.encode(adult)
    assert encoded.dtype == torch.float32
    assert encoded.shape == (len(adult), transformer.output_dim)
    pd.testing.assert_frame_equal(transformer.decode(encoded), adult)


def test_mixed_frame_round_trip(mixed_frame):
    transformer = TableTransformer().fit(mixed_frame)
    decoded = transformer.decode(transformer.encode(mixed_frame))
    without_ids = mixed_frame.drop(columns=["user_id"])
    decoded_city = decoded.pop("city")
    pd.testing.assert_frame_equal(
        decoded.drop(columns=["user_id"]), without_ids.drop(columns="city")
    )
    pd.testing.assert_series_equal(_nulls_as_none(decoded_city), without_ids["city"])
    assert decoded["user_id"].is_unique and decoded["user_id"].dtype == mixed_frame["user_id"].dtype


def test_spans_cover_the_row_once(mixed_frame):
    transformer = TableTransformer().fit(mixed_frame)
    covered = np.zeros(transformer.output_dim, dtype=int)
    for span in transformer.spans:
        covered[span.start : span.stop] += 1
    assert (covered == 1).all()
    roles = {(s.column, s.role) for s in transformer.spans}
    assert (
        ("score", "null") in roles and ("age", "alpha") in roles and ("city", "category") in roles
    )
    assert not any(s.column == "user_id" for s in transformer.spans)


def test_one_hot_groups_are_one_hot(adult_small):
    transformer = TableTransformer().fit(adult_small)
    encoded = transformer.encode(adult_small)
    for span in transformer.spans:
        if not span.continuous:
            block = encoded[:, span.start : span.stop]
            assert torch.all(block.sum(dim=1) == 1)


def test_mode_normalizer_finds_separate_modes():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-10, 1, 3000), rng.normal(10, 1, 3000)])
    state = fit_mode_normalizer(values, seed=0)
    assert state.n_modes >= 2
    assert np.any(np.abs(state.means + 10) < 1) and np.any(np.abs(state.means - 10) < 1)
    alpha, modes = encode_modes(state, values, np.random.default_rng(1))
    np.testing.assert_allclose(decode_modes(state, alpha, modes), values, rtol=1e-9, atol=1e-9)
    assert np.abs(alpha).max() < 2


def test_point_masses_get_exact_modes_of_their_own():
    """A spike (0 in 90% of rows) is a mode that decodes to exactly 0 whatever alpha the
    generator produces, and the mixture models the remaining values."""
    rng = np.random.default_rng(0)
    values = np.where(rng.random(6000) < 0.9, 0.0, rng.lognormal(8, 1, 6000).round())
    state = fit_mode_normalizer(values, seed=0)
    assert state.points.sum() == 1 and state.means[state.points][0] == 0.0
    assert (~state.points).sum() >= 1  # the tail keeps its Gaussian components
    alpha, modes = encode_modes(state, values, np.random.default_rng(1))
    zero_mode = int(np.flatnonzero(state.points)[0])
    assert np.all(modes[values == 0] == zero_mode) and np.all(alpha[values == 0] == 0)
    assert not np.any(modes[values != 0] == zero_mode)
    np.testing.assert_allclose(decode_modes(state, alpha, modes), values, rtol=1e-9, atol=1e-9)
    # a generator's imprecise alpha still lands exactly on the spike
    noisy = rng.uniform(-0.9, 0.9, len(values))
    assert np.all(decode_modes(state, noisy, np.full(len(values), zero_mode)) == 0.0)


def test_spread_values_have_no_point_masses():
    values = np.random.default_rng(0).normal(0, 1, 5000)
    assert not fit_mode_normalizer(values, seed=0).points.any()


def test_adult_capital_gain_zeros_and_40_hours_are_point_masses(adult):
    transformer = TableTransformer().fit(adult)
    gain = transformer.encoders_["capital-gain"].state
    hours = transformer.encoders_["hours-per-week"].state
    assert 0.0 in gain.means[gain.points] and 40.0 in hours.means[hours.points]


def test_model_state_without_points_loads_as_no_point_masses(mixed_frame):
    transformer = TableTransformer().fit(mixed_frame)
    meta, arrays = transformer.state_dict()
    arrays = {k: v for k, v in arrays.items() if not k.endswith("points")}
    restored = TableTransformer.from_state_dict(meta, arrays)
    for encoder in restored.encoders_.values():
        state = getattr(encoder, "state", None)
        if state is not None:
            assert not state.points.any() and len(state.points) == state.n_modes


def test_few_valued_numbers_are_one_hot_and_exact(adult_small):
    transformer = TableTransformer().fit(adult_small)
    roles = {(s.column, s.role) for s in transformer.spans}
    assert ("education-num", "category") in roles and ("age", "alpha") in roles
    noise = torch.randn(300, transformer.output_dim)
    decoded = transformer.decode(noise)
    assert set(decoded["education-num"]) <= set(adult_small["education-num"])
    off = TableTransformer(discrete_max_values=0).fit(adult_small)
    assert ("education-num", "alpha") in {(s.column, s.role) for s in off.spans}


def test_constant_column_round_trips():
    frame = pd.DataFrame({"c": [5.0] * 20, "k": ["a"] * 20})
    transformer = TableTransformer().fit(frame)
    pd.testing.assert_frame_equal(transformer.decode(transformer.encode(frame)), frame)


def test_generated_values_respect_bounds_and_integers(adult_small):
    transformer = TableTransformer().fit(adult_small)
    noise = torch.randn(500, transformer.output_dim) * 5
    decoded = transformer.decode(noise)
    assert decoded["age"].between(adult_small["age"].min(), adult_small["age"].max()).all()
    assert decoded["age"].dtype == adult_small["age"].dtype
    assert set(decoded["income"]) <= set(adult_small["income"])


def test_state_dict_round_trip(mixed_frame):
    transformer = TableTransformer().fit(mixed_frame)
    meta, tensors = transformer.state_dict()
    again = TableTransformer.from_state_dict(meta, tensors)
    encoded = transformer.encode(mixed_frame, seed=3)
    assert torch.equal(encoded, again.encode(mixed_frame, seed=3))
    pd.testing.assert_frame_equal(transformer.decode(encoded), again.decode(encoded))


def test_fit_is_seeded(adult_small):
    a = TableTransformer(seed=1).fit(adult_small).encode(adult_small)
    b = TableTransformer(seed=1).fit(adult_small).encode(adult_small)
    assert torch.equal(a, b)


def test_unseen_category_is_named(adult_small):
    transformer = TableTransformer().fit(adult_small)
    frame = adult_small.head(5).copy()
    frame.loc[0, "race"] = "Martian"
    with pytest.raises(DataError, match="'race'.*'Martian'"):
        transformer.encode(frame)


def test_nulls_in_a_column_fitted_without_them(adult_small):
    transformer = TableTransformer().fit(adult_small)
    frame = adult_small.head(5).copy()
    frame["age"] = frame["age"].astype(float)
    frame.loc[0, "age"] = np.nan
    with pytest.raises(DataError, match="'age'.*nullable"):
        transformer.encode(frame)


def test_too_many_categories_is_refused():
    frame = pd.DataFrame({"code": [f"k{i % 3000}" for i in range(9000)]})
    schema = Schema.infer(frame)
    assert schema["code"].kind == "categorical"
    with pytest.raises(ConfigError, match="'code'.*max_categories"):
        TableTransformer(max_categories=1000).fit(frame, schema)


def test_unfitted_and_wrong_shapes(adult_small):
    with pytest.raises(NotFittedError):
        TableTransformer().encode(adult_small)
    transformer = TableTransformer().fit(adult_small)
    with pytest.raises(DataError, match="expected"):
        transformer.decode(np.zeros((3, 2)))
    with pytest.raises(DataError, match="missing"):
        transformer.encode(adult_small.drop(columns=["age"]))


def _nulls_as_none(series: pd.Series) -> pd.Series:
    if series.dtype == object:
        return series.where(series.notna(), None)
    return series


# --------------------------------------------------------------------- property-based
_columns = st.sampled_from(
    ["int", "float", "nullable_float", "cat", "nullable_cat", "bool", "date"]
)


@st.composite
def odd_frames(draw) -> pd.DataFrame:
    n = draw(st.integers(min_value=2, max_value=40))
    kinds = draw(st.lists(_columns, min_size=1, max_size=5))
    data = {}
    for index, kind in enumerate(kinds):
        name = f"{kind}_{index}"
        if kind == "int":
            data[name] = draw(st.lists(st.integers(-(10**9), 10**9), min_size=n, max_size=n))
        elif kind in ("float", "nullable_float"):
            values = draw(
                st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=n, max_size=n)
            )
            if kind == "nullable_float":
                values = [v if i % 3 else np.nan for i, v in enumerate(values)]
            data[name] = np.asarray(values, dtype=np.float64)
        elif kind in ("cat", "nullable_cat"):
            alphabet = ["a", "b", "c", "ü", " ", ""]
            values = draw(st.lists(st.sampled_from(alphabet), min_size=n, max_size=n))
            if kind == "nullable_cat":
                values = [v if i % 4 else None for i, v in enumerate(values)]
            data[name] = values
        elif kind == "bool":
            data[name] = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        else:
            days = draw(st.lists(st.integers(0, 20000), min_size=n, max_size=n))
            data[name] = pd.to_datetime("1970-01-01") + pd.to_timedelta(days, unit="D")
    return pd.DataFrame(data)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=odd_frames())
def test_property_round_trip(frame):
    schema = Schema.infer(frame)
    transformer = TableTransformer(n_jobs=1).fit(frame, schema)
    decoded = transformer.decode(transformer.encode(frame))
    ids = schema.names_of("id")
    kept = [c for c in frame.columns if c not in ids]
    for column in kept:
        spec = schema[column]
        if spec.kind == "numerical":
            # float32 encoding: exact for typical data, within float tolerance in general
            np.testing.assert_allclose(
                decoded[column].to_numpy(dtype=float),
                frame[column].to_numpy(dtype=float),
                rtol=1e-5,
                atol=1e-6 * max(1.0, float(np.nanmax(np.abs(frame[column])))),
            )
        else:
            pd.testing.assert_series_equal(
                _nulls_as_none(decoded[column]), _nulls_as_none(frame[column]), check_names=False
            )
    assert list(decoded.columns) == list(frame.columns)
    assert len(decoded) == len(frame)


@settings(max_examples=40, deadline=None)
@given(frame=odd_frames())
def test_property_infer_is_json_stable(frame):
    schema = Schema.infer(frame)
    assert Schema.from_json(schema.to_json()).to_dict() == schema.to_dict()
    schema.validate(frame)

"""Quantile (Gaussianising) transform: sklearn equivalence, round trips, spans, persistence."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.preprocessing import QuantileTransformer

from synthgen import Schema, TableTransformer
from synthgen.errors import ModelFileError
from synthgen.transforms import QuantileTableTransformer
from synthgen.transforms.quantile import (
    CLIP_MAX,
    CLIP_MIN,
    QuantileEncoder,
    fit_quantiles,
    from_normal,
    to_normal,
)


def _sklearn(values: np.ndarray, n_quantiles: int) -> QuantileTransformer:
    qt = QuantileTransformer(output_distribution="normal", n_quantiles=n_quantiles, subsample=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_quantiles > rows
        return qt.fit(values[:, None])


def _assert_matches_sklearn(values: np.ndarray, n_quantiles: int) -> None:
    qt = _sklearn(values, n_quantiles)
    quantiles = fit_quantiles(values, n_quantiles, max_fit_rows=None, seed=0)
    np.testing.assert_allclose(quantiles, qt.quantiles_[:, 0], rtol=1e-12, atol=0)
    span = float(values.max() - values.min()) or 1.0
    probe = np.concatenate(
        [values, [values.min() - span, values.max() + span, values.min(), values.max(), np.nan]]
    )
    z = to_normal(probe, quantiles)
    np.testing.assert_allclose(z, qt.transform(probe[:, None])[:, 0], atol=1e-6, equal_nan=True)
    scores = np.concatenate(
        [np.random.default_rng(1).normal(0, 2, 2000), [-10, 10, CLIP_MIN, CLIP_MAX, 0.0]]
    )
    np.testing.assert_allclose(
        from_normal(scores, quantiles),
        qt.inverse_transform(scores[:, None])[:, 0],
        rtol=1e-6,
        atol=1e-6,
    )


@pytest.mark.parametrize("n_quantiles", [1000, 50])
def test_matches_sklearn_on_random_data_with_ties(n_quantiles):
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [np.round(rng.lognormal(0, 1, 3000), 1), np.zeros(500), np.full(200, 3.0)]
    )
    rng.shuffle(values)
    _assert_matches_sklearn(values, n_quantiles)
    _assert_matches_sklearn(rng.integers(0, 4, 7).astype(float), n_quantiles)  # rows < n


@pytest.mark.parametrize("column", ["age", "fnlwgt", "capital-gain"])
def test_matches_sklearn_on_adult(adult, column):
    _assert_matches_sklearn(adult[column].to_numpy(dtype=float), 1000)


def test_subsampled_fit_is_seeded_and_keeps_the_ends():
    values = np.random.default_rng(0).lognormal(0, 2, 20_000)
    a = fit_quantiles(values, 100, max_fit_rows=1000, seed=3)
    assert np.array_equal(a, fit_quantiles(values, 100, max_fit_rows=1000, seed=3))
    assert len(a) == 100 and np.all(np.diff(a) >= 0)
    assert a[0] == values.min() and a[-1] == values.max()
    assert np.array_equal(from_normal(to_normal(values.max(), a), a), values.max())


def test_adult_round_trip(adult):
    transformer = QuantileTableTransformer(seed=0).fit(adult)
    encoded = transformer.encode(adult)
    assert encoded.dtype == torch.float32
    assert encoded.shape == (len(adult), transformer.output_dim)
    assert isinstance(transformer.encoders_["fnlwgt"], QuantileEncoder)
    # categoricals exact; the integer columns are exact once rounded (float32 scores)
    pd.testing.assert_frame_equal(transformer.decode(encoded), adult)


def test_mixed_frame_round_trip(mixed_frame):
    transformer = QuantileTableTransformer(discrete_max_values=0).fit(mixed_frame)
    assert all(
        isinstance(transformer.encoders_[c], QuantileEncoder)
        for c in ("age", "income", "score", "joined")
    )
    decoded = transformer.decode(transformer.encode(mixed_frame))
    for column in ("age", "joined", "member"):
        pd.testing.assert_series_equal(decoded[column], mixed_frame[column])
    assert decoded["city"].isna().equals(mixed_frame["city"].isna())
    assert (decoded["city"].dropna() == mixed_frame["city"].dropna()).all()
    for column in ("income", "score"):
        assert decoded[column].isna().equals(mixed_frame[column].isna())
        np.testing.assert_allclose(decoded[column], mixed_frame[column], rtol=1e-5, atol=1e-5)
    assert decoded["score"].isna().sum() > 0


def test_nullable_datetime_round_trip():
    rng = np.random.default_rng(0)
    n = 500
    stamps = pd.Series(
        pd.to_datetime("2015-03-01") + pd.to_timedelta(rng.integers(0, 3000, n), unit="D")
    )
    stamps[rng.random(n) < 0.1] = pd.NaT
    frame = pd.DataFrame({"when": stamps})
    transformer = QuantileTableTransformer().fit(frame)
    assert [(s.role, s.width) for s in transformer.spans] == [("alpha", 1), ("null", 2)]
    decoded = transformer.decode(transformer.encode(frame))
    pd.testing.assert_frame_equal(decoded, frame)


def test_numeric_spans_are_alpha_and_null(mixed_frame):
    transformer = QuantileTableTransformer(discrete_max_values=0).fit(mixed_frame)
    spans = {
        c: [(s.role, s.width) for s in transformer.spans if s.column == c]
        for c in ("income", "score")
    }
    assert spans["income"] == [("alpha", 1)]
    assert spans["score"] == [("alpha", 1), ("null", 2)]
    covered = np.zeros(transformer.output_dim, dtype=int)
    for span in transformer.spans:
        covered[span.start : span.stop] += 1
    assert (covered == 1).all()
    assert not any(s.role == "mode" for s in transformer.spans)


def test_state_dict_round_trip(mixed_frame):
    transformer = QuantileTableTransformer(n_quantiles=200, discrete_max_values=0).fit(mixed_frame)
    meta, tensors = transformer.state_dict()
    json.dumps(meta)
    assert meta["params"]["n_quantiles"] == 200
    assert meta["columns"]["income"]["encoder"] == "QuantileEncoder"
    again = QuantileTableTransformer.from_state_dict(meta, tensors)
    assert type(again) is QuantileTableTransformer and again.n_quantiles == 200
    assert isinstance(again.encoders_["income"], QuantileEncoder)
    assert again.spans == transformer.spans
    encoded = transformer.encode(mixed_frame, seed=3)
    assert torch.equal(encoded, again.encode(mixed_frame, seed=3))
    pd.testing.assert_frame_equal(transformer.decode(encoded), again.decode(encoded))


def test_unknown_saved_encoder_is_refused(mixed_frame):
    meta, tensors = TableTransformer().fit(mixed_frame).state_dict()
    meta["columns"]["income"]["encoder"] = "FancyEncoder"
    with pytest.raises(ModelFileError, match="'income'.*FancyEncoder"):
        TableTransformer.from_state_dict(meta, tensors)


@pytest.mark.parametrize("discrete_max_values", [0, 32])
def test_constant_and_all_null_columns(discrete_max_values):
    frame = pd.DataFrame({"c": [5.0] * 20, "gone": [np.nan] * 20, "k": ["a", "b"] * 10})
    schema = Schema.infer(frame, kinds={"gone": "numerical"})
    assert schema["gone"].nullable
    transformer = QuantileTableTransformer(discrete_max_values=discrete_max_values)
    transformer.fit(frame, schema)
    encoded = transformer.encode(frame)
    assert torch.isfinite(encoded).all()
    if discrete_max_values == 0:
        (alpha,) = [s for s in transformer.spans if s.column == "c"]
        assert alpha.role == "alpha" and torch.all(encoded[:, alpha.start] == 0)
    pd.testing.assert_frame_equal(transformer.decode(encoded), frame)
    noise = transformer.decode(torch.randn(50, transformer.output_dim) * 3)
    assert (noise["c"] == 5.0).all()


def test_scores_are_finite_and_standard_normal():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.lognormal(3, 1.5, 20_000), "y": rng.normal(0, 1, 20_000)})
    transformer = QuantileTableTransformer().fit(frame)
    encoded = transformer.encode(frame).numpy()
    assert np.isfinite(encoded).all()
    for span in transformer.spans:
        z = encoded[:, span.start]
        assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02
        assert z.min() >= CLIP_MIN - 1e-5 and z.max() <= CLIP_MAX + 1e-5


def test_generated_scores_stay_in_range(adult):
    transformer = QuantileTableTransformer().fit(adult)
    decoded = transformer.decode(torch.randn(500, transformer.output_dim) * 5)
    for column in ("age", "fnlwgt", "capital-gain"):
        assert decoded[column].between(adult[column].min(), adult[column].max()).all()
        assert decoded[column].dtype == adult[column].dtype

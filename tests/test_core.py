"""synthgen.core: the shared helpers equal the code they replaced, and the lazy package.

Each ``_old_*`` function below is a verbatim copy of a conversion that used to be
written in one of the layers (named in its docstring); the helpers in
``synthgen.core`` must give the same numbers, bit for bit, on every kind of column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import synthgen
import synthgen.errors
from synthgen.core import errors as core_errors
from synthgen.core import kinds
from synthgen.core.noise import gumbel_noise
from synthgen.core.values import (
    category_codes,
    category_keys,
    datetime_ns,
    datetime_to_float,
    joint_codes,
    numeric_values,
)
from synthgen.schema import KINDS


# ----------------------------------------------------------------- the replaced code
def _old_attacks_as_float(series: pd.Series) -> np.ndarray:
    """privacy/attacks.py ``_as_float``."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        out = series.to_numpy(dtype="datetime64[ns]").view("int64").astype("float64")
        out[series.isna().to_numpy()] = np.nan
        return out
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype="float64")
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _old_encoding_numeric_values(series: pd.Series) -> np.ndarray:
    """evaluation/encoding.py ``numeric_values``."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        out = series.to_numpy(dtype="datetime64[ns]").astype("int64").astype("float64")
        out[series.isna().to_numpy()] = np.nan
        return out
    if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        if pd.api.types.is_bool_dtype(series.dtype):
            return series.astype("float64").to_numpy()
        return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return series.to_numpy(dtype="float64", na_value=np.nan)


def _old_fidelity_datetime(series: pd.Series) -> np.ndarray:
    """evaluation/fidelity.py ``_continuous``, datetime branch."""
    ns = series.to_numpy(dtype="datetime64[ns]").view("int64")
    if series.isna().any():
        out = ns.astype("float64")
        out[series.isna().to_numpy()] = np.nan
        return out
    return ns


def _old_columns_datetime_seconds(as_dt: pd.Series) -> np.ndarray:
    """synthgen/transforms/columns.py ``NumericalEncoder.to_numbers``, after parsing."""
    ns = as_dt.to_numpy(dtype="datetime64[ns]").astype("int64").astype(np.float64)
    ns[as_dt.isna().to_numpy()] = np.nan
    return ns / 1_000_000_000


def _old_keys(series: pd.Series) -> pd.Series:
    """privacy/attacks.py ``_keys`` and evaluation/encoding.py ``category_keys``."""
    return series.astype(object).where(series.notna(), None)


def _old_columns_codes(series: pd.Series, categories: list) -> np.ndarray:
    """synthgen/transforms/columns.py ``CategoricalEncoder.codes``, first two lines."""
    values = series.astype(object) if isinstance(series.dtype, pd.CategoricalDtype) else series
    return pd.Categorical(values, categories=categories).codes.astype(np.int64)


def _old_spans_gumbel(scores: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """synthgen/backends/spans.py ``_gumbel_like`` (also diffusion/multinomial.py inline)."""
    u = torch.rand(scores.shape, generator=generator, device=scores.device, dtype=scores.dtype)
    return -torch.log((-torch.log(u.clamp_min(1e-20))).clamp_min(1e-20))


# ----------------------------------------------------------------- columns to test on
def _columns() -> dict[str, pd.Series]:
    stamps = ["2021-03-04 05:06:07.123456789", None, "1969-12-31 23:59:59", "2262-04-11"]
    return {
        "datetime_with_nat": pd.Series(pd.to_datetime(stamps, format="ISO8601")),
        "datetime_no_nat": pd.Series(
            pd.to_datetime(["2020-01-01 00:00:00", "2020-01-02 03:04:05"])
        ),
        "datetime_tz": pd.Series(pd.to_datetime(["2020-01-01 05:00:00", None])).dt.tz_localize(
            "US/Eastern"
        ),
        "datetime_seconds_unit": pd.Series(
            np.array(["2020-01-01", "NaT", "1900-05-06"], dtype="datetime64[s]")
        ),
        "all_nat": pd.Series(pd.to_datetime([None, None])),
        "float": pd.Series([1.5, np.nan, -0.0, 1e300]),
        "int": pd.Series([1, 2, 2**53 + 1]),
        "nullable_int": pd.Series([1, None, 3], dtype="Int64"),
        "bool": pd.Series([True, False, True]),
        "nullable_bool": pd.Series([True, None, False], dtype="boolean"),
        "object_numbers": pd.Series(["1", "x", None, "2.5"]),
        "object_mixed": pd.Series([1, "a", None, 2.0], dtype=object),
        "string": pd.Series(["a", None, "b"], dtype="string"),
        "categorical": pd.Series(pd.Categorical(["b", None, "a", "b"])),
        "numeric_categorical": pd.Series(pd.Categorical([3, None, 1])),
        "empty": pd.Series([], dtype="float64"),
    }


COLUMNS = _columns()
DATETIMES = [n for n, s in COLUMNS.items() if pd.api.types.is_datetime64_any_dtype(s.dtype)]


# ----------------------------------------------------------------- values
@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_numeric_values_equal_both_old_copies(name):
    series = COLUMNS[name]
    new = numeric_values(series)
    assert new.dtype == np.float64
    np.testing.assert_array_equal(new, _old_attacks_as_float(series))
    np.testing.assert_array_equal(new, _old_encoding_numeric_values(series))


@pytest.mark.parametrize("name", DATETIMES)
def test_datetime_helpers_equal_the_old_fidelity_and_transform_code(name):
    series = COLUMNS[name]
    old = _old_fidelity_datetime(series)
    new = datetime_to_float(series) if series.isna().any() else datetime_ns(series)
    assert new.dtype == old.dtype  # exact int64 nanoseconds when there is no NaT
    np.testing.assert_array_equal(new, old)
    np.testing.assert_array_equal(
        datetime_to_float(series, unit="s"), _old_columns_datetime_seconds(series)
    )


def test_datetime_to_float_marks_nat_as_nan_and_keeps_nanoseconds():
    series = COLUMNS["datetime_with_nat"]
    ns = datetime_to_float(series)
    assert np.isnan(ns[1]) and not np.isnan(ns[[0, 2, 3]]).any()
    assert ns[2] == -1e9  # one second before the epoch
    assert datetime_ns(series)[0] == pd.Timestamp("2021-03-04 05:06:07.123456789").value
    tz = datetime_to_float(COLUMNS["datetime_tz"])
    assert tz[0] == pd.Timestamp("2020-01-01 10:00").value  # tz-aware values are UTC


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_category_keys_equal_the_old_copies(name):
    series = COLUMNS[name]
    new, old = category_keys(series), _old_keys(series)
    assert new.dtype == object
    assert new.tolist() == old.tolist()
    assert [v is None for v in new] == series.isna().tolist()


@pytest.mark.parametrize(
    ("series", "categories"),
    [
        (pd.Series(["b", None, "a", "zz"]), ["a", "b"]),
        (pd.Series(pd.Categorical(["b", "a"], categories=["b", "a"])), ["a", "b"]),
        (pd.Series([1.0, 2.0, np.nan, 7.0]), [1.0, 2.0]),
        (pd.Series([True, False]), [False, True]),
        (pd.Series([], dtype=object), []),
    ],
)
def test_category_codes_equal_the_transform_and_evaluator_code(series, categories):
    new = category_codes(series, categories)
    np.testing.assert_array_equal(new, _old_columns_codes(series, categories))
    old_evaluation = pd.Categorical(series.astype(object), categories=categories).codes
    np.testing.assert_array_equal(new, old_evaluation.astype("int64"))
    assert new.dtype == np.int64


def test_category_codes_of_a_categorical_follow_values_not_its_own_codes():
    series = pd.Series(pd.Categorical(["b", "a", None], categories=["b", "a"]))
    assert category_codes(series, ["a", "b"]).tolist() == [1, 0, -1]


def test_joint_codes_equal_the_old_factorize_and_line_up_across_frames():
    a, b = pd.Series(["x", None, "y", "x"]), pd.Series(["y", "z", None])
    codes_a, codes_b, uniques = joint_codes(a, b)
    both = pd.concat([a, b], ignore_index=True)
    old, old_uniques = pd.factorize(both, use_na_sentinel=False)
    np.testing.assert_array_equal(np.r_[codes_a, codes_b], old)
    pd.testing.assert_index_equal(pd.Index(uniques), pd.Index(old_uniques))
    assert codes_a.dtype == codes_b.dtype == np.int64
    assert codes_a[2] == codes_b[0] and codes_a[1] == codes_b[2]  # "y" and null agree
    assert pd.isna(uniques).sum() == 1


# ----------------------------------------------------------------- noise
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gumbel_noise_equals_the_old_spans_helper(dtype):
    like = torch.zeros(64, 3, 5, dtype=dtype)
    new = gumbel_noise(like, torch.Generator().manual_seed(3))
    old = _old_spans_gumbel(like, torch.Generator().manual_seed(3))
    assert new.dtype == dtype and new.shape == like.shape
    assert torch.equal(new, old)


def test_gumbel_noise_from_a_shape_equals_the_inline_backend_formulas():
    shape = (200, 7)
    new = gumbel_noise(shape, torch.Generator().manual_seed(5))
    u = torch.rand(shape, generator=torch.Generator().manual_seed(5))
    tabular_ar = -torch.log(-torch.log(u.clamp_min(1e-20)))  # tabular_ar.py _complete
    ctgan = u.clone().clamp_min_(1e-20).log_().neg_().log_().neg_()  # ctgan.py _activate
    assert new.dtype == torch.float32
    assert torch.equal(new, tabular_ar)
    assert torch.equal(new, ctgan)


def test_gumbel_noise_is_seeded_and_samples_the_softmax():
    logits = torch.tensor([0.0, 1.0, 2.0])
    assert torch.equal(
        gumbel_noise((4, 3), torch.Generator().manual_seed(0)),
        gumbel_noise((4, 3), torch.Generator().manual_seed(0)),
    )
    draws = (logits + gumbel_noise((20_000, 3), torch.Generator().manual_seed(1))).argmax(1)
    share = torch.bincount(draws, minlength=3).double() / len(draws)
    assert torch.allclose(share, torch.softmax(logits.double(), 0), atol=0.02)
    assert torch.isfinite(gumbel_noise(torch.zeros(10_000))).all()


# ----------------------------------------------------------------- errors and kinds
def test_public_errors_are_the_core_classes():
    for name in ("SynthgenError", "SchemaError", "DataError", "ConfigError"):
        assert getattr(synthgen.errors, name) is getattr(core_errors, name)
    for name in ("NotFittedError", "ModelFileError", "ConditionError"):
        assert getattr(synthgen.errors, name) is getattr(core_errors, name)
        assert issubclass(getattr(synthgen.errors, name), synthgen.errors.SynthgenError)
    assert synthgen.SynthgenError is core_errors.SynthgenError


def test_schema_kinds_are_the_core_constants():
    assert KINDS is kinds.KINDS
    assert KINDS == (kinds.NUMERICAL, kinds.CATEGORICAL, kinds.BOOLEAN, kinds.DATETIME, kinds.ID)
    assert KINDS == ("numerical", "categorical", "boolean", "datetime", "id")  # file format
    assert set(kinds.CONTINUOUS_KINDS) | set(kinds.DISCRETE_KINDS) | {kinds.ID} == set(KINDS)


# ----------------------------------------------------------------- the lazy package
def test_lazy_package_resolves_every_public_name():
    import synthgen as sg
    from synthgen import TVAE, Schema, datasets, load_model

    assert sg.TVAE is TVAE and TVAE.__name__ == "TVAE"
    assert Schema.__module__ == "synthgen.schema"
    assert callable(load_model) and hasattr(datasets, "load")
    assert set(sg.__all__) <= set(dir(sg))
    for name in sg.__all__:
        assert getattr(sg, name) is not None
    assert TVAE in sg.BACKENDS.values()


def test_lazy_package_refuses_unknown_names():
    with pytest.raises(AttributeError, match="no attribute 'NoSuchModel'"):
        synthgen.NoSuchModel  # noqa: B018


def test_numeric_values_reads_durations_in_seconds_with_nat_as_nan():
    import pandas as pd

    from synthgen.core.values import numeric_values

    out = numeric_values(pd.Series(pd.to_timedelta([1.5, None, 3600], unit="s")))
    assert out[0] == 1.5 and np.isnan(out[1]) and out[2] == 3600.0

"""Bundled datasets load offline with proper dtypes."""

from __future__ import annotations

import pytest

import synthgen as sg
from synthgen.errors import ConfigError


def test_adult_shape_dtypes_and_missing(adult):
    assert adult.shape == (32_561, 15)
    assert adult["age"].dtype == "int64"
    assert adult["workclass"].isna().sum() == 1836
    assert adult["occupation"].isna().sum() == 1843
    assert adult["native-country"].isna().sum() == 583
    assert (adult["income"] == ">50K").sum() == 7841
    assert not adult["workclass"].dropna().str.startswith(" ").any()


def test_unknown_dataset_lists_names():
    with pytest.raises(ConfigError, match="available: adult"):
        sg.datasets.load("iris")
    assert sg.datasets.target_of("adult") == "income"

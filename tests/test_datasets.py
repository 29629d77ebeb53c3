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


def test_the_documented_adult_categories_cover_the_data_and_are_public():
    df = sg.datasets.load("adult")
    schema = sg.datasets.public_schema("adult", df)
    documented = [spec for spec in schema if spec.public]
    assert len(documented) == 9
    for spec in documented:
        seen = set(df[spec.name].dropna())
        assert seen <= set(spec.categories), spec.name  # the transcription has every value
        assert spec.nullable == bool(df[spec.name].isna().any()) or spec.nullable
    assert schema["age"].public is False  # bounds are not documented: left to the release

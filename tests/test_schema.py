"""Schema inference, editing, JSON round trip and validation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from synthgen import Schema
from synthgen.errors import DataError, SchemaError, SynthgenError


def test_infer_adult_kinds(adult):
    schema = Schema.infer(adult)
    assert schema["age"].kind == "numerical" and schema["age"].integer
    assert schema["age"].min == 17 and schema["age"].max == 90
    assert schema["workclass"].kind == "categorical" and schema["workclass"].nullable
    assert schema["income"].categories == ["<=50K", ">50K"]
    assert not schema["income"].nullable
    assert schema.names == list(adult.columns)


def test_infer_every_kind(mixed_frame):
    schema = Schema.infer(mixed_frame)
    kinds = {spec.name: spec.kind for spec in schema}
    assert kinds == {
        "user_id": "id",
        "age": "numerical",
        "income": "numerical",
        "score": "numerical",
        "city": "categorical",
        "member": "boolean",
        "joined": "datetime",
    }
    assert schema["income"].decimals == 2
    assert schema["score"].nullable and schema["city"].nullable
    assert not schema["age"].nullable


def test_json_round_trip(mixed_frame, tmp_path):
    schema = Schema.infer(mixed_frame)
    path = tmp_path / "schema.json"
    schema.to_json(str(path))
    again = Schema.from_json(str(path))
    assert again.to_dict() == schema.to_dict()
    assert json.loads(schema.to_json()) == schema.to_dict()


def test_edit_kind_and_learn_details(adult):
    schema = Schema.infer(adult)
    schema.set_kind("education-num", "categorical", adult["education-num"])
    assert schema["education-num"].kind == "categorical"
    assert schema["education-num"].categories == list(range(1, 17))
    with pytest.raises(SchemaError, match="unknown kind"):
        schema.set_kind("age", "text")


def test_infer_with_forced_kinds(adult):
    schema = Schema.infer(adult.head(200), kinds={"education-num": "categorical"})
    assert schema["education-num"].kind == "categorical"
    with pytest.raises(SchemaError, match="nope"):
        Schema.infer(adult.head(10), kinds={"nope": "id"})


def test_validate_reports_every_problem_at_once(adult):
    schema = Schema.infer(adult)
    bad = adult.head(50).copy()
    bad = bad.drop(columns=["sex"])
    bad["extra"] = 1
    bad.loc[0, "income"] = "unknown"
    bad["age"] = bad["age"].astype(object)
    bad.loc[1, "age"] = "old"
    bad.loc[2, "race"] = None
    with pytest.raises(SchemaError) as info:
        schema.validate(bad)
    message = str(info.value)
    for needle in ("'sex'", "'extra'", "'unknown'", "'old'", "'race'"):
        assert needle in message


def test_validate_bounds_only_when_asked(adult):
    schema = Schema.infer(adult)
    older = adult.head(10).copy()
    older.loc[0, "age"] = 120
    schema.validate(older)
    with pytest.raises(SchemaError, match="outside the schema bounds"):
        schema.validate(older, check_bounds=True)


@pytest.mark.parametrize(
    "frame, match",
    [
        (pd.DataFrame(), "no columns"),
        (pd.DataFrame({"a": []}), "no rows"),
        ("not a frame", "expected a pandas DataFrame"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "duplicate column"),
        (pd.DataFrame({0: [1, 2]}), "must be strings"),
        (pd.DataFrame({"x": [1.0, np.inf, 2.0]}), "infinite"),
        (pd.DataFrame({"m": [1, "a", 2.5, "b"]}), "mixes value types"),
    ],
)
def test_bad_frames_raise_clear_errors(frame, match):
    with pytest.raises(SynthgenError, match=match):
        Schema.infer(frame)


def test_all_null_column_is_kept_as_empty_categorical():
    schema = Schema.infer(pd.DataFrame({"a": [1, 2, 3], "empty": [np.nan] * 3}))
    assert schema["empty"].kind == "categorical"
    assert schema["empty"].categories == [] and schema["empty"].nullable


def test_high_cardinality_strings_are_ids():
    frame = pd.DataFrame({"customer": [f"c{i:05d}" for i in range(10_000)], "v": range(10_000)})
    schema = Schema.infer(frame)
    assert schema["customer"].kind == "id"
    assert schema["v"].kind == "numerical"


def test_malformed_schema_dicts():
    with pytest.raises(SchemaError, match="columns"):
        Schema.from_dict({"cols": []})
    with pytest.raises(SchemaError, match="unknown schema field"):
        Schema.from_dict({"columns": [{"name": "a", "kind": "numerical", "colour": "red"}]})
    with pytest.raises(SchemaError, match="not valid JSON"):
        Schema.from_json("{not json")
    with pytest.raises(DataError):
        Schema.infer(pd.DataFrame({"x": [np.inf]}))

"""Image sets: the ways in (arrays, folders, Parquet of PNGs, digits) and their validation."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from synthgen.errors import DataError, SchemaError, SynthgenError
from synthgen.images import ImageSchema, ImageSet, load_digits


def test_digits_are_bundled_and_scaled():
    digits = load_digits()
    assert len(digits) == 1797 and digits.schema.shape == (1, 8, 8)
    assert digits.schema.classes == tuple(str(k) for k in range(10))
    assert digits.images.min() == 0.0 and digits.images.max() == 1.0
    big = load_digits(32)
    assert big.images.shape == (1797, 1, 32, 32)
    assert np.array_equal(big.labels, digits.labels)
    with pytest.raises(DataError, match="8, 16 or 32"):
        load_digits(12)


def test_split_is_stratified_and_disjoint():
    digits = load_digits()
    rest, part = digits.split(0.1, seed=0)
    assert len(rest) + len(part) == len(digits)
    counts = np.bincount(part.labels, minlength=10)
    assert counts.min() >= 15 and counts.max() <= 20
    again = digits.split(0.1, seed=0)[1]
    assert np.array_equal(again.images, part.images)


def test_parquet_round_trip_keeps_pixels_labels_and_schema(tmp_path):
    digits = load_digits().subset(range(50))
    path = tmp_path / "digits.parquet"
    digits.to_parquet(path)
    table = pq.read_table(path)
    assert table.column_names == ["image", "label"]
    assert table.column("image").to_pylist()[0][:8] == b"\x89PNG\r\n\x1a\n"
    back = ImageSet.from_parquet(path)
    assert back.schema == digits.schema
    assert np.array_equal(back.to_uint8(), digits.to_uint8())
    assert np.array_equal(back.labels, digits.labels)


def test_rgb_arrays_and_folders(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(6, 8, 8, 3), dtype=np.uint8)
    labels = ["cat", "dog", "cat", "dog", "cat", "cat"]
    images = ImageSet.from_arrays(pixels, labels)
    assert images.schema.shape == (3, 8, 8) and images.schema.classes == ("cat", "dog")
    assert np.array_equal(images.to_uint8(), np.transpose(pixels, (0, 3, 1, 2)))
    for index, (array, label) in enumerate(zip(pixels, labels, strict=True)):
        folder = tmp_path / label
        folder.mkdir(exist_ok=True)
        Image.fromarray(array, mode="RGB").save(folder / f"{index}.png")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    loaded = ImageSet.from_folder(tmp_path)
    assert loaded.schema == images.schema
    assert sorted(loaded.label_names) == sorted(labels)
    # same pixels, grouped by folder
    order = np.argsort([f"{lab}{i}" for i, lab in enumerate(labels)], kind="stable")
    assert np.array_equal(
        np.sort(loaded.to_uint8(), axis=0), np.sort(images.to_uint8()[order], axis=0)
    )


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        ImageSet.from_folder(tmp_path / "missing")
    with pytest.raises(DataError, match="no class sub-folders"):
        ImageSet.from_folder(tmp_path)
    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a" / "x.png")
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(tmp_path / "a" / "y.png")
    with pytest.raises(DataError, match="differ in size"):
        ImageSet.from_folder(tmp_path)
    (tmp_path / "a" / "y.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read image"):
        ImageSet.from_folder(tmp_path)


@pytest.mark.parametrize(
    "images, labels, words",
    [
        (np.full((2, 1, 4, 4), 1.5, np.float32), [0, 0], "outside \\[0, 1\\]"),
        (np.full((2, 1, 4, 4), np.nan, np.float32), [0, 0], "NaN"),
        (np.zeros((2, 1, 4, 4), np.float32), [0], "labels for 2 images"),
        (np.zeros((2, 1, 4, 4), np.float32), [0, 9], "label code 9"),
        (np.zeros((2, 1, 4, 5), np.float32), [0, 0], "schema says"),
        (np.zeros((2, 1, 4, 4), np.int32), [0, 0], "floats"),
    ],
)
def test_image_set_validation(images, labels, words):
    with pytest.raises(DataError, match=words):
        ImageSet(images, np.asarray(labels), ImageSchema(4, 4, 1, ("a", "b")))


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"height": 1, "width": 4}, "outside"),
        ({"height": 4, "width": 4, "channels": 2}, "channels"),
        ({"height": 4, "width": 4, "classes": ()}, "at least one class"),
        ({"height": 4, "width": 4, "classes": ("a", "a")}, "more than once"),
        ({"height": 4, "width": 4, "value_range": (0, 255)}, "value_range"),
        ({"height": 4.5, "width": 4}, "whole number"),
    ],
)
def test_schema_validation(kwargs, words):
    with pytest.raises(SchemaError, match=words):
        ImageSchema(**kwargs)


def test_schema_json_round_trip_and_bad_dicts():
    schema = ImageSchema(16, 16, 3, ("x", "y"))
    assert ImageSchema.from_dict(schema.to_dict()) == schema
    with pytest.raises(SchemaError, match="unknown"):
        ImageSchema.from_dict({"height": 4, "width": 4, "depth": 3})
    with pytest.raises(SchemaError, match="lacks"):
        ImageSchema.from_dict({"height": 4})
    with pytest.raises(DataError, match="not one of the image classes"):
        schema.code_of("z")


def test_from_arrays_refuses_unknown_labels_and_odd_shapes():
    with pytest.raises(DataError, match="not among the classes"):
        ImageSet.from_arrays(np.zeros((2, 4, 4), np.uint8), ["a", "b"], classes=["a"])
    with pytest.raises(DataError, match="not understood"):
        ImageSet.from_arrays(np.zeros((2, 4), np.uint8))
    with pytest.raises(DataError, match="not numbers"):
        ImageSet.from_arrays(np.zeros((2, 4, 4), bool))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 5),
    side=st.integers(1, 9),
    values=st.one_of(st.floats(-2, 2), st.floats(allow_nan=True), st.integers(0, 300)),
    labels=st.lists(st.one_of(st.integers(-3, 3), st.text(max_size=2)), max_size=6),
)
def test_from_arrays_fuzz_only_raises_synthgen_errors(n, side, values, labels):
    """Whatever arrays come in, the result is a valid set or a SynthgenError."""
    array = np.full((n, side, side), values)
    try:
        out = ImageSet.from_arrays(array, labels if labels else None)
    except SynthgenError:
        return
    assert out.images.dtype == np.float32 and len(out) == n
    assert out.images.size == 0 or (out.images.min() >= 0 and out.images.max() <= 1)

"""Model files: safe format, exact reload, clear errors for anything else."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

import synthgen as sg
from synthgen.errors import ModelFileError
from synthgen.io import FORMAT_VERSION, read_header


@pytest.fixture(scope="module")
def model(adult_small):
    return sg.TVAE(epochs=2, batch_size=256, seed=0, device="cpu").fit(adult_small)


def test_save_load_gives_identical_samples(model, tmp_path):
    path = tmp_path / "adult.tvae"
    model.save(str(path))
    loaded = sg.load_model(str(path))
    assert isinstance(loaded, sg.TVAE)
    assert loaded.get_params()["epochs"] == 2
    assert loaded.schema.to_dict() == model.schema.to_dict()
    pd.testing.assert_frame_equal(loaded.sample(300, seed=9), model.sample(300, seed=9))
    assert loaded.training_log.epochs == model.training_log.epochs


def test_file_is_safetensors_with_json_header(model, tmp_path):
    path = tmp_path / "m.synth"
    model.save(str(path))
    header = read_header(str(path))
    assert header["format_version"] == FORMAT_VERSION and header["backend"] == "tvae"
    raw = path.read_bytes()
    assert b"pickle" not in raw[:2000] and raw[8:9] == b"{"  # safetensors: u64 size + JSON


def test_not_a_model_files(tmp_path):
    csv = tmp_path / "data.csv"
    csv.write_text("a,b\n1,2\n")
    with pytest.raises(ModelFileError, match="not a synthgen model"):
        sg.load_model(str(csv))
    with pytest.raises(ModelFileError, match="does not exist"):
        sg.load_model(str(tmp_path / "missing.synth"))
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ModelFileError, match="not a synthgen model"):
        sg.load_model(str(foreign))


def test_newer_format_version_is_refused(model, tmp_path):
    path = tmp_path / "future.synth"
    model.save(str(path))
    header = read_header(str(path))
    header["format_version"] = FORMAT_VERSION + 1
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    save_file(tensors, str(path), metadata={"synthgen": json.dumps(header)})
    with pytest.raises(ModelFileError, match="upgrade synthgen"):
        sg.load_model(str(path))


def test_failed_save_keeps_the_old_file(model, tmp_path, monkeypatch):
    path = tmp_path / "keep.synth"
    model.save(str(path))
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("synthgen.io.save_file", boom)
    with pytest.raises(OSError):
        model.save(str(path))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.synth"]


def test_unfitted_model_cannot_be_saved(tmp_path):
    with pytest.raises(sg.errors.NotFittedError):
        sg.TVAE().save(str(tmp_path / "x.synth"))

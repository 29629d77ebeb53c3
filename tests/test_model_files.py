"""Model files: safe format, exact reload, and a clear ModelFileError for anything else.

Every failure test asserts the error class and that the message names the file. Files
are damaged the way a user (or an attacker) would: by editing bytes, or by rewriting
the header and recomputing the digests so that only the deeper checks can catch it.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import synthgen as sg
from synthgen import io as model_io
from synthgen.errors import ConfigError, DataError, ModelFileError, SynthgenError
from synthgen.io import FORMAT_VERSION, header_digest, read_header, tensor_digest
from synthgen.models import MAX_PARAMETERS, check_network_tensors
from synthgen.paths import check_writable


# ---------------------------------------------------------------------- fixtures & helpers
def _frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": np.round(rng.lognormal(10, 1, n), 2),
            "city": rng.choice(["Paris", "Lyon", "Nice"], n),
            "member": rng.random(n) < 0.3,
        }
    )


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return _frame()


@pytest.fixture(scope="module")
def model(frame):
    return sg.TVAE(epochs=1, batch_size=50, seed=0, device="cpu").fit(frame)


@pytest.fixture(scope="module")
def saved_bytes(model, tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("saved") / "model.synth"
    model.save(str(path))
    return path.read_bytes()


@pytest.fixture()
def saved(saved_bytes, tmp_path) -> Path:
    """A fresh copy of the fixture model's file, free to damage."""
    path = tmp_path / "model.synth"
    path.write_bytes(saved_bytes)
    return path


def _parts(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Header and tensors read without any of synthgen's checks."""
    with safe_open(str(path), framework="pt") as handle:
        header = json.loads(handle.metadata()["synthgen"])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    return header, tensors


def _write(path: Path, header: Any, tensors: dict[str, torch.Tensor], digest: bool = True):
    """Write a (tampered) file; with ``digest`` the digests are recomputed as an attacker could."""
    if digest and isinstance(header, dict):
        header = dict(header)
        header["digest"] = {
            "algorithm": "sha256",
            "header": header_digest(header),
            "tensors": tensor_digest(tensors),
        }
    text = header if isinstance(header, str) else json.dumps(header)
    save_file(tensors, str(path), metadata={"synthgen": text})


def _as_v1(header: dict[str, Any]) -> dict[str, Any]:
    """The header as the code before format 2 wrote it: no digest, format_version 1."""
    old = {k: v for k, v in header.items() if k not in ("digest", "trained_on_device")}
    old["format_version"] = 1
    return old


def _fails(path: Path | str, match: str) -> ModelFileError:
    with pytest.raises(ModelFileError, match=match) as info:
        sg.load_model(str(path))
    assert str(path) in str(info.value), "the message must name the file"
    assert "\n" not in str(info.value)
    return info.value


def _net_weight(tensors: dict[str, torch.Tensor]) -> str:
    return next(k for k in sorted(tensors) if k.startswith("net.") and k.endswith("weight"))


# ---------------------------------------------------------------------- round trips
def test_save_load_gives_identical_samples(model, saved):
    loaded = sg.load_model(str(saved))
    assert isinstance(loaded, sg.TVAE)
    assert loaded.get_params()["epochs"] == 1
    assert loaded.schema.to_dict() == model.schema.to_dict()
    pd.testing.assert_frame_equal(loaded.sample(300, seed=9), model.sample(300, seed=9))
    assert loaded.training_log.epochs == model.training_log.epochs


@pytest.mark.parametrize(
    "make",
    [
        lambda: sg.CTGAN(epochs=1, batch_size=50, seed=0, device="cpu"),
        lambda: sg.TabDDPM(steps=2, batch_size=50, seed=0, device="cpu"),
        lambda: sg.TabularAR(epochs=1, batch_size=50, seed=0, device="cpu"),
    ],
    ids=["ctgan", "tabddpm", "tabular_ar"],
)
def test_every_backend_round_trips_through_the_checks(make, frame, tmp_path):
    fitted = make().fit(frame)
    path = tmp_path / "m.synth"
    fitted.save(str(path))
    loaded = sg.load_model(str(path))
    assert type(loaded) is type(fitted)
    pd.testing.assert_frame_equal(loaded.sample(50, seed=3), fitted.sample(50, seed=3))


def test_file_is_safetensors_with_json_header_and_digests(saved):
    header = read_header(str(saved))
    assert header["format_version"] == FORMAT_VERSION == 2 and header["backend"] == "tvae"
    assert set(header["digest"]) == {"algorithm", "header", "tensors"}
    raw = saved.read_bytes()
    assert b"pickle" not in raw[:2000] and raw[8:9] == b"{"  # safetensors: u64 size + JSON


def test_version_1_file_without_digest_still_loads(model, saved, tmp_path):
    header, tensors = _parts(saved)
    old = tmp_path / "v1.synth"
    _write(old, _as_v1(header), tensors, digest=False)
    assert "digest" not in read_header(str(old))
    loaded = sg.load_model(str(old))
    pd.testing.assert_frame_equal(loaded.sample(200, seed=4), model.sample(200, seed=4))


# ---------------------------------------------------------------------- device
def test_model_saved_with_cuda_device_loads_here_without_options(model, saved, tmp_path):
    header, tensors = _parts(saved)
    assert header["params"]["device"] == "auto"  # not baked into new files
    assert header["trained_on_device"] == "cpu"
    header["params"]["device"] = "cuda"  # as an older file trained on a GPU says
    cuda_file = tmp_path / "cuda.synth"
    _write(cuda_file, header, tensors)
    loaded = sg.load_model(str(cuda_file))
    assert loaded.get_params()["device"] == "auto"
    assert loaded.device_.type == ("cuda" if torch.cuda.is_available() else "cpu")
    on_cpu = sg.load_model(str(cuda_file), device="cpu")
    assert on_cpu.get_params()["device"] == "cpu" and on_cpu.device_.type == "cpu"
    pd.testing.assert_frame_equal(on_cpu.sample(100, seed=2), model.sample(100, seed=2))


def test_bad_device_argument_is_a_config_error(saved):
    with pytest.raises(ConfigError, match="device"):
        sg.load_model(str(saved), device="tpu")


# ---------------------------------------------------------------------- not a model file
def test_missing_path(tmp_path):
    _fails(tmp_path / "missing.synth", "does not exist")


def test_directory(tmp_path):
    _fails(tmp_path, "is a directory")


def test_zero_bytes(tmp_path):
    empty = tmp_path / "empty.synth"
    empty.write_bytes(b"")
    _fails(empty, "empty")


def test_csv_and_foreign_safetensors(tmp_path):
    csv = tmp_path / "data.csv"
    csv.write_text("a,b\n1,2\n")
    _fails(csv, "not a synthgen model")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    _fails(foreign, "not a synthgen model")


class _Marker:
    """Unpickling this creates a file: proof that a pickle was (wrongly) loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickle_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    evil = tmp_path / "evil.synth"
    evil.write_bytes(pickle.dumps(_Marker(str(marker))))
    _fails(evil, "pickle")
    assert not marker.exists()
    archive = tmp_path / "torch.synth"
    torch.save({"w": torch.zeros(2)}, str(archive))
    _fails(archive, "zip archive")


@pytest.mark.parametrize("keep", [0.5, 0.98])
def test_truncated_file(saved, keep):
    raw = saved.read_bytes()
    header_end = 8 + int.from_bytes(raw[:8], "little")
    cut = int(header_end * keep) if keep < 0.9 else header_end + (len(raw) - header_end) // 2
    saved.write_bytes(raw[:cut])
    _fails(saved, "truncated")


def test_few_bytes(tmp_path):
    short = tmp_path / "short.synth"
    short.write_bytes(b"abc")
    _fails(short, "only 3 bytes")


# ---------------------------------------------------------------------- damaged headers
def test_flipped_byte_breaking_the_header_json(saved):
    raw = bytearray(saved.read_bytes())
    at = raw.index(b'"__metadata__"')
    raw[at] = ord("#")
    saved.write_bytes(bytes(raw))
    _fails(saved, "not valid JSON")


def test_edited_header_value_breaks_the_header_digest(saved):
    raw = saved.read_bytes()
    edited = raw.replace(b'\\"loss_factor\\": 2.0', b'\\"loss_factor\\": 9.0', 1)
    assert edited != raw
    saved.write_bytes(edited)
    _fails(saved, re.escape("is damaged: its content (header) does not match the digest"))


def test_damaged_tensor_bytes_break_the_tensor_digest(saved):
    raw = bytearray(saved.read_bytes())
    payload = 8 + int.from_bytes(raw[:8], "little")
    middle = payload + (len(raw) - payload) // 2
    for at in range(middle, middle + 4):
        raw[at] ^= 0xFF
    saved.write_bytes(bytes(raw))
    _fails(saved, re.escape("(tensor data) does not match the digest written when it was saved"))


def test_header_that_is_not_json(saved):
    _, tensors = _parts(saved)
    _write(saved, "{not json", tensors)
    _fails(saved, "synthgen header is not valid JSON")


def test_header_that_is_not_an_object(saved):
    _, tensors = _parts(saved)
    _write(saved, "[1, 2]", tensors)
    _fails(saved, "not an object")


@pytest.mark.parametrize("version", ["two", 2.5, True, 0, None])
def test_bad_format_version(saved, version):
    header, tensors = _parts(saved)
    header["format_version"] = version
    _write(saved, header, tensors)
    _fails(saved, "format_version .* is not a positive integer")


def test_newer_format_version_is_refused(saved):
    header, tensors = _parts(saved)
    header["format_version"] = FORMAT_VERSION + 1
    _write(saved, header, tensors)
    _fails(saved, "upgrade synthgen")


def test_version_2_file_without_digest_is_damaged(saved):
    header, tensors = _parts(saved)
    del header["digest"]
    _write(saved, header, tensors, digest=False)
    _fails(saved, "no valid sha256 digest")


@pytest.mark.parametrize("key", ["backend", "params", "transform", "training_log"])
def test_missing_header_key(saved, key):
    header, tensors = _parts(saved)
    del header[key]
    _write(saved, header, tensors)
    _fails(saved, f"has no '{key}' entry")


def test_header_key_of_the_wrong_type(saved):
    header, tensors = _parts(saved)
    header["params"] = ["epochs", 1]
    _write(saved, header, tensors)
    _fails(saved, "'params' entry is a list, expected a dict")


def test_unknown_backend(saved):
    header, tensors = _parts(saved)
    header["backend"] = "gpt"
    _write(saved, header, tensors)
    _fails(saved, "'gpt' model, which this synthgen does not know")


def test_unknown_parameter(saved):
    header, tensors = _parts(saved)
    header["params"]["bogus"] = 1
    _write(saved, header, tensors)
    _fails(saved, r"parameter\(s\) \['bogus'\] that TVAE does not accept")


def test_invalid_parameter_is_named(saved):
    header, tensors = _parts(saved)
    header["params"]["embedding_dim"] = -3
    _write(saved, header, tensors)
    _fails(saved, "invalid TVAE parameter 'embedding_dim'")


def test_transform_state_that_cannot_be_restored(saved):
    header, tensors = _parts(saved)
    header["transform"]["columns"] = {}
    _write(saved, header, tensors)
    _fails(saved, "transform state cannot be restored")


def test_transform_with_an_invalid_schema_is_one_line(saved):
    header, tensors = _parts(saved)
    city = next(c for c in header["transform"]["schema"]["columns"] if c["name"] == "city")
    city["categories"] = [{"not": "a category"}]
    _write(saved, header, tensors)
    _fails(saved, "transform state cannot be restored .*SchemaError.*'city'")


# ---------------------------------------------------------------------- tensors
def test_missing_network_tensor(saved):
    header, tensors = _parts(saved)
    del tensors[_net_weight(tensors)]
    _write(saved, header, tensors)
    _fails(saved, "are missing")


def test_extra_network_tensor(saved):
    header, tensors = _parts(saved)
    tensors["net.encoder.intruder"] = torch.zeros(3)
    _write(saved, header, tensors)
    _fails(saved, "net.encoder.intruder")


def test_foreign_tensor_name(saved):
    header, tensors = _parts(saved)
    tensors["payload"] = torch.zeros(3)
    _write(saved, header, tensors)
    _fails(saved, "unexpected tensor.*'payload'")


@pytest.mark.parametrize("change", ["shape", "dtype"])
def test_network_tensor_of_the_wrong_shape_or_dtype(saved, change):
    header, tensors = _parts(saved)
    name = _net_weight(tensors)
    weight = tensors[name]
    tensors[name] = (
        torch.zeros(weight.shape[0] + 1, *weight.shape[1:])
        if change == "shape"
        else (weight.double())
    )
    _write(saved, header, tensors)
    _fails(saved, re.escape(f"tensor {name!r} is"))


def test_absurd_network_size_is_refused_before_allocating(saved):
    header, tensors = _parts(saved)
    header["params"]["compress_dims"] = [2**40]
    _write(saved, header, tensors)
    _fails(saved, "ask for networks with a tensor of .* values while the file holds")


def test_more_than_max_parameters_is_refused():
    huge = {"net.a.weight": torch.empty(2**20, 2**12, device="meta")}
    assert huge["net.a.weight"].numel() > MAX_PARAMETERS
    with pytest.raises(ModelFileError, match="more than"):
        check_network_tensors("m.synth", huge, huge)


def test_nan_weights_in_a_file_without_digest(saved):
    header, tensors = _parts(saved)
    name = _net_weight(tensors)
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    _write(saved, _as_v1(header), tensors, digest=False)
    _fails(saved, re.escape(f"tensor {name!r} holds NaN or infinite values"))


def test_nothing_from_a_damaged_file_leaks_a_traceback(saved_bytes, tmp_path):
    """Flip bytes at many places: every outcome is a model or a ModelFileError."""
    rng = np.random.default_rng(0)
    for trial in range(40):
        raw = bytearray(saved_bytes)
        for at in rng.integers(0, len(raw), size=3):
            raw[at] ^= int(rng.integers(1, 256))
        path = tmp_path / f"fuzz{trial}.synth"
        path.write_bytes(bytes(raw))
        try:
            sg.load_model(str(path))
        except ModelFileError as exc:
            assert str(path) in str(exc)


# ---------------------------------------------------------------------- saving
def test_save_into_a_missing_folder_fails_before_writing(model, tmp_path):
    target = tmp_path / "nodir" / "m.synth"
    with pytest.raises(ModelFileError) as info:
        model.save(str(target))
    assert str(info.value) == (
        f"cannot write model to {str(target)!r}: folder {str(target.parent)!r} does not exist; "
        "create it first"
    )
    assert list(tmp_path.iterdir()) == []


def test_relative_missing_folder_message(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ModelFileError,
        match=re.escape(
            "cannot write model to 'nodir/m.synth': folder 'nodir' does not exist; create it first"
        ),
    ):
        model.save("nodir/m.synth")


def test_save_onto_a_directory_or_under_a_file(model, tmp_path):
    with pytest.raises(ModelFileError, match="is a directory"):
        model.save(str(tmp_path))
    a_file = tmp_path / "notadir.txt"
    a_file.write_text("x")
    with pytest.raises(ModelFileError, match="is a file, not a folder"):
        model.save(str(a_file / "m.synth"))
    assert [p.name for p in tmp_path.iterdir()] == ["notadir.txt"]


def test_save_into_an_unwritable_folder(model, tmp_path, monkeypatch):
    monkeypatch.setattr("synthgen.paths.os.access", lambda *args, **kwargs: False)
    with pytest.raises(ModelFileError, match="is not writable"):
        model.save(str(tmp_path / "m.synth"))
    assert list(tmp_path.iterdir()) == []


def test_check_writable_error_classes(tmp_path):
    missing = str(tmp_path / "no" / "out.csv")
    with pytest.raises(DataError, match="cannot write report to"):
        check_writable(missing, what="report")
    with pytest.raises(ConfigError, match="cannot write synthetic data to"):
        check_writable(missing, what="synthetic data", error=ConfigError)
    with pytest.raises(ModelFileError, match="not a file path"):
        check_writable(None)  # type: ignore[arg-type]
    assert check_writable(tmp_path / "ok.synth") == str(tmp_path / "ok.synth")


def test_failed_save_leaves_no_file_and_no_tmp_file(model, tmp_path, monkeypatch):
    def partial_then_fail(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("synthgen.io.save_file", partial_then_fail)
    target = tmp_path / "new.synth"
    with pytest.raises(ModelFileError, match="disk full") as info:
        model.save(str(target))
    assert str(target) in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_the_old_file(model, saved, monkeypatch):
    before = saved.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("synthgen.io.save_file", boom)
    with pytest.raises(OSError):
        model.save(str(saved))
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == ["model.synth"]


def test_unfitted_model_cannot_be_saved(tmp_path):
    with pytest.raises(sg.errors.NotFittedError):
        sg.TVAE().save(str(tmp_path / "x.synth"))


# ---------------------------------------------------------------------- JSON safety
def test_numpy_scalars_in_params_are_saved_as_numbers(model, tmp_path, monkeypatch):
    monkeypatch.setattr(model, "seed", np.int64(0))
    path = tmp_path / "np.synth"
    model.save(str(path))
    seed = read_header(str(path))["params"]["seed"]
    assert seed == 0 and type(seed) is int
    assert sg.load_model(str(path)).get_params()["seed"] == 0


def test_unsaveable_transform_value_names_the_column(model, tmp_path, monkeypatch):
    meta, tensors = model.transformer_.state_dict()
    meta = json.loads(json.dumps(meta))
    meta["columns"]["city"]["bad"] = b"\x00bytes"
    monkeypatch.setattr(model.transformer_, "state_dict", lambda: (meta, tensors))
    with pytest.raises(ModelFileError, match=r"columns\.city\.bad holds b'\\x00bytes'"):
        model.save(str(tmp_path / "m.synth"))
    assert list(tmp_path.iterdir()) == []


def test_transform_json_error_is_reported_with_the_column(model, tmp_path, monkeypatch):
    schema = model.transformer_.schema_
    data = schema.to_dict()
    city = next(c for c in data["columns"] if c["name"] == "city")
    city["categories"] = [b"Lyon", "Nice"]

    def refuse():
        raise TypeError("Object of type bytes is not JSON serializable")

    monkeypatch.setattr(model.transformer_, "state_dict", refuse)
    monkeypatch.setattr(schema, "to_dict", lambda: data)
    with pytest.raises(ModelFileError, match=r"\['city'\]\.categories\[0\] holds b'Lyon'"):
        model.save(str(tmp_path / "m.synth"))


def test_odd_object_columns_never_raise_a_raw_type_error(tmp_path):
    from datetime import date
    from decimal import Decimal

    n = 60
    df = pd.DataFrame(
        {
            "x": np.arange(n, dtype=float),
            "raw": [b"a", b"b", b"c"] * (n // 3),
            "money": [Decimal("1.5"), Decimal("2.5")] * (n // 2),
            "day": [date(2020, 1, 1 + i % 28) for i in range(n)],
        }
    )
    path = tmp_path / "odd.synth"
    try:
        fitted = sg.TVAE(epochs=1, batch_size=30, device="cpu").fit(df)
        fitted.save(str(path))
    except SynthgenError:
        assert not path.exists()
        return
    loaded = sg.load_model(str(path))
    assert list(loaded.sample(5, seed=0).columns) == list(df.columns)


def test_io_imports_neither_backends_nor_models():
    """The file format stays below the backends: no import cycle is possible."""
    import ast

    tree = ast.parse(Path(model_io.__file__).read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert "synthgen.paths" in imported
    assert not [m for m in imported if m.startswith(("synthgen.backends", "synthgen.models"))]

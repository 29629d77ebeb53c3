"""Model files: one safetensors file holding tensors plus a JSON header.

Loading a model must never execute code, so there is no pickle anywhere: the
safetensors format stores raw tensors, and everything else (backend name, constructor
parameters, the transform's learned categories and mixtures, the training log) is JSON
in the file's metadata. A format version guards against files from incompatible
releases, and SHA-256 digests of the header and of the tensors catch a file damaged
after it was written (a flipped weight byte would otherwise load and sample garbage).

This module is the file format only: it writes and reads headers and tensors and
validates them, and knows nothing about backends (``synthgen.models.load_model`` turns a
file back into a model). That keeps ``backends -> io`` a one-way import.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from synthgen.errors import ModelFileError
from synthgen.paths import check_writable

FORMAT = "synthgen.model"
#: 2 added the digests; version 1 files (no digest) still load.
FORMAT_VERSION = 2
DIGEST_ALGORITHM = "sha256"
#: Keys every header must hold, with the JSON type each must have.
REQUIRED_KEYS: dict[str, type] = {
    "backend": str,
    "params": dict,
    "transform": dict,
    "training_log": dict,
}
#: safetensors refuses larger headers too; anything bigger is not a model file.
MAX_HEADER_BYTES = 100_000_000
#: Tensor name prefixes whose values are weights: NaN / inf there is damage.
WEIGHT_PREFIXES = ("net.", "extra.")
_PICKLE_PROTOCOLS = (2, 3, 4, 5)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (the CLI prints errors as a single line)."""
    text = ""
    for part in (p.strip() for p in str(exc).splitlines()):
        if part:
            text += part if not text else (" " if text.endswith(":") else "; ") + part
    return text


# ---------------------------------------------------------------------- JSON safety
def _describe(where: str) -> str:
    return where or "the header"


def to_json_safe(value: Any, where: str = "", path: str = "") -> Any:
    """``value`` with tuples as lists and numpy scalars as Python numbers.

    Why: ``json.dumps`` raises a bare ``TypeError`` for numpy scalars (common in learned
    state) and for values a model file cannot hold (bytes, Decimal, dates). Converting
    what is safe and naming the location of what is not gives the user a message that
    says which column or parameter to fix, and is raised before anything is written.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, list | tuple):
        return [
            to_json_safe(item, _item_where(where, i, item), path) for i, item in enumerate(value)
        ]
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if isinstance(key, np.integer):
                key = int(key)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise _unsaveable(path, f"{_describe(where)} has a key {key!r}", key)
            result[key] = to_json_safe(item, f"{where}.{key}" if where else str(key), path)
        return result
    raise _unsaveable(path, _describe(where), value)


def _item_where(where: str, index: int, item: Any) -> str:
    """``columns[3]``, or ``columns['city']`` when the item is a named entry."""
    if isinstance(item, dict) and isinstance(item.get("name"), str):
        return f"{where}[{item['name']!r}]"
    return f"{where}[{index}]"


def _unsaveable(path: str, where: str, value: Any) -> ModelFileError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    target = f" to {path!r}" if path else ""
    return ModelFileError(
        f"cannot save model{target}: {where} holds {shown} of type {type(value).__name__}, "
        "which a model file cannot store as JSON; convert that column to str, a number or "
        "a datetime64 column before fit"
    )


def canonical_json(value: Any) -> str:
    """The one serialisation the header digest is computed over (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------------- digests
def header_digest(header: Mapping[str, Any]) -> str:
    """SHA-256 of everything in the header except the digest itself."""
    body = {k: v for k, v in header.items() if k != "digest"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the sorted tensor names, dtypes, shapes and raw bytes."""
    hasher = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        hasher.update(canonical_json([name, str(tensor.dtype), list(tensor.shape)]).encode())
        hasher.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return hasher.hexdigest()


# ---------------------------------------------------------------------- writing
def write_model_file(
    path: str | os.PathLike, header: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
) -> None:
    """Write ``header`` (JSON-safe) and ``tensors`` atomically, with format and digests.

    The file is written next to ``path`` under a temporary name and renamed over it, so
    a failed write never leaves a partial file or replaces a good one.
    """
    text = check_writable(path, "model")
    tensors = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    body = {**header, "format": FORMAT, "format_version": FORMAT_VERSION}
    body.pop("digest", None)
    # digest what the reader will see: after a JSON round trip (int keys become strings)
    body = json.loads(json.dumps(to_json_safe(body, "", text)))
    body["digest"] = {
        "algorithm": DIGEST_ALGORITHM,
        "header": header_digest(body),
        "tensors": tensor_digest(tensors),
    }
    try:
        metadata = json.dumps(body)
    except (TypeError, ValueError) as exc:  # to_json_safe let through what json cannot hold
        raise ModelFileError(f"cannot save model to {text!r}: {one_line(exc)}") from None
    tmp = f"{text}.tmp-{os.getpid()}"
    try:
        save_file(tensors, tmp, metadata={"synthgen": metadata})
        os.replace(tmp, text)
    except (OSError, SafetensorError) as exc:
        raise ModelFileError(f"cannot write model to {text!r}: {one_line(exc)}") from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_model(model: Any, path: str | os.PathLike) -> None:
    """Write a fitted ``model`` to ``path``; the target is checked before any work.

    The device the model was trained on is recorded for information only: the saved
    ``device`` parameter is "auto", so a model trained on CUDA loads on a CPU machine.
    """
    from synthgen import __version__

    text = check_writable(path, "model")
    transform_meta, tensors = _transform_state(model, text)
    tensors = dict(tensors)
    for name, module in model._modules().items():
        for key, value in module.state_dict().items():
            # a copy: parameters may be views of one shared training buffer
            tensors[f"net.{name}.{key}"] = value.detach().cpu().clone()
    extra_meta, extra_tensors = model._extra_state()
    tensors.update({f"extra.{k}": v.detach().cpu().contiguous() for k, v in extra_tensors.items()})
    params = dict(model.get_params())
    params.pop("dp", None)
    params["device"] = "auto"
    header = {
        "synthgen_version": __version__,
        "backend": model.backend_name,
        "params": to_json_safe(params, "params", text),
        "transform": to_json_safe(transform_meta, "transform", text),
        "training_log": to_json_safe(model.training_log_.to_dict(), "training_log", text),
        "extra": to_json_safe(extra_meta, "extra", text),
        "trained_on_device": str(getattr(model, "device_", "cpu")),
    }
    spent = getattr(model, "privacy_spent_", None)
    if spent is not None:  # the DP receipt travels with the model it describes
        header["privacy_spent"] = to_json_safe(spent.to_dict(), "privacy_spent", text)
    write_model_file(text, header, tensors)


def _transform_state(model: Any, path: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The transform's state, or a ``ModelFileError`` naming the column it cannot save."""
    transformer = model.transformer_
    try:
        return transformer.state_dict()
    except (TypeError, ValueError) as exc:  # the transform's own json.dumps check
        schema = getattr(transformer, "schema_", None)
        if schema is not None:
            to_json_safe(schema.to_dict(), "the schema", path)
        for name, encoder in getattr(transformer, "encoders_", {}).items():
            to_json_safe(encoder.state_dict()[0], f"the state of column {name!r}", path)
        raise ModelFileError(
            f"cannot save model to {path!r}: its transform state: {one_line(exc)}"
        ) from None


# ---------------------------------------------------------------------- reading
def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The validated JSON header of a model file (``ModelFileError`` when it is not one)."""
    text, _ = _check_file(path)
    header, _ = _read_safetensors_header(text)
    return header


def read_model_file(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Header and tensors of a model file, both verified against the stored digests.

    Files from format version 1 carry no digest; their weights are checked for NaN and
    infinity instead, the most visible kind of damage.
    """
    text, _ = _check_file(path)
    header, _ = _read_safetensors_header(text)
    tensors = _read_tensors(text)
    digest = header.get("digest")
    if digest is not None:
        if tensor_digest(tensors) != digest["tensors"]:
            raise _damaged(text, "tensor data")
    else:
        check_finite(text, tensors)
    return header, tensors


def check_finite(path: str, tensors: Mapping[str, torch.Tensor]) -> None:
    """Refuse NaN / inf weights (a file without digest may be damaged unnoticed)."""
    for name in sorted(tensors):
        tensor = tensors[name]
        weight = name.startswith(WEIGHT_PREFIXES) and tensor.is_floating_point()
        if weight and not bool(torch.isfinite(tensor).all()):
            raise ModelFileError(
                f"{path!r} is damaged: tensor {name!r} holds NaN or infinite values; "
                "re-save the model"
            )


def _damaged(path: str, part: str) -> ModelFileError:
    return ModelFileError(
        f"{path!r} is damaged: its content ({part}) does not match the digest written when "
        "it was saved; re-save the model"
    )


def _check_file(path: Any) -> tuple[str, int]:
    """The path as a string and the file's size, once it is known to be a readable file."""
    if not isinstance(path, str | os.PathLike):
        raise ModelFileError(f"{path!r} is not a file path; give the file written by model.save")
    text = os.fspath(path)
    if not isinstance(text, str):
        text = os.fsdecode(text)
    if not os.path.exists(text):
        raise ModelFileError(f"model file {text!r} does not exist")
    if os.path.isdir(text):
        raise ModelFileError(
            f"{text!r} is a directory, not a model file; give the file written by model.save"
        )
    if not os.path.isfile(text):
        raise ModelFileError(f"{text!r} is not a regular file; give the file written by model.save")
    size = os.path.getsize(text)
    if size == 0:
        raise ModelFileError(
            f"{text!r} is empty (zero bytes): not a model file; the save that wrote it did not "
            "finish, re-save the model"
        )
    return text, size


def _read_safetensors_header(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parse the safetensors header by hand, so each kind of damage gets its own message.

    Returns the validated synthgen header and the tensor table.
    """
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as handle:
            start = handle.read(8)
            n = int.from_bytes(start, "little") if len(start) == 8 else 0
            raw = handle.read(n if 2 <= n <= MAX_HEADER_BYTES else 8)
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path!r}: {exc.strerror or exc}") from None
    _sniff_foreign(path, start + raw[:8])
    if len(start) < 8:
        raise ModelFileError(
            f"{path!r} is truncated or not a model file: it holds only {size} bytes"
        )
    if not 2 <= n <= MAX_HEADER_BYTES or raw[:1] != b"{":
        raise ModelFileError(
            f"{path!r} is not a synthgen model file (expected a file written by model.save)"
        )
    if 8 + n > size:
        raise ModelFileError(
            f"{path!r} is truncated: its header alone needs {8 + n} bytes but the file holds "
            f"{size}; re-save the model"
        )
    table = _parse_json(path, raw[:n], "file header")
    metadata = table.pop("__metadata__", None) or {}
    _check_tensor_table(path, table, size - 8 - n)
    if not isinstance(metadata, dict) or "synthgen" not in metadata:
        raise ModelFileError(f"{path!r} is a safetensors file but not a synthgen model")
    header = _parse_json(path, str(metadata["synthgen"]).encode("utf-8"), "synthgen header")
    validate_header(path, header)
    return header, table


def _sniff_foreign(path: str, start: bytes) -> None:
    """Name the usual wrong files (pickles, torch.save archives) instead of a vague error."""
    if start[:1] == b"\x80" and len(start) > 1 and start[1] in _PICKLE_PROTOCOLS:
        raise ModelFileError(
            f"{path!r} is a Python pickle, not a synthgen model file; synthgen never unpickles "
            "files (it could run code): save models with model.save"
        )
    if start[:4] == b"PK\x03\x04":
        raise ModelFileError(
            f"{path!r} is a zip archive (e.g. torch.save), not a synthgen model file; synthgen "
            "never unpickles files: save models with model.save"
        )


def _parse_json(path: str, raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(
            f"{path!r} is damaged: its {what} is not valid JSON ({one_line(exc)}); "
            "re-save the model"
        ) from None
    if not isinstance(value, dict):
        raise ModelFileError(
            f"{path!r} is damaged: its {what} is a JSON {type(value).__name__}, not an object; "
            "re-save the model"
        )
    return value


def _check_tensor_table(path: str, table: dict[str, Any], payload: int) -> None:
    """Every tensor entry well formed and inside the file (else: truncated or damaged)."""
    end = 0
    for name, entry in table.items():
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        ):
            raise ModelFileError(
                f"{path!r} is damaged: the entry of tensor {name!r} is malformed; re-save the model"
            )
        end = max(end, offsets[1])
    if end > payload:
        raise ModelFileError(
            f"{path!r} is truncated: its tensors need {end} bytes of data but the file holds "
            f"{payload}; re-save the model"
        )


def validate_header(path: str, header: dict[str, Any]) -> None:
    """Format, version, required keys and (version 2 on) the header digest."""
    if header.get("format") != FORMAT:
        raise ModelFileError(f"{path!r} is not a synthgen model (format {header.get('format')!r})")
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(
            f"{path!r} is damaged: its format_version {version!r} is not a positive integer; "
            "re-save the model"
        )
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path!r} was written by synthgen {header.get('synthgen_version')} with model "
            f"format {version}; this synthgen reads up to {FORMAT_VERSION}: upgrade synthgen"
        )
    if version >= 2:
        _check_header_digest(path, header)
    for key, kind in REQUIRED_KEYS.items():
        if key not in header:
            raise ModelFileError(f"{path!r} is damaged: its header has no {key!r} entry")
        if not isinstance(header[key], kind):
            raise ModelFileError(
                f"{path!r} is damaged: its header's {key!r} entry is a "
                f"{type(header[key]).__name__}, expected a {kind.__name__}"
            )
    if not isinstance(header.get("extra", {}), dict):
        raise ModelFileError(f"{path!r} is damaged: its header's 'extra' entry is not an object")


def _check_header_digest(path: str, header: dict[str, Any]) -> None:
    digest = header.get("digest")
    if (
        not isinstance(digest, dict)
        or digest.get("algorithm") != DIGEST_ALGORITHM
        or not isinstance(digest.get("header"), str)
        or not isinstance(digest.get("tensors"), str)
    ):
        raise ModelFileError(
            f"{path!r} is damaged: its header has no valid {DIGEST_ALGORITHM} digest (format "
            f"version {header['format_version']} files always carry one); re-save the model"
        )
    if header_digest(header) != digest["header"]:
        raise _damaged(path, "header")


def _read_tensors(path: str) -> dict[str, torch.Tensor]:
    try:
        with safe_open(path, framework="pt") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFileError(
            f"{path!r} is damaged: its tensor data cannot be read ({one_line(exc)}); "
            "re-save the model"
        ) from None

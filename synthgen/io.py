"""Model files: one safetensors file holding tensors plus a JSON header.

Loading a model must never execute code, so there is no pickle anywhere: the
safetensors format stores raw tensors, and everything else (backend name, constructor
parameters, the transform's learned categories and mixtures, the training log) is JSON
in the file's metadata. A format version guards against files from incompatible
releases.
"""

from __future__ import annotations

import json
import os
from typing import Any

from safetensors import safe_open
from safetensors.torch import save_file

from synthgen.errors import ModelFileError
from synthgen.training import TrainingLog, resolve_device

FORMAT = "synthgen.model"
FORMAT_VERSION = 1


def _json_safe(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def save_model(model, path: str | os.PathLike) -> None:
    """Write ``model`` atomically: a partly written file never replaces a good one."""
    from synthgen import __version__

    transform_meta, tensors = model.transformer_.state_dict()
    for name, module in model._modules().items():
        for key, value in module.state_dict().items():
            # a copy: parameters may be views of one shared training buffer
            tensors[f"net.{name}.{key}"] = value.detach().cpu().clone()
    extra_meta, extra_tensors = model._extra_state()
    tensors.update({f"extra.{k}": v.detach().cpu().contiguous() for k, v in extra_tensors.items()})
    params = model.get_params()
    params.pop("dp", None)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "synthgen_version": __version__,
        "backend": model.backend_name,
        "params": _json_safe(params),
        "transform": transform_meta,
        "training_log": model.training_log_.to_dict(),
        "extra": extra_meta,
    }
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        save_file(tensors, tmp, metadata={"synthgen": json.dumps(header)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a model file, or ``ModelFileError`` when it is not one."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"model file {path!r} does not exist")
    try:
        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception:  # safetensors raises its own error types for foreign files
        raise ModelFileError(
            f"{path!r} is not a synthgen model file (expected a file written by model.save)"
        ) from None
    if "synthgen" not in metadata:
        raise ModelFileError(f"{path!r} is a safetensors file but not a synthgen model")
    header = json.loads(metadata["synthgen"])
    if header.get("format") != FORMAT:
        raise ModelFileError(f"{path!r} is not a synthgen model (format {header.get('format')!r})")
    if int(header.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path!r} was written by synthgen {header.get('synthgen_version')} with model "
            f"format {header['format_version']}; this synthgen reads up to {FORMAT_VERSION}: "
            "upgrade synthgen"
        )
    return header


def load_model(path: str | os.PathLike, device: str | None = None):
    """Load a model written by ``save``; ``device`` overrides the saved device choice."""
    from synthgen.backends import BACKENDS

    header = read_header(path)
    backend = header["backend"]
    if backend not in BACKENDS:
        raise ModelFileError(
            f"{os.fspath(path)!r} holds a {backend!r} model, which this synthgen does not know; "
            f"known backends: {sorted(BACKENDS)}"
        )
    with safe_open(os.fspath(path), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    params = dict(header["params"])
    if device is not None:
        params["device"] = device
    model = BACKENDS[backend](**params)
    model.transformer_ = model.transformer_class.from_state_dict(
        header["transform"], {k: v for k, v in tensors.items() if k.startswith("transform.")}
    )
    model.device_ = resolve_device(params.get("device", "auto"))
    model.layout_ = model._make_layout(model.transformer_, model.device_)
    model._load_extra_state(
        header.get("extra", {}),
        {k[len("extra.") :]: v for k, v in tensors.items() if k.startswith("extra.")},
    )
    model._restore()
    for name, module in model._modules().items():
        prefix = f"net.{name}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        module.load_state_dict(state)
        module.to(model.device_)
        module.eval()
    model.training_log_ = TrainingLog.from_dict(header["training_log"])
    return model

"""``load_model``: a model file (``synthgen.io``) back into a fitted backend.

This is the one module that knows both the file format and the backends, so neither
has to import the other. Whatever is wrong with a file (damage, tampering, a foreign
or newer format, parameters that no longer make sense) ends as a ``ModelFileError``
naming the file: loading never runs code from the file and never leaks a traceback.
Networks are rebuilt under an allocation guard sized from the tensors the file really
holds, so a header asking for ``compress_dims=[2**40]`` is refused instead of
allocating terabytes, and their shapes are compared with the file before any weight
is copied.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from synthgen.backends import BACKENDS, BaseGenerator
from synthgen.errors import ModelFileError, SynthgenError
from synthgen.io import one_line, read_model_file
from synthgen.training import TrainingLog, resolve_device

__all__ = ["MAX_PARAMETERS", "load_model"]

#: Networks with more parameters than this are refused as absurd (8 GiB of float32).
MAX_PARAMETERS = 2**31
#: Elements the rebuild may allocate at least, whatever the file holds (1 GiB of float32);
#: beyond it the rebuild may allocate up to 4x the elements stored in the file.
MIN_BUILD_ELEMENTS = 2**28
_PREFIXES = ("transform.", "extra.", "net.")


def load_model(path: str | os.PathLike, device: str | None = None) -> BaseGenerator:
    """Load a model written by ``model.save``.

    ``device`` ("auto", "cpu", "cuda", ...) says where the model runs; without it the
    device is chosen here and now ("auto": CUDA when available, else CPU), whatever
    device the model was trained on. Any problem with the file is a ``ModelFileError``.
    """
    if device is not None:
        resolve_device(device)  # a bad device is the caller's ConfigError, not the file's
    header, tensors = read_model_file(path)
    text = os.fspath(path)
    backend = _backend_class(text, header["backend"])
    params = backend._params_from_file(dict(header["params"]))
    model = _construct(text, backend, params, "auto" if device is None else device)
    _check_tensor_names(text, tensors)
    _restore_state(text, model, header, tensors)
    _restore_networks(text, model, tensors)
    model.training_log_ = _training_log(text, header["training_log"])
    if header.get("privacy_spent") is not None:
        model.privacy_spent_ = _privacy_spent(text, header["privacy_spent"])
    return model


def _privacy_spent(path: str, data: Any):
    """The DP receipt saved with a model trained under ``dp=``."""
    from privacy.accounting import PrivacySpent

    try:
        return PrivacySpent.from_dict(data)
    except (SynthgenError, TypeError, ValueError, KeyError) as exc:
        raise ModelFileError(
            f"{path!r}: its privacy accounting is damaged ({one_line(exc)}); refit the model"
        ) from None


# ---------------------------------------------------------------------- construction
def _backend_class(path: str, name: str) -> type[BaseGenerator]:
    if name not in BACKENDS:
        raise ModelFileError(
            f"{path!r} holds a {name!r} model, which this synthgen does not know; "
            f"known backends: {sorted(BACKENDS)}"
        )
    return BACKENDS[name]


def _construct(
    path: str, backend: type[BaseGenerator], params: dict[str, Any], device: str
) -> BaseGenerator:
    """The backend built from the file's parameters, which must all be known and valid."""
    known = set(backend().get_params())
    unknown = sorted(set(params) - known)
    if unknown:
        raise ModelFileError(
            f"{path!r} holds parameter(s) {unknown} that {backend.__name__} does not accept "
            f"(known: {sorted(known)}); the file is damaged or from another synthgen version"
        )
    params = {**params, "device": device}
    try:
        return _checked(backend, params)
    except (SynthgenError, TypeError, ValueError, OverflowError) as exc:
        bad = [name for name in params if not _valid(backend, {name: params[name]})]
        names = f" {', '.join(repr(n) for n in bad)}" if bad else "s"
        raise ModelFileError(
            f"{path!r} holds an invalid {backend.__name__} parameter{names}: {one_line(exc)}"
        ) from None


def _checked(backend: type[BaseGenerator], params: dict[str, Any]) -> BaseGenerator:
    model = backend(**params)
    check = getattr(model, "_check_params", None)
    if check is not None:
        check()
    return model


def _valid(backend: type[BaseGenerator], params: dict[str, Any]) -> bool:
    try:
        _checked(backend, params)
    except (SynthgenError, TypeError, ValueError, OverflowError):
        return False
    return True


# ---------------------------------------------------------------------- learned state
def _check_tensor_names(path: str, tensors: Mapping[str, torch.Tensor]) -> None:
    foreign = sorted(name for name in tensors if not name.startswith(_PREFIXES))
    if foreign:
        raise ModelFileError(
            f"{path!r} is damaged: it holds unexpected tensor(s) {_few(foreign)}; re-save the model"
        )


def _restore_state(
    path: str, model: BaseGenerator, header: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> None:
    """Transform, device, layout and backend extras, before any network exists."""
    transform = {k: v for k, v in tensors.items() if k.startswith("transform.")}
    try:
        transformer = model.transformer_class.from_state_dict(header["transform"], transform)
    except Exception as exc:  # any failure means the stored state is unusable: say so once
        raise ModelFileError(
            f"{path!r}: its transform state cannot be restored "
            f"({type(exc).__name__}: {one_line(exc)}); "
            "the file is damaged or from an incompatible synthgen"
        ) from exc
    extra = {k[len("extra.") :]: v for k, v in tensors.items() if k.startswith("extra.")}
    try:
        # the same state ``fit`` sets up before ``_build`` (one hook for both)
        model._prepare(transformer, resolve_device(model.device))
        model._load_extra_state(header.get("extra", {}), extra)
    except Exception as exc:  # same: convert, with the file name and the original message
        raise ModelFileError(
            f"{path!r}: its {model.backend_name} state cannot be restored "
            f"({type(exc).__name__}: {one_line(exc)}); the file is damaged"
        ) from exc


def _restore_networks(path: str, model: BaseGenerator, tensors: dict[str, torch.Tensor]) -> None:
    """Rebuild the networks under an allocation guard, check shapes, then copy weights."""
    held = sum(t.numel() for t in tensors.values())
    guard = AllocationGuard(max(MIN_BUILD_ELEMENTS, 4 * held))
    try:
        with guard:
            model._restore()
    except AllocationRefused as exc:
        raise ModelFileError(
            f"{path!r}: its parameters ask for networks with a tensor of {exc.elements:,} "
            f"values while the file holds {held:,} values in all; the file is damaged"
        ) from None
    except Exception as exc:  # building from validated params failed: the file is at fault
        raise ModelFileError(
            f"{path!r}: its networks cannot be rebuilt ({type(exc).__name__}: {one_line(exc)}); "
            "the file is damaged or from an incompatible synthgen"
        ) from exc
    expected = {
        f"net.{name}.{key}": value
        for name, module in model._modules().items()
        for key, value in module.state_dict().items()
    }
    check_network_tensors(
        path, expected, {k: v for k, v in tensors.items() if k.startswith("net.")}
    )
    for name, module in model._modules().items():
        prefix = f"net.{name}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        module.load_state_dict(state)  # names, shapes and dtypes were all checked above
        module.eval()


def check_network_tensors(
    path: str, expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]
) -> None:
    """The file's network tensors are exactly the ones the rebuilt model has."""
    total = sum(t.numel() for t in expected.values())
    if total > MAX_PARAMETERS:
        raise ModelFileError(
            f"{path!r}: its parameters describe networks of {total:,} values (more than "
            f"{MAX_PARAMETERS:,}); the file is damaged"
        )
    missing = sorted(set(expected) - set(found))
    if missing:
        raise ModelFileError(f"{path!r} is damaged: network tensor(s) {_few(missing)} are missing")
    extra = sorted(set(found) - set(expected))
    if extra:
        raise ModelFileError(
            f"{path!r} is damaged: it holds network tensor(s) {_few(extra)} that the "
            f"{len(expected)} tensors of this model do not include"
        )
    for name in sorted(expected):
        want, got = expected[name], found[name]
        if tuple(want.shape) != tuple(got.shape) or want.dtype != got.dtype:
            raise ModelFileError(
                f"{path!r} is damaged: tensor {name!r} is {got.dtype} {tuple(got.shape)} but "
                f"the model built from its parameters needs {want.dtype} {tuple(want.shape)}"
            )


def _training_log(path: str, data: dict[str, Any]) -> TrainingLog:
    try:
        return TrainingLog.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path!r}: its training log is damaged ({one_line(exc)})") from None


def _few(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}] ({len(names)} in all)"


# ---------------------------------------------------------------------- allocation guard
class AllocationRefused(Exception):
    """Internal: a tensor factory asked for more elements than the guard allows."""

    def __init__(self, elements: int) -> None:
        super().__init__(f"refused to allocate {elements:,} elements")
        self.elements = elements


#: Tensor factories whose size comes from their arguments (not from another tensor).
_FACTORIES = frozenset(
    {
        "empty",
        "zeros",
        "ones",
        "full",
        "rand",
        "randn",
        "randint",
        "randperm",
        "arange",
        "linspace",
        "logspace",
        "eye",
        "empty_strided",
        "new_empty",
        "new_zeros",
        "new_ones",
        "new_full",
        "new_empty_strided",
    }
)


class AllocationGuard(TorchFunctionMode):
    """Refuse tensor factories (``torch.empty``, ``zeros``, ...) past an element budget.

    Why: a backend's ``_restore`` builds its networks (and their helpers) from the file's
    parameters, and some of that construction is data-dependent, so it cannot run on the
    meta device. Counting what the factories are asked for and refusing before the call
    bounds what a hostile header can make us allocate, whatever the backend does.
    """

    def __init__(self, budget: int) -> None:
        super().__init__()
        self.budget = budget
        self.requested = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in _FACTORIES:
            elements = requested_elements(func.__name__, args, kwargs)
            self.requested += elements
            if elements > self.budget or self.requested > self.budget:
                raise AllocationRefused(elements)
        return func(*args, **kwargs)


def requested_elements(name: str, args: tuple, kwargs: dict[str, Any]) -> int:
    """How many elements a factory call creates (0 when its arguments are not plain sizes)."""
    try:
        return _elements(name, args[1:] if name.startswith("new_") else args, kwargs)
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        return 0


def _elements(name: str, args: tuple, kwargs: dict[str, Any]) -> int:
    if "size" in kwargs:
        return _count(kwargs["size"])
    if name == "arange":
        numbers = [float(a) for a in args[:3]]
        start, end, step = (0.0, numbers[0], 1.0) if len(numbers) == 1 else (*numbers, 1.0)[:3]
        return max(0, math.ceil((end - start) / step))
    if name in ("linspace", "logspace"):
        return int(args[2] if len(args) > 2 else kwargs.get("steps", 0))
    if name == "eye":
        rows = int(args[0])
        return rows * (int(args[1]) if len(args) > 1 and isinstance(args[1], int) else rows)
    if name == "randint":
        return next((_count(a) for a in args if isinstance(a, list | tuple)), 0)
    if args and isinstance(args[0], list | tuple):
        return _count(args[0])
    return _count([a for a in args if isinstance(a, int) and not isinstance(a, bool)])


def _count(shape: Any) -> int:
    if isinstance(shape, int):
        return max(0, shape)
    return math.prod(max(0, int(d)) for d in shape)

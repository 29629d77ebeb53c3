"""Validation of constructor parameters, shared by every backend.

scikit-learn style: constructors store their arguments untouched and ``fit`` checks
them here, so ``clone`` and ``set_params`` work on any value and a bad one fails with a
``ConfigError`` naming the parameter, the value and what is accepted. ``bool`` is
refused where a number is expected (``True`` is an ``int`` to Python, never a width).
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Iterable
from typing import Any

from synthgen.errors import ConfigError


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name: str, value: Any, minimum: int | None = None, optional: bool = False) -> None:
    """An integer (``numpy`` integers too) of at least ``minimum``; None if ``optional``."""
    if value is None and optional:
        return
    if not _is_int(value) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum}"
        extra = " or None" if optional else ""
        raise ConfigError(f"{name}={value!r} must be an integer{bound}{extra}")


def check_float(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> None:
    """A finite real number in the interval given by ``low`` / ``high``."""
    if value is None and optional:
        return
    ok = _is_real(value) and math.isfinite(float(value))
    if ok and low is not None:
        ok = float(value) > low if low_open else float(value) >= low
    if ok and high is not None:
        ok = float(value) < high if high_open else float(value) <= high
    if not ok:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        extra = " or None" if optional else ""
        raise ConfigError(f"{name}={value!r} must be a number in {left}{lo}, {hi}{right}{extra}")


def check_widths(name: str, value: Any) -> None:
    """A non-empty list or tuple of positive integer layer widths."""
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(_is_int(v) and v >= 1 for v in value)
    ):
        raise ConfigError(
            f"{name}={value!r} must be a non-empty list of positive integer widths, e.g. (128, 128)"
        )


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if not isinstance(value, str | type(None)) or value not in choices:
        raise ConfigError(f"{name}={value!r} is not supported; use one of {list(choices)}")


def check_bool(name: str, value: Any, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, bool):
        extra = " or None" if optional else ""
        raise ConfigError(f"{name}={value!r} must be True or False{extra}")


def check_options(name: str, value: Any, target: type) -> None:
    """A dict whose keys are keyword arguments of ``target``'s constructor (or None)."""
    if value is None:
        return
    accepted = sorted(
        key
        for key, p in inspect.signature(target.__init__).parameters.items()
        if key != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )
    if not isinstance(value, dict):
        raise ConfigError(f"{name}={value!r} must be a dict of options; accepted keys: {accepted}")
    unknown = sorted(str(k) for k in value if k not in accepted)
    if unknown:
        raise ConfigError(f"{name} has unknown key(s) {unknown}; accepted keys: {accepted}")

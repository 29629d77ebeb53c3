"""Errors raised for bad input: the public, stable import path.

Every error a user can trigger by passing bad data, a bad argument or a bad file is a
``SynthgenError`` subclass whose message names the column / value at fault and says
how to fix it. Catch ``SynthgenError`` to handle all of them.

The classes are defined in ``synthgen.core.errors`` (so that ``privacy``, below
synthgen in the layering, raises the very same classes); this module re-exports them,
``synthgen.errors.SynthgenError is synthgen.core.errors.SynthgenError``.
"""

from __future__ import annotations

from synthgen.core.errors import (
    ConditionError,
    ConfigError,
    DataError,
    MissingDependencyError,
    ModelFileError,
    NotFittedError,
    SchemaError,
    SynthgenError,
)

__all__ = [
    "ConditionError",
    "ConfigError",
    "DataError",
    "MissingDependencyError",
    "ModelFileError",
    "NotFittedError",
    "SchemaError",
    "SynthgenError",
]

"""Errors raised for bad input.

Every error a user can trigger by passing bad data, a bad argument or a bad file is a
``SynthgenError`` subclass whose message names the column / value at fault and says
how to fix it. Catch ``SynthgenError`` to handle all of them.

They live in the dependency-free core so that every layer (``privacy`` included) raises
the same classes; ``synthgen.errors`` is the public path and re-exports them.
"""

from __future__ import annotations


class SynthgenError(Exception):
    """Base class of every user-facing error raised by synthgen."""


class SchemaError(SynthgenError, ValueError):
    """The data does not match the schema, or the schema itself is malformed."""


class DataError(SynthgenError, ValueError):
    """The input frame cannot be modelled as given (empty, infinite values, ...)."""


class ConfigError(SynthgenError, ValueError):
    """A constructor argument or option has an invalid value."""


class NotFittedError(SynthgenError, RuntimeError):
    """A model or transform was used before ``fit``."""


class ModelFileError(SynthgenError, OSError):
    """A file is not a synthgen model, or was written by an incompatible version."""


class ConditionError(SynthgenError, ValueError):
    """A sampling condition names an unknown column or an impossible value."""


class MissingDependencyError(SynthgenError, ImportError):
    """An optional dependency (an extra such as ``marginals``) is not installed."""

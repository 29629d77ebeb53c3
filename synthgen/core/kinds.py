"""Column kinds, and the minimal interface of a schema that only needs them.

The five kind names are stored in schema JSON and model files, so they are part of
the file format: compare against these constants instead of retyping the strings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, Protocol

NUMERICAL = "numerical"
CATEGORICAL = "categorical"
BOOLEAN = "boolean"
DATETIME = "datetime"
ID = "id"

#: Every kind, in the order error messages list them.
KINDS: tuple[str, ...] = (NUMERICAL, CATEGORICAL, BOOLEAN, DATETIME, ID)
#: Kinds whose values are numbers on a line (datetimes as time since the epoch).
CONTINUOUS_KINDS: tuple[str, ...] = (NUMERICAL, DATETIME)
#: Kinds whose values are labels from a finite set.
DISCRETE_KINDS: tuple[str, ...] = (CATEGORICAL, BOOLEAN)

ColumnKind = Literal["numerical", "categorical", "boolean", "datetime", "id"]


class ColumnLike(Protocol):
    """A column description that says at least its name and its kind."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...


class SchemaLike(Protocol):
    """Anything that iterates over column descriptions in table order.

    ``synthgen.schema.Schema`` is one; code below synthgen in the layering (``privacy``)
    annotates with this protocol so it never has to import the schema module.
    """

    def __iter__(self) -> Iterator[ColumnLike]: ...

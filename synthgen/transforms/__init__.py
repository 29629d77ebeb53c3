"""Reversible transforms between DataFrames and float32 tensors."""

from synthgen.transforms.columns import Span
from synthgen.transforms.table import TableTransformer

__all__ = ["Span", "TableTransformer"]

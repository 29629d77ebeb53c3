"""Reversible transforms between DataFrames and float32 tensors."""

from synthgen.transforms.columns import Span
from synthgen.transforms.quantile import QuantileTableTransformer
from synthgen.transforms.table import TableTransformer

__all__ = ["QuantileTableTransformer", "Span", "TableTransformer"]

"""Tokenisation of a table for the autoregressive backend.

Each column becomes one or two integer tokens ("sub-columns"):

- categorical / boolean: one token per category, one for null, and one shared token for
  rare categories (seen fewer than ``rare_min_count`` times), which protects rare values
  from being memorised one by one; a generated rare token decodes to one of the rare
  categories drawn by frequency;
- numerical / datetime with few distinct values (<= ``max_exact_values``): one token per
  value, so their distribution is reproduced exactly;
- other numerical / datetime columns: a quantile-bin token (null is one more) then a
  within-bin position token; decoding places the value uniformly inside the chosen
  sub-interval, so resolution is ``bins x positions`` quantiles. A value holding more
  than one bin's share of the rows (a point mass, e.g. 0 in a "seconds on page"
  column) gets a zero-width bin of its own, so it is reproduced exactly instead of
  being smeared over a bin;
- identifiers: no tokens; minted anew like the other backends do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from synthgen.errors import DataError, NotFittedError
from synthgen.schema import Schema
from synthgen.transforms.columns import IdEncoder, NumericalEncoder, _restore_dtype

RARE = "__rare__"


@dataclass
class ColumnTokens:
    """How one column maps to its tokens (JSON-safe, numbers kept as float lists)."""

    name: str
    kind: str  # "categorical" | "exact" | "binned" | "id"
    vocab: list[Any] = field(default_factory=list)  # categorical / exact values
    rare: list[Any] = field(default_factory=list)  # rare categories
    rare_weights: list[float] = field(default_factory=list)
    edges: list[float] = field(default_factory=list)  # binned: bin edges (len bins + 1)
    positions: int = 0
    null_token: bool = False

    @property
    def sizes(self) -> list[int]:
        """Vocabulary size of each sub-column."""
        if self.kind in ("categorical", "exact"):
            return [len(self.vocab) + int(self.null_token) + int(bool(self.rare))]
        if self.kind == "binned":
            return [len(self.edges) - 1 + int(self.null_token), self.positions]  # null: last
        return []


def _bin_edges(present: np.ndarray, bins: int) -> np.ndarray:
    """Quantile bin edges; a value repeated across quantiles becomes a zero-width bin.

    Collapsing repeated quantiles to one edge would fold a point mass into the bin
    above it; keeping it twice gives it its own bin ``[v, v]``.
    """
    quantiles = np.quantile(present, np.linspace(0, 1, bins + 1))
    values, counts = np.unique(quantiles, return_counts=True)
    edges = np.repeat(values, np.minimum(counts, 2))
    if len(edges) == 1:  # a constant column: one zero-width bin
        edges = np.repeat(edges, 2)
    return edges


class TokenTransformer:
    """Encode a frame into an ``(n, sub_columns)`` int64 tensor and decode tokens back."""

    def __init__(
        self,
        bins: int = 64,
        positions: int = 16,
        max_exact_values: int = 128,
        rare_min_count: int = 5,
        seed: int = 0,
    ) -> None:
        self.bins = bins
        self.positions = positions
        self.max_exact_values = max_exact_values
        self.rare_min_count = rare_min_count
        self.seed = seed

    # ------------------------------------------------------------------ fitting
    def fit(self, df: pd.DataFrame, schema: Schema | None = None) -> TokenTransformer:
        schema = Schema.infer(df) if schema is None else schema
        schema.validate(df)
        schema.check_learnable()
        self.schema_ = schema
        self.numbers_ = {}  # column -> NumericalEncoder (number conversion, restore)
        columns: list[ColumnTokens] = []
        for spec in schema:
            series = df[spec.name]
            if spec.kind == "id":
                columns.append(ColumnTokens(spec.name, "id"))
            elif spec.kind in ("categorical", "boolean"):
                columns.append(self._fit_categorical(spec, series))
            else:
                columns.append(self._fit_numeric(spec, series))
        self.columns_ = columns
        self._index()
        return self

    def _fit_categorical(self, spec, series: pd.Series) -> ColumnTokens:
        counts = series.value_counts(dropna=True)
        categories = list(spec.categories) if spec.categories is not None else list(counts.index)
        observed = {k: int(v) for k, v in counts.items()}
        common = [c for c in categories if observed.get(c, 0) >= self.rare_min_count]
        rare = [c for c in categories if 0 < observed.get(c, 0) < self.rare_min_count]
        if len(rare) == 1 and not common:
            common, rare = rare, []
        total = sum(observed.get(c, 0) for c in rare)
        return ColumnTokens(
            spec.name,
            "categorical",
            vocab=common,
            rare=rare,
            rare_weights=[observed[c] / total for c in rare] if rare else [],
            null_token=bool(spec.nullable or not categories),
        )

    def _fit_numeric(self, spec, series: pd.Series) -> ColumnTokens:
        encoder = NumericalEncoder(spec)
        numbers = encoder.to_numbers(series)
        self.numbers_[spec.name] = encoder
        encoder.fit_present(series)  # learns the datetime / duration resolution
        present = numbers[~np.isnan(numbers)]
        unique = np.unique(present)
        if len(unique) <= self.max_exact_values:
            return ColumnTokens(
                spec.name, "exact", vocab=[float(v) for v in unique], null_token=spec.nullable
            )
        return ColumnTokens(
            spec.name,
            "binned",
            edges=[float(e) for e in _bin_edges(present, self.bins)],
            positions=self.positions,
            null_token=spec.nullable,
        )

    def _index(self) -> None:
        self.sizes_: list[int] = []
        self.sub_column_of_: list[int] = []  # sub-column -> column index (in columns_)
        for index, column in enumerate(self.columns_):
            for size in column.sizes:
                self.sizes_.append(size)
                self.sub_column_of_.append(index)

    def _check_fitted(self) -> None:
        if not hasattr(self, "columns_"):
            raise NotFittedError("the tokenizer is not fitted; call fit(df) first")

    @property
    def schema(self) -> Schema:
        self._check_fitted()
        return self.schema_

    @property
    def sizes(self) -> list[int]:
        self._check_fitted()
        return self.sizes_

    @property
    def sub_column_of(self) -> list[int]:
        self._check_fitted()
        return self.sub_column_of_

    @property
    def modelled_columns(self) -> list[str]:
        return [c.name for c in self.columns_ if c.kind != "id"]

    # ------------------------------------------------------------------ encoding
    def encode(self, df: pd.DataFrame, seed: int | None = None) -> torch.Tensor:
        """Tokens of every row; missing cells of a column raise unless it is nullable."""
        self._check_fitted()
        blocks = []
        for column in self.columns_:
            if column.kind == "id":
                continue
            if column.name not in df.columns:
                raise DataError(f"cannot encode: column {column.name!r} missing from the frame")
            blocks.extend(self._encode_column(column, df[column.name]))
        if not blocks:
            return torch.zeros(len(df), 0, dtype=torch.long)
        return torch.from_numpy(np.stack(blocks, axis=1).astype(np.int64))

    def _encode_column(self, column: ColumnTokens, series: pd.Series) -> list[np.ndarray]:
        missing = series.isna().to_numpy()
        if missing.any() and not column.null_token:
            raise DataError(
                f"column {column.name!r} has nulls but was fitted without nulls; set its "
                "schema nullable=True and fit again"
            )
        if column.kind == "categorical":
            values = series.astype(object)
            tokens = pd.Categorical(values, categories=column.vocab).codes.astype(np.int64)
            rare_token = len(column.vocab)
            null_token = rare_token + int(bool(column.rare))
            is_rare = (
                values.isin(column.rare).to_numpy() if column.rare else np.zeros(len(values), bool)
            )
            tokens[is_rare] = rare_token
            tokens[missing] = null_token
            unseen = (tokens < 0) & ~missing
            if unseen.any():
                raise DataError(
                    f"column {column.name!r}: value {series[unseen].iloc[0]!r} was not seen in "
                    f"training; known values: {column.vocab[:10]}"
                )
            return [tokens]
        numbers = self.numbers_[column.name].to_numbers(series)
        if column.kind == "exact":
            vocab = np.asarray(column.vocab)
            position = np.searchsorted(vocab, np.nan_to_num(numbers, nan=vocab[0]))
            position = np.clip(position, 0, len(vocab) - 1)
            present = ~missing
            if present.any() and not np.allclose(vocab[position[present]], numbers[present]):
                bad = numbers[present][~np.isclose(vocab[position[present]], numbers[present])][0]
                raise DataError(f"column {column.name!r}: value {bad!r} was not seen in training")
            return [np.where(missing, len(vocab), position)]
        edges = np.asarray(column.edges)
        filled = np.nan_to_num(numbers, nan=edges[0])
        bins = np.clip(np.searchsorted(edges, filled, side="right") - 1, 0, len(edges) - 2)
        # a point mass is a zero-width bin [v, v] just before the bin [v, next) that
        # searchsorted lands in; move exact hits of v back into it
        previous = np.maximum(bins - 1, 0)
        point = (bins > 0) & (edges[previous] == edges[previous + 1]) & (filled == edges[previous])
        bins = np.where(point, previous, bins)
        low, high = edges[bins], edges[bins + 1]
        width = np.where(high > low, high - low, 1.0)
        pos = np.clip(
            ((filled - low) / width * column.positions).astype(np.int64), 0, column.positions - 1
        )
        return [np.where(missing, len(edges) - 1, bins), np.where(missing, 0, pos)]

    # ------------------------------------------------------------------ decoding
    def decode(self, tokens: torch.Tensor | np.ndarray, seed: int = 0) -> pd.DataFrame:
        """Frame from tokens; numbers are placed uniformly inside their sub-interval."""
        self._check_fitted()
        if isinstance(tokens, torch.Tensor):
            tokens = tokens.detach().cpu().numpy()
        rng = np.random.default_rng(seed)
        n = len(tokens)
        out: dict[str, pd.Series] = {}
        offset = 0
        for column in self.columns_:
            spec = self.schema_[column.name]
            width = len(column.sizes)
            block = tokens[:, offset : offset + width]
            offset += width
            if column.kind == "id":
                out[column.name] = IdEncoder(spec).decode(np.zeros((n, 0)))
            elif column.kind == "categorical":
                out[column.name] = self._decode_categorical(column, spec, block[:, 0], rng)
            else:
                out[column.name] = self._decode_numeric(column, spec, block, rng)
        return pd.DataFrame(out)

    def _decode_categorical(self, column, spec, tokens: np.ndarray, rng) -> pd.Series:
        values = np.empty(len(tokens), dtype=object)
        n_vocab = len(column.vocab)
        vocab = np.array(column.vocab + [None], dtype=object)
        common = tokens < n_vocab
        values[common] = vocab[tokens[common]]
        is_rare = (tokens == n_vocab) & bool(column.rare)
        if is_rare.any():
            choice = rng.choice(len(column.rare), size=int(is_rare.sum()), p=column.rare_weights)
            values[is_rare] = np.array(column.rare, dtype=object)[choice]
        values[~common & ~is_rare] = np.nan
        if spec.dtype == "category":
            return pd.Series(pd.Categorical(values, categories=spec.categories), name=spec.name)
        series = pd.Series(values, name=spec.name)
        return series if spec.dtype == "object" else _restore_dtype(series, spec.dtype)

    def _decode_numeric(self, column, spec, block: np.ndarray, rng) -> pd.Series:
        if column.kind == "exact":
            vocab = np.asarray(column.vocab + [np.nan])
            values = vocab[np.minimum(block[:, 0], len(column.vocab))]
        else:
            edges = np.asarray(column.edges)
            bins = block[:, 0]
            missing = bins >= len(edges) - 1
            b = np.clip(bins, 0, len(edges) - 2)
            low, high = edges[b], edges[b + 1]
            u = (block[:, 1] + rng.random(len(b))) / column.positions
            values = low + u * (high - low)
            values[missing] = np.nan
        encoder = self.numbers_[column.name]
        return encoder.restore(values)

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        self._check_fitted()
        meta = {
            "params": {
                "bins": self.bins,
                "positions": self.positions,
                "max_exact_values": self.max_exact_values,
                "rare_min_count": self.rare_min_count,
                "seed": self.seed,
            },
            "schema": self.schema_.to_dict(),
            "columns": [vars(c) for c in self.columns_],
            "datetime_resolution": {name: enc.resolution_ns for name, enc in self.numbers_.items()},
        }
        return meta, {}

    @classmethod
    def from_state_dict(cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor]):
        tokenizer = cls(**meta["params"])
        tokenizer.schema_ = Schema.from_dict(meta["schema"])
        tokenizer.columns_ = [ColumnTokens(**c) for c in meta["columns"]]
        tokenizer.numbers_ = {}
        for column in tokenizer.columns_:
            if column.kind in ("exact", "binned"):
                encoder = NumericalEncoder(tokenizer.schema_[column.name])
                encoder.resolution_ns = int(meta["datetime_resolution"].get(column.name, 1))
                tokenizer.numbers_[column.name] = encoder
        tokenizer._index()
        return tokenizer

"""Cells: a table as one small integer per column, over a DP release's domains.

The marginal-based backends (AIM, MST) model a discrete table: each modelled column
becomes one attribute whose values are the *cells* of its DP release
(``privacy.preprocessing.ColumnRelease``): the released categories, or the bins of the
released bounds (atoms at the bounds and at 0 kept as bins of their own), then one
null cell. Nothing here reads the data beyond what ``release.apply`` and
``ColumnRelease.cells`` do row by row, so encoding is post-processing of the release:
the graphical model's measurements are the only other use of the rows.

Decoding is the release's own (``ColumnRelease.decode_cells``): the category, a value
uniform inside its bin (integers rounded, atoms exact) drawn from a seeded generator,
or null. Identifier columns are not modelled and are minted anew, as in every backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from synthgen.core.kinds import ID
from synthgen.errors import DataError, NotFittedError
from synthgen.schema import Schema


class CellTransformer:
    """Encode a frame into an ``(n, columns)`` int64 array of cells and decode it back."""

    def fit(self, release: Any, schema: Schema) -> CellTransformer:
        """Take the domains of ``release`` (a ``PreprocessingRelease``); reads no data."""
        self.release_ = release
        self.schema_ = schema
        self.columns_ = [s.name for s in schema if s.kind != ID]
        self.sizes_ = [int(release.columns[name].n_cells) for name in self.columns_]
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "release_"):
            raise NotFittedError("the cell transformer is not fitted; call fit(release) first")

    @property
    def schema(self) -> Schema:
        self._check_fitted()
        return self.schema_

    @property
    def columns(self) -> list[str]:
        """The modelled (non-id) columns, in table order: the attributes of the model."""
        self._check_fitted()
        return list(self.columns_)

    @property
    def sizes(self) -> list[int]:
        """Cells per modelled column (its domain size in the graphical model)."""
        self._check_fitted()
        return list(self.sizes_)

    def encode(self, df: pd.DataFrame) -> np.ndarray:
        """Cells of every row, after mapping the frame onto the released domains."""
        self._check_fitted()
        missing = [name for name in self.columns_ if name not in df.columns]
        if missing:
            raise DataError(f"cannot encode: column(s) {missing} are missing from the frame")
        mapped = self.release_.apply(df)
        if not self.columns_:
            return np.zeros((len(df), 0), dtype=np.int64)
        blocks = [self.release_.columns[name].cells(mapped[name]) for name in self.columns_]
        return np.stack(blocks, axis=1)

    def decode(self, cells: np.ndarray, seed: int = 0) -> pd.DataFrame:
        """A frame with the schema's columns (and dtypes) from an array of cells."""
        self._check_fitted()
        cells = np.asarray(cells, dtype=np.int64)
        rng = np.random.default_rng(seed)
        index = {name: i for i, name in enumerate(self.columns_)}
        n = len(cells)
        out: dict[str, pd.Series] = {}
        for spec in self.schema_:
            column = self.release_.columns[spec.name]
            if spec.name in index:
                values = cells[:, index[spec.name]]
            else:
                values = np.zeros(n, dtype=np.int64)
            out[spec.name] = column.decode_cells(values, rng).reset_index(drop=True)
        return pd.DataFrame(out, index=pd.RangeIndex(n))

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """JSON-safe state: the release (domains and noisy counts) and the schema."""
        self._check_fitted()
        return {"release": self.release_.to_dict(), "schema": self.schema_.to_dict()}, {}

    @classmethod
    def from_state_dict(cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor]):
        from privacy.preprocessing import PreprocessingRelease

        release = PreprocessingRelease.from_dict(meta["release"])
        return cls().fit(release, Schema.from_dict(meta["schema"]))

"""The reversible table transform shared by every backend.

``TableTransformer.encode`` turns a DataFrame into one float32 tensor, once, before
training; ``decode`` turns generated rows back into a DataFrame with the training
frame's columns and dtypes. Backends only see tensors and the list of ``Span``s.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from joblib import Parallel, delayed

from synthgen.errors import ConfigError, DataError, ModelFileError, NotFittedError
from synthgen.schema import ColumnSpec, Schema
from synthgen.transforms.columns import (
    ENCODER_REGISTRY,
    ENCODERS,
    ColumnEncoder,
    DiscreteNumericEncoder,
    Span,
)


class TableTransformer:
    """Encode a table into a float32 matrix and decode generated matrices back.

    Parameters
    ----------
    max_components:
        Upper bound of mixture components per numerical column.
    max_fit_rows:
        Rows subsampled for each mixture fit (the dominant preprocessing cost).
    discrete_max_values:
        Numerical columns with at most this many distinct values are one-hot encoded
        over their values instead of mode-normalised (exact values and exact links to
        other columns). 0 turns this off.
    max_categories:
        Refuse categorical columns wider than this (one-hot would not fit in memory);
        such columns are usually identifiers and should be declared ``kind="id"``.
    n_jobs:
        Parallel mixture fits (threads).
    seed:
        Seeds the mixture fits and the posterior sampling of modes.

    Subclasses change how columns are encoded through ``kind_encoders`` and
    ``_make_encoder``, and add their own constructor arguments to ``_params``; fitting,
    spans, encode / decode and persistence are shared.
    """

    #: Encoder class of each column kind (few-valued numbers aside, see ``_encoder_for``).
    kind_encoders: ClassVar[dict[str, type]] = ENCODERS

    def __init__(
        self,
        max_components: int = 10,
        max_fit_rows: int = 5000,
        discrete_max_values: int = 32,
        max_categories: int = 1000,
        n_jobs: int = 2,
        seed: int = 0,
    ) -> None:
        self.max_components = max_components
        self.max_fit_rows = max_fit_rows
        self.discrete_max_values = discrete_max_values
        self.max_categories = max_categories
        self.n_jobs = n_jobs
        self.seed = seed

    # ------------------------------------------------------------------ fitting
    def fit(self, df: pd.DataFrame, schema: Schema | None = None) -> TableTransformer:
        schema = Schema.infer(df) if schema is None else schema
        schema.validate(df)
        schema.check_learnable()
        self.schema_ = schema
        self.encoders_: dict[str, ColumnEncoder] = {
            spec.name: self._encoder_for(spec, df[spec.name]) for spec in schema
        }
        for index, (name, encoder) in enumerate(self.encoders_.items()):
            if not encoder.fits_mixture:
                encoder.fit(df[name], max_fit_rows=self.max_fit_rows, seed=self.seed + index)
                width = sum(w for _, w in encoder.widths())
                if width > self.max_categories:
                    raise ConfigError(
                        f"column {name!r} has {width - 1} categories, more than "
                        f"max_categories={self.max_categories}; declare it as an identifier "
                        f"(schema.set_kind({name!r}, 'id')) or raise max_categories"
                    )
        numeric = [n for n, e in self.encoders_.items() if e.fits_mixture]

        def fit_one(index: int, name: str) -> None:
            self.encoders_[name].fit(
                df[name], self.max_components, self.max_fit_rows, self.seed + index
            )

        if numeric:
            jobs = max(1, min(self.n_jobs, len(numeric)))
            Parallel(n_jobs=jobs, prefer="threads")(
                delayed(fit_one)(i, n) for i, n in enumerate(numeric)
            )
        self._build_spans()
        return self

    def _encoder_for(self, spec: ColumnSpec, series: pd.Series) -> ColumnEncoder:
        if spec.kind == "numerical" and self.discrete_max_values:
            distinct = pd.to_numeric(series, errors="coerce").nunique()
            if distinct <= self.discrete_max_values:
                return self._make_encoder(DiscreteNumericEncoder, spec)
        return self._make_encoder(self.kind_encoders[spec.kind], spec)

    def _make_encoder(self, encoder_class: type, spec: ColumnSpec) -> ColumnEncoder:
        """Instantiate an encoder; subclasses pass their own options to theirs here."""
        return encoder_class(spec)

    def _params(self) -> dict[str, Any]:
        """Constructor arguments, saved so that ``from_state_dict`` rebuilds the same object."""
        return {
            "max_components": self.max_components,
            "max_fit_rows": self.max_fit_rows,
            "discrete_max_values": self.discrete_max_values,
            "max_categories": self.max_categories,
            "n_jobs": self.n_jobs,
            "seed": self.seed,
        }

    def _build_spans(self) -> None:
        spans: list[Span] = []
        start = 0
        for name, encoder in self.encoders_.items():
            for role, width in encoder.widths():
                spans.append(Span(name, role, start, width))
                start += width
        self.spans_ = spans
        self.output_dim_ = start

    def _check_fitted(self) -> None:
        if not hasattr(self, "spans_"):
            raise NotFittedError("the transformer is not fitted; call fit(df) first")

    @property
    def schema(self) -> Schema:
        self._check_fitted()
        return self.schema_

    @property
    def spans(self) -> list[Span]:
        self._check_fitted()
        return self.spans_

    @property
    def output_dim(self) -> int:
        self._check_fitted()
        return self.output_dim_

    # ------------------------------------------------------------------ encode / decode
    def encode(self, df: pd.DataFrame, seed: int | None = None) -> torch.Tensor:
        """Encode ``df`` (columns as in the schema) into an ``(n, output_dim)`` float32 tensor."""
        self._check_fitted()
        missing = [c for c in self.encoders_ if c not in df.columns]
        if missing:
            raise DataError(f"cannot encode: column(s) {missing} missing from the frame")
        rng = np.random.default_rng(self.seed if seed is None else seed)
        blocks = [encoder.encode(df[name], rng) for name, encoder in self.encoders_.items()]
        matrix = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(df), 0), np.float32)
        return torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32))

    def decode(self, data: torch.Tensor | np.ndarray, seed: int | None = None) -> pd.DataFrame:
        """Decode rows (one-hot or scores in discrete spans: argmax is taken) to a frame.

        Decoding is deterministic here; ``seed`` exists for transforms that add noise.
        """
        self._check_fitted()
        if isinstance(data, torch.Tensor):
            data = data.detach().to("cpu", torch.float32).numpy()
        if data.ndim != 2 or data.shape[1] != self.output_dim_:
            raise DataError(
                f"cannot decode an array of shape {data.shape}: expected (n, {self.output_dim_})"
            )
        columns: dict[str, pd.Series] = {}
        offset = 0
        for name, encoder in self.encoders_.items():
            width = sum(w for _, w in encoder.widths())
            columns[name] = encoder.decode(data[:, offset : offset + width]).reset_index(drop=True)
            offset += width
        return pd.DataFrame(columns)

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """JSON-safe description plus named float64 tensors (no pickle anywhere)."""
        self._check_fitted()
        meta: dict[str, Any] = {
            "params": self._params(),
            "schema": self.schema_.to_dict(),
            "columns": {},
        }
        tensors: dict[str, torch.Tensor] = {}
        for index, (name, encoder) in enumerate(self.encoders_.items()):
            column_meta, arrays = encoder.state_dict()
            meta["columns"][name] = {**column_meta, "encoder": type(encoder).__name__}
            for key, array in arrays.items():
                tensors[f"transform.{index}.{key}"] = torch.from_numpy(
                    np.asarray(array, np.float64)
                )
        json.dumps(meta)  # fail here, not at save time, if something is not JSON-safe
        return meta, tensors

    @classmethod
    def from_state_dict(
        cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor]
    ) -> TableTransformer:
        transformer = cls(**meta["params"])
        transformer.schema_ = Schema.from_dict(meta["schema"])
        transformer.encoders_ = {}
        for index, spec in enumerate(transformer.schema_):
            name = meta["columns"][spec.name].get("encoder")
            if name is None:
                encoder_class = transformer.kind_encoders[spec.kind]
            elif name in ENCODER_REGISTRY:
                encoder_class = ENCODER_REGISTRY[name]
            else:
                raise ModelFileError(
                    f"column {spec.name!r} was saved with encoder {name!r}, which this synthgen "
                    f"does not know (known: {sorted(ENCODER_REGISTRY)}); upgrade synthgen"
                )
            encoder = transformer._make_encoder(encoder_class, spec)
            prefix = f"transform.{index}."
            arrays = {
                key[len(prefix) :]: value.numpy()
                for key, value in tensors.items()
                if key.startswith(prefix)
            }
            encoder.load_state(meta["columns"][spec.name], arrays)
            transformer.encoders_[spec.name] = encoder
        transformer._build_spans()
        return transformer

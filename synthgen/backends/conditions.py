"""Conditional sampling by vectorised rejection, shared by every backend.

A backend that cannot condition natively still honours ``sample(n, conditions=...)``:
rows are generated in large batches, the matching ones kept, and the batch size is
adapted to the observed acceptance rate. A condition too rare to reach within a
bounded number of rounds raises ``ConditionError`` naming it instead of looping forever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from synthgen.errors import ConditionError
from synthgen.schema import Schema

#: Upper bound of rows generated in one rejection round.
MAX_ROUND_ROWS = 250_000


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


class ConditionSampler:
    """Validates conditions against the schema and draws matching rows."""

    def __init__(self, schema: Schema, conditions: Any) -> None:
        self.schema = schema
        if isinstance(conditions, pd.DataFrame):
            rows = conditions.to_dict(orient="records")
        elif isinstance(conditions, dict):
            rows = [conditions]
        elif isinstance(conditions, list | tuple) and all(isinstance(r, dict) for r in conditions):
            rows = list(conditions)
        else:
            raise ConditionError(
                "conditions must be a dict like {'income': '>50K'}, a list of such dicts "
                f"or a DataFrame of condition rows, not {type(conditions).__name__}"
            )
        if not rows:
            raise ConditionError("conditions is empty; pass at least one condition row")
        self.rows = [self._check_row(row) for row in rows]

    def _check_row(self, row: dict[str, Any]) -> dict[str, Any]:
        for column, value in row.items():
            if column not in self.schema.columns:
                raise ConditionError(
                    f"condition column {column!r} is not in the model's schema; columns are "
                    f"{self.schema.names}"
                )
            spec = self.schema[column]
            if spec.kind == "id":
                raise ConditionError(
                    f"condition column {column!r} is an identifier column; identifiers are "
                    "minted anew and cannot be conditioned on"
                )
            if spec.kind in ("categorical", "boolean"):
                if _is_null(value):
                    if not spec.nullable:
                        raise ConditionError(
                            f"condition {column!r}=null is impossible: the column had no nulls"
                        )
                    continue
                if value not in (spec.categories or []):
                    raise ConditionError(
                        f"condition {column!r}={value!r} is not a known category; allowed "
                        f"values: {spec.categories}"
                    )
            elif isinstance(value, tuple | list):
                if len(value) != 2:
                    raise ConditionError(
                        f"condition {column!r}={value!r}: a range is a (low, high) pair"
                    )
                low, high = value
                if spec.kind == "numerical" and low is not None and high is not None and low > high:
                    raise ConditionError(f"condition {column!r}: low {low} is above high {high}")
            elif _is_null(value) and not spec.nullable:
                raise ConditionError(
                    f"condition {column!r}=null is impossible: the column had no nulls"
                )
        return row

    def _mask(self, frame: pd.DataFrame, row: dict[str, Any]) -> np.ndarray:
        mask = np.ones(len(frame), dtype=bool)
        for column, value in row.items():
            series = frame[column]
            if _is_null(value):
                mask &= series.isna().to_numpy()
            elif isinstance(value, tuple | list):
                low, high = value
                if self.schema[column].kind == "datetime":
                    low = pd.Timestamp(low) if low is not None else None
                    high = pd.Timestamp(high) if high is not None else None
                if low is not None:
                    mask &= (series >= low).fillna(False).to_numpy(dtype=bool)
                if high is not None:
                    mask &= (series <= high).fillna(False).to_numpy(dtype=bool)
            else:
                mask &= (series == value).fillna(False).to_numpy(dtype=bool)
        return mask

    def sample(
        self,
        n: int,
        generate: Callable[[int, dict[str, Any]], pd.DataFrame],
        max_tries: int = 100,
    ) -> pd.DataFrame:
        """``n`` rows per condition row, drawn by rejection from ``generate(k, row)``."""
        parts = []
        for row in self.rows:
            parts.append(self._sample_one(n, row, generate, max_tries))
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]

    def _sample_one(
        self,
        n: int,
        row: dict[str, Any],
        generate: Callable[[int, dict[str, Any]], pd.DataFrame],
        max_tries: int,
    ) -> pd.DataFrame:
        kept: list[pd.DataFrame] = []
        have = 0
        generated = 0
        accepted = 0
        batch = n
        for _ in range(max_tries):
            if have >= n:
                break
            frame = generate(batch, row)
            mask = self._mask(frame, row)
            generated += len(frame)
            accepted += int(mask.sum())
            if mask.any():
                kept.append(frame[mask])
                have += int(mask.sum())
            rate = max(accepted / generated, 1.0 / (generated + 1))
            batch = int(min(MAX_ROUND_ROWS, max(1024, 1.2 * (n - have) / rate)))
        if have < n:
            raise ConditionError(
                f"condition {row} was reached by only {have} of {n} requested rows after "
                f"{generated} generated rows ({max_tries} rounds); it is too rare for this "
                "model. Relax the condition, raise max_tries, or use a backend that conditions "
                "natively"
            )
        return pd.concat(kept, ignore_index=True).iloc[:n].reset_index(drop=True)

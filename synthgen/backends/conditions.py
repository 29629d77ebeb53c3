"""Conditional sampling by vectorised rejection, shared by every backend.

A backend that cannot condition natively still honours ``sample(n, conditions=...)``:
rows are generated in large batches, the matching ones kept, and the batch size is
adapted to the observed acceptance rate. A condition too rare to reach within a
bounded number of rounds raises ``ConditionError`` naming it instead of looping forever.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from synthgen.errors import ConditionError
from synthgen.schema import ColumnSpec, Schema, is_timedelta_dtype

#: Upper bound of rows generated in one rejection round.
MAX_ROUND_ROWS = 250_000


def _is_null(value: Any) -> bool:
    if isinstance(value, list | tuple | dict | set | np.ndarray):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _shown(values: list[Any], limit: int = 20) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"


class _Checker:
    """Validates and normalises the condition value(s) of one column.

    A value of the wrong type is refused with a ``ConditionError`` naming the column and
    the value; a value the schema already proves impossible (outside the column's
    bounds, an unknown category) is refused at once, instead of after minutes of
    rejection sampling. Returns the value to match: datetimes and durations parsed to
    pandas scalars (naive datetimes on a time-zone-aware column are read in its zone).
    """

    def __init__(self, spec: ColumnSpec) -> None:
        self.spec = spec
        self.name = spec.name

    def __call__(self, value: Any) -> Any:
        spec = self.spec
        if spec.kind == "id":
            raise ConditionError(
                f"condition column {self.name!r} is an identifier column; identifiers are "
                "minted anew and cannot be conditioned on"
            )
        if _is_null(value):
            if not spec.nullable:
                raise ConditionError(
                    f"condition {self.name!r}=null is impossible: the column had no nulls"
                )
            return value
        if spec.kind in ("categorical", "boolean"):
            return self.category(value)
        if isinstance(value, tuple | list):
            return self.range(value)
        parsed = self.parse(value, "value")
        self.check_reachable(parsed, parsed, f"{value!r}")
        if spec.kind == "numerical" and not is_timedelta_dtype(spec.dtype):
            self.check_grid(parsed)
        return parsed if spec.kind == "datetime" or is_timedelta_dtype(spec.dtype) else value

    # -- categories
    def category(self, value: Any) -> Any:
        categories = self.spec.categories
        if isinstance(value, tuple | list | dict | set | np.ndarray):
            raise ConditionError(
                f"condition {self.name!r}={value!r}: the column is {self.spec.kind}, so a "
                f"condition is one of its values, not a range; allowed values: "
                f"{_shown(categories or [])}"
            )
        if categories is None:  # not learned in the schema: rejection decides
            return value
        try:
            known = value in categories
        except (TypeError, ValueError):
            known = False
        if not known:
            raise ConditionError(
                f"condition {self.name!r}={value!r} is not a known category; allowed "
                f"values: {_shown(categories)}"
            )
        return value

    # -- numbers, durations, datetimes
    def range(self, value: tuple | list) -> tuple[Any, Any]:
        if len(value) != 2:
            raise ConditionError(
                f"condition {self.name!r}={value!r}: a range is a (low, high) pair; use None "
                "for an open end"
            )
        low, high = (None if v is None else self.parse(v, "range end") for v in value)
        if low is not None and high is not None and low > high:
            raise ConditionError(
                f"condition {self.name!r}: low {value[0]!r} is above high {value[1]!r}"
            )
        self.check_reachable(low, high, f"{tuple(value)!r}")
        integer = self.spec.integer and self.spec.kind == "numerical"
        if integer and low is not None and high is not None and math.ceil(low) > math.floor(high):
            raise ConditionError(
                f"condition {self.name!r}={tuple(value)!r} is impossible: the column holds "
                "integers and the range contains none"
            )
        return (low, high)

    def parse(self, value: Any, what: str) -> Any:
        """A number, a ``pd.Timestamp`` or a ``pd.Timedelta``, as the column's kind needs."""
        if self.spec.kind == "datetime":
            return self.timestamp(value, what)
        if is_timedelta_dtype(self.spec.dtype):
            return self.duration(value, what)
        if not _is_number(value) or (isinstance(value, float | np.floating) and np.isnan(value)):
            raise ConditionError(
                f"condition {self.name!r}: {what} {value!r} is not a number, and the column is "
                f"numerical (in [{self.spec.min}, {self.spec.max}]); give a number, a "
                "(low, high) range or None"
            )
        return float(value)

    def timestamp(self, value: Any, what: str) -> pd.Timestamp:
        stamp = self._parsed(
            value,
            what,
            pd.Timestamp,
            "datetime",
            "a date string such as '2020-01-31' or a pd.Timestamp",
        )
        tz = _column_tz(self.spec.dtype)
        if tz is not None and stamp.tzinfo is None:
            return stamp.tz_localize(tz)  # naive values are read in the column's zone
        if tz is None and stamp.tzinfo is not None:
            raise ConditionError(
                f"condition {self.name!r}: {what} {value!r} has a time zone but the column "
                "holds naive datetimes; drop it (pd.Timestamp(value).tz_localize(None))"
            )
        return stamp

    def duration(self, value: Any, what: str) -> pd.Timedelta:
        return self._parsed(
            value, what, pd.Timedelta, "duration", "a string such as '2h' or a pd.Timedelta"
        )

    def _parsed(self, value: Any, what: str, parse: Any, noun: str, example: str) -> Any:
        """``parse(value)``, or a ConditionError naming the column, the value and ``example``.

        Numbers are refused rather than read as epoch nanoseconds: a bare number on a
        datetime or duration column is almost always a mistake.
        """
        if _is_number(value) or isinstance(value, bool):
            raise ConditionError(
                f"condition {self.name!r}: {what} {value!r} is not a {noun}; give {example}"
            )
        try:
            parsed = parse(value)
        except (ValueError, TypeError, OverflowError) as exc:
            raise ConditionError(
                f"condition {self.name!r}: {what} {value!r} does not parse as a {noun} "
                f"({exc}); give {example}"
            ) from None
        if pd.isna(parsed):
            raise ConditionError(f"condition {self.name!r}: {what} {value!r} is not a {noun}")
        return parsed

    def bounds(self) -> tuple[Any, Any]:
        """The schema bounds in the parsed values' type (None where unknown)."""
        spec = self.spec
        convert = float
        if spec.kind == "datetime":
            convert = pd.Timestamp
        elif is_timedelta_dtype(spec.dtype):

            def convert(seconds: Any) -> pd.Timedelta:
                return pd.Timedelta(seconds=float(seconds))

        low = None if spec.min is None else convert(spec.min)
        high = None if spec.max is None else convert(spec.max)
        return low, high

    def check_reachable(self, low: Any, high: Any, shown: str) -> None:
        lowest, highest = self.bounds()
        try:
            outside = (low is not None and highest is not None and low > highest) or (
                high is not None and lowest is not None and high < lowest
            )
        except TypeError:  # time-zone mismatch between schema and value: let rejection decide
            return
        if outside:
            raise ConditionError(
                f"condition {self.name!r}={shown} is impossible: the column's values lie in "
                f"[{lowest}, {highest}] (its schema bounds; generated values are clipped to them)"
            )

    def check_grid(self, value: float) -> None:
        """An exact number the column cannot hold (a fraction in an integer column ...)."""
        spec = self.spec
        decimals = 0 if spec.integer else spec.decimals
        if decimals is None:
            return
        if abs(round(value, decimals) - value) > 1e-9 * max(1.0, abs(value)):
            raise ConditionError(
                f"condition {self.name!r}={value!r} is impossible: the column holds values "
                f"with at most {decimals} decimal(s)"
            )


def _column_tz(dtype: str) -> str | None:
    """The time zone of a datetime dtype string such as 'datetime64[ns, UTC]', or None."""
    if "," not in dtype:
        return None
    return dtype.split(",", 1)[1].rstrip("]").strip()


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
        checked = {}
        for column, value in row.items():
            if column not in self.schema.columns:
                raise ConditionError(
                    f"condition column {column!r} is not in the model's schema; columns are "
                    f"{self.schema.names}"
                )
            checked[column] = _Checker(self.schema[column])(value)
        return checked

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

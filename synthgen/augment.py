"""Augmentation: add synthetic rows of chosen classes to a real table.

The usual use is rebalancing a skewed label before training a classifier: the minority
classes are topped up with rows sampled *conditionally* on that class, so every added
row is a plausible member of the class it is added to.
"""

from __future__ import annotations

import contextlib
import numbers
from typing import Any

import pandas as pd

from synthgen.errors import ConfigError, DataError

#: Most synthetic rows one ``augment`` call adds. The rows are generated and concatenated
#: in memory (plus up to ``MAX_ROUND_ROWS`` per rejection round), so a typo such as
#: ``{"a": 10**9}`` would otherwise grow until the machine runs out of memory. Pass
#: ``max_rows=`` to go higher, or call ``model.sample`` in chunks and write them out.
MAX_AUGMENT_ROWS = 10_000_000


def _target_counts(
    real: pd.Series, strategy: str | dict[Any, int], ratio: float | None
) -> dict[Any, int]:
    """Synthetic rows to add per class, minority classes first."""
    counts = real.value_counts(dropna=False)
    if isinstance(strategy, str):
        if strategy != "balance":
            raise ConfigError(
                f"strategy={strategy!r} is not known; use 'balance' or a dict of class counts"
            )
        ratio = 1.0 if ratio is None else ratio
        if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not 0 < ratio <= 1:
            raise ConfigError(f"ratio={ratio!r} must be in (0, 1]: the share of the majority count")
        goal = int(round(counts.max() * ratio))
        wanted = {label: max(0, goal - int(count)) for label, count in counts.items()}
    elif isinstance(strategy, dict):
        if ratio is not None:
            raise ConfigError("ratio only applies to strategy='balance'")
        wanted = {}
        for label, total in strategy.items():
            if label not in counts.index:
                raise ConfigError(
                    f"class {label!r} does not occur in the target column; classes are "
                    f"{list(counts.index)}"
                )
            if (
                not isinstance(total, numbers.Integral)
                or isinstance(total, bool)
                or total < counts[label]
            ):
                raise ConfigError(
                    f"class {label!r}: asked for {total!r} rows in total but the real data "
                    f"already has {int(counts[label])}; real rows are never dropped"
                )
            wanted[label] = int(total) - int(counts[label])
    else:
        raise ConfigError("strategy must be 'balance' or a dict {class: total rows}")
    order = sorted(wanted, key=lambda label: int(counts[label]))
    return {label: wanted[label] for label in order if wanted[label] > 0}


def augment(
    df: pd.DataFrame,
    model,
    target: str,
    strategy: str | dict[Any, int] = "balance",
    ratio: float | None = None,
    indicator: str | None = "is_synthetic",
    seed: int | None = None,
    max_rows: int = MAX_AUGMENT_ROWS,
) -> pd.DataFrame:
    """Return ``df`` plus synthetic rows of the classes of ``target`` that need them.

    ``strategy="balance"`` tops every class up to the majority count (times ``ratio``);
    a dict ``{class: total}`` asks for exact class totals. ``indicator`` names a
    boolean marker column (None to leave it out). ``max_rows`` caps the synthetic rows
    added (see ``MAX_AUGMENT_ROWS``).
    """
    _check_frame(df, model)
    if target not in df.columns:
        raise DataError(
            f"target column {target!r} is not in the frame; columns: {list(df.columns)}"
        )
    spec = model.schema[target]
    if spec.kind not in ("categorical", "boolean"):
        raise ConfigError(
            f"target {target!r} is {spec.kind}; augmentation by class needs a categorical target"
        )
    if indicator is not None and indicator in df.columns:
        raise ConfigError(f"indicator column {indicator!r} already exists; pick another name")
    plan = _target_counts(df[target], strategy, ratio)
    _check_size(plan, max_rows)
    parts = [df.reset_index(drop=True)]
    for offset, (label, n) in enumerate(plan.items()):
        rows = model.sample(
            n, seed=None if seed is None else seed + offset, conditions={target: label}
        )
        parts.append(rows[df.columns])
    out = pd.concat(parts, ignore_index=True)
    for column in df.columns:  # concat can widen dtypes (e.g. int + empty); restore them
        if out[column].dtype != df[column].dtype:
            with contextlib.suppress(TypeError, ValueError):
                out[column] = out[column].astype(df[column].dtype)
    if indicator is not None:
        out[indicator] = False
        out.loc[len(df) :, indicator] = True
    return out


def _check_frame(df: Any, model) -> None:
    """``df`` must be a frame with exactly the model's columns (synthetic rows have them)."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(
            f"augment needs a pandas DataFrame, got {type(df).__name__}; load files with "
            "pandas.read_csv / read_parquet first"
        )
    names = model.schema.names
    missing = [c for c in names if c not in df.columns]
    extra = [c for c in df.columns if c not in names]
    if missing or extra:
        parts = [f"missing column(s) {missing}"] if missing else []
        parts += [f"column(s) {extra} the model was not trained on"] if extra else []
        raise DataError(
            f"the frame does not have the model's columns: {'; '.join(parts)}. Synthetic rows "
            f"only have the trained columns {names}: select them (df[{names!r}]) or refit"
        )


def _check_size(plan: dict[Any, int], max_rows: Any) -> None:
    if isinstance(max_rows, bool) or not isinstance(max_rows, numbers.Integral) or max_rows < 0:
        raise ConfigError(f"max_rows={max_rows!r} must be a non-negative integer")
    total = sum(plan.values())
    if total > max_rows:
        raise ConfigError(
            f"augmenting would add {total:,} synthetic rows, more than max_rows={max_rows:,}: "
            "they are generated and held in memory at once. Ask for fewer rows, pass a larger "
            "max_rows= if the machine has the memory, or call model.sample in chunks"
        )

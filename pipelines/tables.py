"""Reading and writing tables by file extension (CSV or Parquet), atomically.

Writes go to a temporary file next to the target and are renamed into place, so a
failed or interrupted write never leaves a half-written table behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from synthgen.errors import DataError

READABLE = (".csv", ".csv.gz", ".parquet", ".pq")


def _suffix(path: str | os.PathLike) -> str:
    name = str(path).lower()
    for suffix in (".csv.gz", ".csv", ".parquet", ".pq"):
        if name.endswith(suffix):
            return suffix
    return Path(name).suffix


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Load a CSV or Parquet file; anything else is refused with the list of formats."""
    suffix = _suffix(path)
    if suffix not in READABLE:
        raise DataError(
            f"cannot read {str(path)!r}: unsupported file type {suffix or '(none)'!r}; "
            f"use one of {', '.join(READABLE)}"
        )
    if not os.path.isfile(path):
        raise DataError(f"file {str(path)!r} does not exist")
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {str(path)!r} as {suffix}: {exc}") from None


def check_writable(path: str | os.PathLike) -> None:
    """Refuse an output path of an unknown type before any expensive work is done."""
    suffix = _suffix(path)
    if suffix not in READABLE:
        raise DataError(
            f"cannot write {str(path)!r}: unsupported file type {suffix or '(none)'!r}; "
            f"use one of {', '.join(READABLE)}"
        )


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` as CSV or Parquet (by extension) atomically; returns the path."""
    check_writable(path)
    suffix = _suffix(path)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        if suffix in (".parquet", ".pq"):
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False, compression="gzip" if suffix == ".csv.gz" else None)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target

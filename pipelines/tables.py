"""Reading and writing tables by file extension (CSV or Parquet), atomically.

Writes go to a temporary file next to the target and are renamed into place, so a
failed or interrupted write never leaves a half-written table behind. Output paths are
checked (``check_writable``) before any expensive work, and a missing folder is refused
rather than created: one rule for every command, so a typo in ``--out`` never scatters
new folders and never costs a finished training run. Large outputs are written in
chunks (``write_chunks``) so memory stays bounded, after checking that the estimated
size fits on the target disk (``check_free_space``).
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from synthgen.errors import DataError
from synthgen.paths import atomic_path
from synthgen.paths import check_writable as _check_path

READABLE = (".csv", ".csv.gz", ".parquet", ".pq")


def _suffix(path: str | os.PathLike) -> str:
    name = str(path).lower()
    for suffix in (".csv.gz", ".csv", ".parquet", ".pq"):
        if name.endswith(suffix):
            return suffix
    return Path(name).suffix


def check_input(path: str | os.PathLike, what: str = "file") -> Path:
    """An input path that exists and is a regular file, or a DataError saying which."""
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{what} {str(path)!r} is a directory; give a file inside it")
    if not p.exists():
        raise DataError(f"{what} {str(path)!r} does not exist; check the path")
    if not p.is_file():
        raise DataError(f"{what} {str(path)!r} is not a regular file")
    return p


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Load a CSV or Parquet file; anything else is refused with the list of formats."""
    suffix = _suffix(path)
    if suffix not in READABLE:
        raise DataError(
            f"cannot read {str(path)!r}: unsupported file type {suffix or '(none)'!r}; "
            f"use one of {', '.join(READABLE)}"
        )
    check_input(path)
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as exc:  # pandas / pyarrow raise many types for a damaged file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read {str(path)!r} as {suffix}: {first}") from None


def check_writable(path: str | os.PathLike, what: str = "synthetic data") -> None:
    """Refuse an output table path before any expensive work is done.

    The extension must be a table format, the folder must exist (it is not created),
    be a folder and be writable, and the path must not be a directory.
    """
    suffix = _suffix(path)
    if suffix not in READABLE:
        raise DataError(
            f"cannot write {str(path)!r}: unsupported file type {suffix or '(none)'!r}; "
            f"use one of {', '.join(READABLE)}"
        )
    _check_path(path, what=what, error=DataError)


def _human(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n_bytes) < 1000 or unit == "PB":
            return f"{n_bytes:,.1f} {unit}"
        n_bytes /= 1000
    return f"{n_bytes:,.1f} PB"  # pragma: no cover - loop always returns


def estimate_bytes(probe: pd.DataFrame, n_rows: int, path: str | os.PathLike) -> int:
    """Bytes ``n_rows`` rows like ``probe`` take in ``path``'s format (from the probe)."""
    if len(probe) == 0 or n_rows == 0:
        return 0
    buffer = io.BytesIO()
    suffix = _suffix(path)
    if suffix in (".parquet", ".pq"):
        probe.to_parquet(buffer, index=False)
    else:
        probe.to_csv(buffer, index=False, compression="gzip" if suffix == ".csv.gz" else None)
    return int(len(buffer.getvalue()) / len(probe) * n_rows)


def check_free_space(path: str | os.PathLike, n_bytes: int, n_rows: int) -> None:
    """Refuse an output that would not fit in the free space of its folder."""
    folder = os.path.dirname(os.fspath(path)) or "."
    free = shutil.disk_usage(folder).free
    if n_bytes > free:
        raise DataError(
            f"writing {n_rows:,} rows to {str(path)!r} needs about {_human(n_bytes)} but "
            f"folder {folder!r} has {_human(free)} free; ask for fewer rows or write elsewhere"
        )


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` as CSV or Parquet (by extension) atomically; returns the path."""
    return write_chunks([df], path)


def write_chunks(chunks: Iterable[pd.DataFrame], path: str | os.PathLike) -> Path:
    """Write the frames one after another as one table, atomically; returns the path.

    Only one chunk is in memory at a time: Parquet goes through one
    ``pyarrow.parquet.ParquetWriter`` (a row group per chunk, every chunk cast to the
    first one's schema), CSV through one open file (header once).
    """
    check_writable(path)
    suffix = _suffix(path)
    with atomic_path(path, "table") as tmp:
        if suffix in (".parquet", ".pq"):
            _parquet_chunks(chunks, tmp)
        else:
            _csv_chunks(chunks, tmp, gzipped=suffix == ".csv.gz")
    return Path(path)


def _parquet_chunks(chunks: Iterable[pd.DataFrame], tmp: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    try:
        for chunk in chunks:
            if writer is None:
                table = pa.Table.from_pandas(chunk, preserve_index=False)
                writer = pq.ParquetWriter(tmp, table.schema)
            else:
                table = pa.Table.from_pandas(chunk, schema=writer.schema, preserve_index=False)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def _csv_chunks(chunks: Iterable[pd.DataFrame], tmp: Path, gzipped: bool) -> None:
    opener = gzip.open if gzipped else open
    with opener(tmp, "wt", newline="", encoding="utf-8") as handle:
        for i, chunk in enumerate(chunks):
            chunk.to_csv(handle, index=False, header=i == 0)

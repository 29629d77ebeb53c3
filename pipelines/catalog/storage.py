"""Where catalog files live: content-addressed Parquet under a storage root.

The root is a local folder or any fsspec URL (``s3://bucket/synthgen``,
``memory://``...). A dataset's file is named by the digest of its content, so the same
content is stored once and a stored file never changes. Files are written under a
temporary name in ``<root>/tmp``, flushed (and fsynced on local disks) and then renamed
into place: a reader never sees half a file, and whatever a crash leaves in ``tmp`` or
unreferenced in ``data`` is removed by ``synthgen catalog gc``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from synthgen.errors import ConfigError, DataError

#: Folders under the root: committed files and files being written.
DATA_DIR = "data"
REPORTS_DIR = "reports"
MODELS_DIR = "models"
TMP_DIR = "tmp"


def content_digest(df: pd.DataFrame) -> str:
    """SHA-256 of a table's content: column names, dtypes and every value in row order.

    Independent of the file encoding (Parquet writer version, compression), so exporting
    the same frame twice gives the same digest; any changed value, column name, dtype or
    row order gives another.
    """
    h = hashlib.sha256()
    header = [[str(c), str(df[c].dtype)] for c in df.columns]
    h.update(json.dumps({"columns": header, "rows": len(df)}).encode())
    for column in df.columns:
        values = pd.util.hash_pandas_object(df[column], index=False, categorize=False)
        h.update(values.to_numpy().tobytes())
    return h.hexdigest()


def encode_table(df: pd.DataFrame) -> tuple[bytes, pd.DataFrame, str]:
    """Parquet bytes of ``df``, the frame as it reads back, and that frame's digest.

    The digest is taken of what the file holds (missing values in a text column read
    back as None whether they were NaN, None or NA), so a dataset read from storage
    always matches its recorded digest.
    """
    data = parquet_bytes(df)
    stored = pd.read_parquet(io.BytesIO(data), engine="pyarrow")
    return data, stored, content_digest(stored)


def bytes_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parquet_bytes(df: pd.DataFrame) -> bytes:
    """The frame as Parquet bytes (pyarrow, zstd; the index is not stored)."""
    buffer = io.BytesIO()
    try:
        df.to_parquet(buffer, engine="pyarrow", index=False, compression="zstd")
    except Exception as exc:  # pyarrow raises several types for unstorable columns
        raise DataError(
            f"the table cannot be stored as Parquet: {exc}; convert mixed-type object "
            "columns to one type (str or a number) first"
        ) from exc
    return buffer.getvalue()


@dataclass(frozen=True)
class StoredFile:
    uri: str
    bytes: int


class Storage:
    """A storage root: local path or fsspec URL."""

    def __init__(self, root: str | os.PathLike) -> None:
        import fsspec

        text = str(root)
        if "://" not in text:
            path = Path(text).expanduser().resolve()
            text = str(path)
            self.local = True
        else:
            self.local = text.startswith("file://")
            if self.local:
                text = str(Path(text[len("file://") :]).resolve())
        try:
            self.fs, self.root = fsspec.core.url_to_fs(text)
        except (ValueError, ImportError) as exc:
            raise ConfigError(
                f"storage root {root!r} is not usable: {exc}; give a local folder or an fsspec "
                "URL whose filesystem is installed"
            ) from exc
        self.url = text if not self.local else str(Path(text))
        self.root = self.root.rstrip("/")

    # ------------------------------------------------------------------ paths
    def _join(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def uri_of(self, path: str) -> str:
        if self.local:
            return path
        return self.fs.unstrip_protocol(path)

    def path_of(self, uri: str) -> str:
        """The storage path of a URI, refused unless it lies under this root."""
        path = uri if self.local else self.fs._strip_protocol(uri)
        if self.local:
            path = str(Path(path).resolve())
        if not (path == self.root or path.startswith(self.root + "/")):
            raise ConfigError(f"{uri!r} is outside the catalog's storage root {self.url}")
        return path

    def data_path(self, digest: str, suffix: str = ".parquet") -> str:
        return self._join(DATA_DIR, digest[:2], digest + suffix)

    # ------------------------------------------------------------------ writing
    def put(self, data: bytes, final: str) -> StoredFile:
        """Write ``data`` at ``final`` atomically; an existing file (same content) is kept."""
        if self.fs.exists(final):
            if self.local:  # young again: a gc's min_age protects it until the commit
                os.utime(final)
            return StoredFile(self.uri_of(final), int(self.fs.size(final)))
        tmp = self._join(TMP_DIR, f"{uuid.uuid4().hex}.part")
        self.fs.makedirs(self._join(TMP_DIR), exist_ok=True)
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        if self.local:
            self._put_local(data, tmp, final)
        else:
            with self.fs.open(tmp, "wb") as handle:
                handle.write(data)
            self.fs.mv(tmp, final)
        return StoredFile(self.uri_of(final), len(data))

    @staticmethod
    def _put_local(data: bytes, tmp: str, final: str) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        _fsync_dir(os.path.dirname(final))

    def put_table(self, data: bytes, digest: str) -> StoredFile:
        """Store encoded table bytes (``encode_table``) under their content digest."""
        return self.put(data, self.data_path(digest))

    def put_named(self, folder: str, data: bytes, suffix: str) -> StoredFile:
        """A content-addressed file of another kind (report, model)."""
        digest = bytes_digest(data)
        return self.put(data, self._join(folder, digest[:2], digest + suffix))

    # ------------------------------------------------------------------ reading
    def read_bytes(self, uri: str) -> bytes:
        with self.fs.open(self.path_of(uri), "rb") as handle:
            return handle.read()

    def read_table(self, uri: str) -> pd.DataFrame:
        with self.fs.open(self.path_of(uri), "rb") as handle:
            return pd.read_parquet(handle, engine="pyarrow")

    def exists(self, uri: str) -> bool:
        return bool(self.fs.exists(self.path_of(uri)))

    # ------------------------------------------------------------------ gc
    def files(self) -> list[tuple[str, float]]:
        """Every file under data/, reports/, models/ and tmp/, with its age in seconds."""
        found = []
        now = time.time()
        for folder in (DATA_DIR, REPORTS_DIR, MODELS_DIR, TMP_DIR):
            base = self._join(folder)
            if not self.fs.exists(base):
                continue
            for path, info in self.fs.find(base, detail=True).items():
                found.append((path, now - _mtime(info, now)))
        return found

    def remove(self, path: str) -> None:
        self.fs.rm(path)


def _mtime(info: dict[str, Any], default: float) -> float:
    for key in ("mtime", "created", "LastModified", "last_modified"):
        value = info.get(key)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return default


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

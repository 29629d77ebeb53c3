"""Where catalog files live: content-addressed Parquet under a storage root.

The root is a local folder or any fsspec URL (``s3://bucket/synthgen``,
``memory://``...). A dataset's file is named by the digest of its content, so the same
content is stored once and a stored file never changes. Files are written under a
temporary name in ``<root>/tmp``, flushed (and fsynced on local disks) and then renamed
into place: a reader never sees half a file, and whatever a crash leaves in ``tmp`` or
unreferenced in ``data`` is removed by ``synthgen catalog gc``.

Image datasets (``IMAGE_FORMAT``) use the same files and rules: Parquet with the PNG
bytes of each image and its class name (``synthgen.images`` storage format), named by a
digest of the decoded content (schema, 8-bit pixels, labels). The feature extractor an
image dataset was evaluated with is kept under ``extractors/``, named by its own digest.
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
EXTRACTORS_DIR = "extractors"
TMP_DIR = "tmp"
#: ``format`` of an image dataset: Parquet of PNGs (``synthgen.images.ImageSet.to_parquet``).
IMAGE_FORMAT = "parquet-png"


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


def image_digest(images: Any) -> str:
    """SHA-256 of an image set's content: its schema, every 8-bit pixel and every label,
    in order.

    Taken of what PNG storage holds (``ImageSet.to_uint8``), so it does not depend on
    the PNG or Parquet encoder; a changed pixel, label, class list or order gives another.
    """
    import numpy as np

    h = hashlib.sha256()
    header = {"modality": "images", "schema": images.schema.to_dict(), "images": len(images)}
    h.update(json.dumps(header, sort_keys=True).encode())
    h.update(np.ascontiguousarray(images.to_uint8()).tobytes())
    h.update(np.ascontiguousarray(images.labels, dtype="<i8").tobytes())
    return h.hexdigest()


def encode_images(images: Any) -> tuple[bytes, Any, str]:
    """Parquet-of-PNG bytes of an ``ImageSet``, the set as it reads back, and its digest
    (the counterpart of ``encode_table``: the digest is of what the file holds)."""
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(images.to_arrow(), buffer, compression="zstd")
    data = buffer.getvalue()
    stored = decode_images(data)
    return data, stored, image_digest(stored)


def decode_images(data: bytes, where: str = "the stored images") -> Any:
    """An ``ImageSet`` from Parquet-of-PNG bytes (``encode_images``)."""
    import pyarrow.parquet as pq

    from synthgen.images import ImageSet

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several kinds for bytes that are not Parquet
        raise DataError(f"{where} are not a Parquet file: {exc}") from None
    return ImageSet.from_arrow(table, where)


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

    def extractor_path(self, digest: str) -> str:
        """Where the image feature extractor with this digest (of its configuration and
        weights, ``ImageFeatureExtractor.digest``) is kept: one extractor, one file."""
        return self._join(EXTRACTORS_DIR, digest[:2], digest + ".synth")

    def put_extractor(self, data: bytes, digest: str) -> StoredFile:
        """Store a saved image feature extractor under its digest (``extractor_path``)."""
        return self.put(data, self.extractor_path(digest))

    # ------------------------------------------------------------------ reading
    def read_bytes(self, uri: str) -> bytes:
        with self.fs.open(self.path_of(uri), "rb") as handle:
            return handle.read()

    def read_table(self, uri: str) -> pd.DataFrame:
        with self.fs.open(self.path_of(uri), "rb") as handle:
            return pd.read_parquet(handle, engine="pyarrow")

    def read_images(self, uri: str) -> Any:
        """The ``ImageSet`` of an image dataset file."""
        return decode_images(self.read_bytes(uri), repr(uri))

    def exists(self, uri: str) -> bool:
        return bool(self.fs.exists(self.path_of(uri)))

    # ------------------------------------------------------------------ gc
    def files(self) -> list[tuple[str, float]]:
        """Every file under data/, reports/, models/, extractors/ and tmp/, with its age
        in seconds."""
        found = []
        now = time.time()
        for folder in (DATA_DIR, REPORTS_DIR, MODELS_DIR, EXTRACTORS_DIR, TMP_DIR):
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

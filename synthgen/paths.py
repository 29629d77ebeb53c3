"""Output paths checked before work starts.

Why a module of its own: a fit can run for an hour, and finding out only at the end that
``--out nodir/m.synth`` cannot be written loses the model. Every writer (``model.save``,
the command line's ``--out`` options, report writers) calls ``check_writable`` first, so
the rule and its messages live in one place.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from synthgen.errors import DataError, ModelFileError, SynthgenError

__all__ = ["atomic_path", "check_writable"]


@contextmanager
def atomic_path(path: str | os.PathLike, what: str = "file") -> Iterator[Path]:
    """A temporary path next to ``path``, renamed onto it on success, removed on failure.

    A reader never sees a half-written file and a failed write leaves the old file (or
    nothing) in place. An ``OSError`` becomes a ``DataError`` naming ``what`` and the path.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        raise DataError(f"cannot write {what} to {str(path)!r}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def check_writable(
    path: str | os.PathLike,
    what: str = "model",
    error: type[SynthgenError] | None = None,
) -> str:
    """Raise unless a file can be written at ``path``; return the path as a string.

    The parent folder must exist, be a folder and be writable, and ``path`` itself must
    not be a folder. Nothing is created. ``what`` names the output in the message
    ("model", "report", "synthetic data", ...). The error is ``ModelFileError`` for a
    model and ``DataError`` for anything else unless ``error`` says otherwise.
    """
    error_class = error or (ModelFileError if what == "model" else DataError)
    if not isinstance(path, str | os.PathLike):
        raise error_class(f"cannot write {what}: {path!r} is not a file path; give a file name")
    text = os.fspath(path)
    if not isinstance(text, str) or not text.strip():
        raise error_class(f"cannot write {what}: the output path {text!r} is empty; give a file")
    prefix = f"cannot write {what} to {text!r}"
    if os.path.isdir(text):
        raise error_class(f"{prefix}: it is a directory; give a file path inside it")
    folder = os.path.dirname(text) or "."
    if not os.path.exists(folder):
        raise error_class(f"{prefix}: folder {folder!r} does not exist; create it first")
    if not os.path.isdir(folder):
        raise error_class(f"{prefix}: {folder!r} is a file, not a folder; choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise error_class(
            f"{prefix}: folder {folder!r} is not writable; choose a folder you can write to"
        )
    if os.path.exists(text) and not os.path.isfile(text):
        raise error_class(f"{prefix}: it exists and is not a regular file; choose another path")
    return text

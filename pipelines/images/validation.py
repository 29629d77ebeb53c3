"""The validation gate for image sets: what an exported image set must be, checked.

Why a gate of its own: great-expectations checks columns of a table; an image set is an
array ``(n, channels, height, width)`` with a label per image, and what can go wrong
with it is of another kind: a backend that returns the wrong shape or colour mode,
pixels outside ``[0, 1]`` or not finite, labels that are no class, or fewer images of a
class than the job asked for. ``image_suite`` writes down what to check (a JSON dict,
stored with the result like the tabular suite); ``validate_images`` checks it with
array reductions and returns the same ``pipelines.validation.ValidationResult`` as the
tabular gate, each failure one line that names the image or class at fault, e.g.
``image 17 has pixels outside [0, 1] (min -0.2, max 1.3)`` or ``class '7' has 0
images, 50 asked``.

``validate_images`` takes an ``ImageSet`` or raw arrays: an ``ImageSet`` already
refuses NaN and out-of-range pixels when it is built, but data from elsewhere (a
backend's raw output, a file read without ``ImageSet``) is checked here before it goes
anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from synthgen.errors import ConfigError, DataError

__all__ = ["SUITE_KIND", "image_suite", "validate_images"]

#: ``kind`` of an image suite (tells it from a great-expectations suite).
SUITE_KIND = "synthgen.images"
#: Offending images named in a message / kept in ``unexpected``.
SHOWN = 5
KEPT = 20
#: How a label code outside the classes is held among the names (it matches no class).
CODE_MARK = "\x00code "
#: The checks, in the order they run and are reported.
CHECKS = ("shape", "classes", "labels", "finite", "range", "count", "per_class", "all_classes")


# --------------------------------------------------------------------------- the suite
def image_suite(
    schema: Any,
    *,
    count: int | None = None,
    per_class: Mapping[str, int] | int | None = None,
    require_all_classes: bool = False,
) -> dict[str, Any]:
    """What an image set must satisfy: ``schema``'s shape and classes, pixels finite
    and in ``[0, 1]``, labels among the classes, and optionally exactly ``count``
    images, at least ``per_class`` images of each class named (an int: of every class),
    and every class present (``require_all_classes``).
    """
    from synthgen.images import ImageSchema

    if not isinstance(schema, ImageSchema):
        raise ConfigError(f"schema must be an ImageSchema, not {type(schema).__name__}")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise ConfigError(f"count={count!r} must be None or a whole number >= 0")
    if isinstance(per_class, int) and not isinstance(per_class, bool):
        per_class = {c: per_class for c in schema.classes}
    asked = {str(k): v for k, v in dict(per_class or {}).items()}
    unknown = sorted(k for k in asked if k not in schema.classes)
    if unknown:
        classes = list(schema.classes)
        raise ConfigError(
            f"per_class names {unknown}, which are not classes of the schema {classes}"
        )
    bad = {k: v for k, v in asked.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0}
    if bad:
        raise ConfigError(f"per_class counts {bad} must be whole numbers >= 0")
    return {
        "kind": SUITE_KIND,
        "schema": schema.to_dict(),
        "count": count,
        "per_class": asked or None,
        "require_all_classes": bool(require_all_classes),
    }


def _schema_of(suite: Any) -> Any:
    from synthgen.images import ImageSchema

    if not isinstance(suite, Mapping) or suite.get("kind") != SUITE_KIND:
        raise ConfigError(
            f"an image suite is a dict with kind {SUITE_KIND!r} (from image_suite), not "
            f"{type(suite).__name__}"
        )
    return ImageSchema.from_dict(dict(suite["schema"]))


# --------------------------------------------------------------------------- inputs
def _arrays(images: Any, labels: Any, schema: Any) -> tuple[np.ndarray, np.ndarray, Any]:
    """(pixels as float64 array, labels as class-name array, the set's classes or None)."""
    from synthgen.images import ImageSet

    if isinstance(images, ImageSet):
        if labels is not None:
            raise ConfigError("an ImageSet carries its labels; pass labels only with raw arrays")
        names = np.array(images.label_names, dtype=object)
        return np.asarray(images.images), names, images.schema.classes
    pixels = np.asarray(images)
    if pixels.dtype == object or not np.issubdtype(pixels.dtype, np.number):
        raise DataError(f"images must be a numeric array, not {pixels.dtype}")
    if labels is None:
        raise ConfigError("raw image arrays need labels= (class names or codes), one per image")
    raw = np.asarray(labels)
    if raw.ndim != 1:
        raise DataError(f"labels must be one-dimensional, got shape {raw.shape}")
    if np.issubdtype(raw.dtype, np.integer):
        k = schema.n_classes
        names = np.array(
            [schema.classes[v] if 0 <= v < k else f"{CODE_MARK}{v}" for v in raw.tolist()],
            dtype=object,
        )
    else:
        names = np.array([str(v) for v in raw.tolist()], dtype=object)
    return pixels, names, None


# --------------------------------------------------------------------------- checks
def _indices(mask: np.ndarray) -> list[int]:
    return [int(i) for i in np.flatnonzero(mask)[:KEPT]]


def _more(total: int) -> str:
    return f"; {total} images in all" if total > 1 else ""


def _shape(pixels: np.ndarray, schema: Any) -> dict[str, Any]:
    c, h, w = schema.shape
    expected = f"{c}x{h}x{w}"
    if pixels.ndim != 4:
        return _fail(
            "shape",
            f"images have shape {tuple(pixels.shape)}; expected (n, {c}, {h}, {w}) "
            "(n, channels, height, width)",
            list(pixels.shape),
            expected,
        )
    found = tuple(int(v) for v in pixels.shape[1:])
    if found == schema.shape:
        return _pass("shape", list(found), expected)
    if found[0] != c:
        message = f"images have {found[0]} channel(s), the schema says {c}"
    else:
        message = f"images are {found[1]}x{found[2]} pixels, the schema says {h}x{w}"
    return _fail("shape", message + f" (expected {expected})", list(found), expected)


def _classes(own: Sequence[str] | None, schema: Any) -> dict[str, Any]:
    expected = list(schema.classes)
    if own is None or list(own) == expected:
        return _pass("classes", expected if own is None else list(own), expected)
    return _fail(
        "classes",
        f"the image set's classes {list(own)} differ from the schema's {expected}",
        list(own),
        expected,
    )


def _labels(names: np.ndarray, n: int, schema: Any) -> dict[str, Any]:
    if len(names) != n:
        return _fail("labels", f"{len(names)} labels for {n} images", len(names), n)
    known = set(schema.classes)
    bad = np.array([v not in known for v in names.tolist()], dtype=bool)
    if not bad.any():
        return _pass("labels", n, list(schema.classes))
    first = int(np.flatnonzero(bad)[0])
    label = str(names[first])
    shown = f"code {label[len(CODE_MARK) :]}" if label.startswith(CODE_MARK) else repr(label)
    classes = list(schema.classes)
    message = f"image {first} has label {shown}, not a class of {classes}{_more(int(bad.sum()))}"
    return _fail("labels", message, int(bad.sum()), list(schema.classes), _indices(bad))


def _finite(flat: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    bad = ~np.isfinite(flat).all(axis=1)
    if not bad.any():
        return _pass("finite", 0, 0), bad
    first = int(np.flatnonzero(bad)[0])
    message = f"image {first} holds NaN or infinite pixels" + _more(int(bad.sum()))
    return _fail("finite", message, int(bad.sum()), 0, _indices(bad)), bad


def _range(flat: np.ndarray, nonfinite: np.ndarray) -> dict[str, Any]:
    with np.errstate(invalid="ignore"):
        safe = np.where(np.isfinite(flat), flat, 0.5)  # NaN/inf are the finite check's
        low, high = safe.min(axis=1), safe.max(axis=1)
    bad = ((low < 0.0) | (high > 1.0)) & ~nonfinite
    if not bad.any():
        return _pass("range", 0, [0.0, 1.0])
    first = int(np.flatnonzero(bad)[0])
    message = (
        f"image {first} has pixels outside [0, 1] (min {low[first]:.4g}, max {high[first]:.4g})"
        + _more(int(bad.sum()))
    )
    return _fail("range", message, int(bad.sum()), [0.0, 1.0], _indices(bad))


def _count(n: int, expected: int | None) -> dict[str, Any] | None:
    if expected is None:
        return None
    if n == expected:
        return _pass("count", n, expected)
    return _fail("count", f"the set holds {n} images, expected exactly {expected}", n, expected)


def _per_class(names: np.ndarray, asked: Mapping[str, int] | None) -> dict[str, Any] | None:
    if not asked:
        return None
    found = {c: int(np.sum(names == c)) for c in asked}
    short = {c: (found[c], k) for c, k in asked.items() if found[c] < k}
    if not short:
        return _pass("per_class", found, dict(asked))
    parts = [f"class {c!r} has {got} images, {k} asked" for c, (got, k) in short.items()]
    return _fail("per_class", "; ".join(parts), found, dict(asked), sorted(short))


def _all_classes(names: np.ndarray, schema: Any, required: bool) -> dict[str, Any] | None:
    if not required:
        return None
    missing = [c for c in schema.classes if not np.any(names == c)]
    if not missing:
        return _pass("all_classes", list(schema.classes), list(schema.classes))
    message = ", ".join(f"class {c!r} has 0 images" for c in missing[:SHOWN])
    more = f" (and {len(missing) - SHOWN} more)" if len(missing) > SHOWN else ""
    return _fail(
        "all_classes",
        f"{message}{more}; every class must be present",
        len(schema.classes) - len(missing),
        len(schema.classes),
        missing,
    )


def _pass(check: str, observed: Any, expected: Any) -> dict[str, Any]:
    return {"check": check, "success": True, "observed": observed, "expected": expected}


def _fail(
    check: str, message: str, observed: Any, expected: Any, unexpected: list[Any] | None = None
) -> dict[str, Any]:
    return {
        "check": check,
        "success": False,
        "observed": observed,
        "expected": expected,
        "message": message,
        "unexpected": unexpected or [],
    }


# --------------------------------------------------------------------------- the gate
def validate_images(images: Any, suite: Mapping[str, Any], labels: Any = None) -> Any:
    """Check ``images`` (an ``ImageSet``, or an ``(n, c, h, w)`` array with ``labels``:
    class names or codes into the suite's classes) against ``suite`` (``image_suite``).

    Returns a ``pipelines.validation.ValidationResult``: ``success`` is the gate's
    answer, ``failures`` one line each, ``result`` every check with what it observed.
    """
    from pipelines.validation import ValidationFailure, ValidationResult

    schema = _schema_of(suite)
    pixels, names, own_classes = _arrays(images, labels, schema)
    n = int(pixels.shape[0]) if pixels.ndim >= 1 else 0
    results = [_shape(pixels, schema), _classes(own_classes, schema), _labels(names, n, schema)]
    if pixels.ndim >= 1 and n:
        flat = pixels.reshape(n, -1).astype(np.float64, copy=False)
        finite, nonfinite = _finite(flat)
        results += [finite, _range(flat, nonfinite)]
    for extra in (
        _count(n, suite.get("count")),
        _per_class(names, suite.get("per_class")),
        _all_classes(names, schema, bool(suite.get("require_all_classes"))),
    ):
        if extra is not None:
            results.append(extra)
    passed = sum(r["success"] for r in results)
    statistics = {
        "evaluated_expectations": len(results),
        "successful_expectations": passed,
        "unsuccessful_expectations": len(results) - passed,
        "success_percent": 100.0 * passed / len(results) if results else math.nan,
    }
    result = {
        "success": passed == len(results),
        "validator": SUITE_KIND,
        "images": n,
        "statistics": statistics,
        "results": results,
    }
    failures = [
        ValidationFailure(
            r["check"],
            "label" if r["check"] in ("labels", "per_class", "all_classes") else None,
            r["message"],
            list(r["unexpected"]),
        )
        for r in results
        if not r["success"]
    ]
    return ValidationResult(success=result["success"], result=result, failures=failures)

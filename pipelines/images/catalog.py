"""What the catalog records about an image dataset besides its file: the profile.

Why a profile of its own: the table profile (``pipelines.catalog.profile``) describes
columns; an image set's file has two (the PNG bytes and the class name), which say
little. The profile keeps those two columns (so the auditors' page and the OpenLineage
facets, which read ``profile["columns"]``, work unchanged) and adds an ``images``
block: shape, classes, images per class, pixel statistics, how many images are exact
duplicates, and the feature extractor the version was evaluated with.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import pandas as pd

from pipelines.catalog.profile import column_profile


def extractor_entry(extractor: Any, uri: str) -> dict[str, Any]:
    """The profile's record of a feature extractor: enough to find and trust it again."""
    return {"name": extractor.name, "digest": extractor.digest, "uri": uri}


def _distinct(pixels: np.ndarray) -> int:
    """Distinct images (byte-identical ones counted once): duplicates hint at memorising."""
    flat = pixels.reshape(len(pixels), -1)
    return len({hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat})


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(float(value)) else None


def image_profile(images: Any, extractor: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON-safe profile of an ``ImageSet`` as stored (8-bit pixels)."""
    schema = images.schema
    pixels = images.to_uint8()
    counts = np.bincount(images.labels, minlength=schema.n_classes)
    scaled = pixels.astype(np.float64) / 255.0
    labels = pd.Series(images.label_names, dtype=object, name="label")
    distinct = _distinct(pixels) if len(images) else 0
    return {
        "rows": len(images),
        "columns": {
            "image": {"dtype": "binary (PNG)", "null_count": 0, "distinct_count": distinct},
            "label": column_profile(labels),
        },
        "images": {
            "shape": list(schema.shape),
            "classes": list(schema.classes),
            "class_counts": {c: int(n) for c, n in zip(schema.classes, counts, strict=True)},
            "pixel_mean": _number(scaled.mean()) if len(images) else None,
            "pixel_std": _number(scaled.std()) if len(images) else None,
            "duplicates": len(images) - distinct,
            "extractor": extractor,
        },
    }


def image_summary(schema: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
    """What ``catalog show`` adds for an image dataset: count, shape, classes, extractor."""
    block = (profile or {}).get("images") or {}
    shape = block.get("shape") or [
        schema.get("channels", 1),
        schema.get("height"),
        schema.get("width"),
    ]
    return {
        "count": int((profile or {}).get("rows", 0)),
        "shape": list(shape),
        "classes": list(block.get("classes") or schema.get("classes") or []),
        "class_counts": dict(block.get("class_counts") or {}),
        "extractor": block.get("extractor"),
    }

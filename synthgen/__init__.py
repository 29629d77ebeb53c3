"""synthgen: synthetic data generators, written from the papers.

import synthgen as sg
df = sg.datasets.load("adult")
model = sg.TVAE(epochs=300, seed=0).fit(df)
syn = model.sample(10_000, seed=1)

The public names are resolved on first use (PEP 562): importing ``synthgen.core``,
``synthgen.schema`` or ``synthgen.errors`` (as ``privacy`` and the evaluators do) must
not load the four backends and torch's network modules, and a package ``__init__``
that imports nothing cannot take part in an import cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> (module, attribute); attribute None means the module itself.
_LAZY: dict[str, tuple[str, str | None]] = {
    "AIM": ("synthgen.backends", "AIM"),
    "MST": ("synthgen.backends", "MST"),
    "BACKENDS": ("synthgen.backends", "BACKENDS"),
    "CTGAN": ("synthgen.backends", "CTGAN"),
    "ImageVAE": ("synthgen.backends", "ImageVAE"),
    "ImageGAN": ("synthgen.backends", "ImageGAN"),
    "ImageDDPM": ("synthgen.backends", "ImageDDPM"),
    "ImageSchema": ("synthgen.images", "ImageSchema"),
    "ImageSet": ("synthgen.images", "ImageSet"),
    "images": ("synthgen.images", None),
    "TVAE": ("synthgen.backends", "TVAE"),
    "TabDDPM": ("synthgen.backends", "TabDDPM"),
    "TabularAR": ("synthgen.backends", "TabularAR"),
    "BaseGenerator": ("synthgen.backends", "BaseGenerator"),
    "ColumnSpec": ("synthgen.schema", "ColumnSpec"),
    "Schema": ("synthgen.schema", "Schema"),
    "SynthgenError": ("synthgen.core.errors", "SynthgenError"),
    "TableTransformer": ("synthgen.transforms", "TableTransformer"),
    "augment": ("synthgen.augment", "augment"),
    "datasets": ("synthgen.datasets", None),
    "errors": ("synthgen.errors", None),
    "load_model": ("synthgen.models", "load_model"),
}

__all__ = [
    "AIM",
    "MST",
    "BACKENDS",
    "CTGAN",
    "ImageDDPM",
    "ImageGAN",
    "ImageSchema",
    "ImageSet",
    "ImageVAE",
    "TVAE",
    "TabDDPM",
    "TabularAR",
    "BaseGenerator",
    "ColumnSpec",
    "Schema",
    "SynthgenError",
    "TableTransformer",
    "__version__",
    "augment",
    "datasets",
    "errors",
    "images",
    "load_model",
]


def __getattr__(name: str) -> Any:
    """Import the module behind a public name on first access and cache the value."""
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'synthgen' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what static tools see; nothing here runs
    from synthgen import datasets, errors
    from synthgen.augment import augment
    from synthgen.backends import (
        AIM,
        BACKENDS,
        CTGAN,
        MST,
        TVAE,
        BaseGenerator,
        ImageDDPM,
        ImageGAN,
        ImageVAE,
        TabDDPM,
        TabularAR,
    )
    from synthgen.core.errors import SynthgenError
    from synthgen.images import ImageSchema, ImageSet
    from synthgen.models import load_model
    from synthgen.schema import ColumnSpec, Schema
    from synthgen.transforms import TableTransformer

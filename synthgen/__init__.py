"""synthgen: synthetic data generators, written from the papers.

import synthgen as sg
df = sg.datasets.load("adult")
model = sg.TVAE(epochs=300, seed=0).fit(df)
syn = model.sample(10_000, seed=1)
"""

from synthgen import datasets, errors
from synthgen.augment import augment
from synthgen.backends import BACKENDS, CTGAN, TVAE, BaseGenerator, TabDDPM, TabularAR
from synthgen.errors import SynthgenError
from synthgen.io import load_model
from synthgen.schema import ColumnSpec, Schema
from synthgen.transforms import TableTransformer

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "CTGAN",
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
    "load_model",
]

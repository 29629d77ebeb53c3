"""Generator backends; ``BACKENDS`` maps the name stored in model files to the class."""

from synthgen.backends.base import BaseGenerator
from synthgen.backends.ctgan import CTGAN
from synthgen.backends.tabddpm import TabDDPM
from synthgen.backends.tabular_ar import TabularAR
from synthgen.backends.tvae import TVAE

BACKENDS: dict[str, type[BaseGenerator]] = {
    "tvae": TVAE,
    "ctgan": CTGAN,
    "tabular_ar": TabularAR,
    "tabddpm": TabDDPM,
}

__all__ = ["BACKENDS", "CTGAN", "TVAE", "BaseGenerator", "TabDDPM", "TabularAR"]

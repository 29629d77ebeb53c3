"""Generator backends; ``BACKENDS`` maps the name stored in model files to the class."""

from synthgen.backends.base import BaseGenerator
from synthgen.backends.ctgan import CTGAN
from synthgen.backends.marginal import AIM, MST
from synthgen.backends.tabddpm import TabDDPM
from synthgen.backends.tabular_ar import TabularAR
from synthgen.backends.tvae import TVAE

BACKENDS: dict[str, type[BaseGenerator]] = {
    "tvae": TVAE,
    "ctgan": CTGAN,
    "tabular_ar": TabularAR,
    "tabddpm": TabDDPM,
    "aim": AIM,
    "mst": MST,
}

__all__ = ["AIM", "BACKENDS", "CTGAN", "MST", "TVAE", "BaseGenerator", "TabDDPM", "TabularAR"]

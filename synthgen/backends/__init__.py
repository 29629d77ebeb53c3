"""Generator backends; ``BACKENDS`` maps the name stored in model files to the class."""

from synthgen.backends.base import BaseGenerator
from synthgen.backends.ctgan import CTGAN
from synthgen.backends.image_ddpm import ImageDDPM
from synthgen.backends.image_gan import ImageGAN
from synthgen.backends.image_vae import ImageVAE
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
    "image_vae": ImageVAE,
    "image_gan": ImageGAN,
    "image_ddpm": ImageDDPM,
}

__all__ = [
    "AIM",
    "BACKENDS",
    "CTGAN",
    "ImageDDPM",
    "ImageGAN",
    "ImageVAE",
    "MST",
    "TVAE",
    "BaseGenerator",
    "TabDDPM",
    "TabularAR",
]

"""Image data for the image backends: ``ImageSet``, ``ImageSchema`` and the bundled digits."""

from synthgen.images.data import ImageSchema, ImageSet, load_digits

__all__ = ["ImageSchema", "ImageSet", "load_digits"]

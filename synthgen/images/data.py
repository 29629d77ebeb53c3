"""Image sets: pixels, class labels and the schema that says what they may be.

Why a class of its own: an image set is not a table (a frame of 784 pixel columns would
lose the shape and make every transform wrong), yet it has to travel through the same
places: a backend's ``fit``, the evaluation suite, the validation gate and the catalog.
``ImageSet`` keeps pixels as one float32 array ``(n, channels, height, width)`` in
``[0, 1]`` and labels as integer codes into ``schema.classes``; every way in
(``from_arrays``, ``from_folder``, ``from_parquet``, ``load_digits``) validates at the
boundary, so code behind it never re-checks.

Storage format (``to_parquet``): one row per image, ``image`` holding the PNG bytes
(8-bit grayscale for one channel, RGB for three) and ``label`` the class name; the
schema is stored as JSON in the Parquet key-value metadata under ``synthgen.images``.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthgen.errors import DataError, SchemaError

__all__ = ["ImageSchema", "ImageSet", "load_digits"]

#: Channel counts PNG storage supports here (grayscale, RGB).
CHANNELS = (1, 3)
#: Largest side accepted (the backends are sized for small images on CPUs).
MAX_SIDE = 256
#: Image file suffixes ``from_folder`` reads.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
PARQUET_KEY = b"synthgen.images"


@dataclass(frozen=True)
class ImageSchema:
    """Shape, channels, value range and classes of an image set.

    Pixels are always held in ``[0, 1]`` (``value_range``); ``classes`` are the label
    names in code order. Under differential privacy the classes must be public: give
    them here rather than letting them be read off the data.
    """

    height: int
    width: int
    channels: int = 1
    classes: tuple[str, ...] = ("0",)
    value_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise SchemaError(f"image {name}={value!r} must be a whole number of pixels")
            if not 2 <= int(value) <= MAX_SIDE:
                raise SchemaError(
                    f"image {name}={value} is outside 2..{MAX_SIDE}; resize the images first"
                )
        if self.channels not in CHANNELS:
            raise SchemaError(
                f"images with {self.channels!r} channels are not supported; use 1 (grayscale) "
                "or 3 (RGB)"
            )
        classes = tuple(str(c) for c in self.classes)
        if not classes:
            raise SchemaError("an image schema needs at least one class; use classes=('0',)")
        if len(set(classes)) != len(classes):
            dupes = sorted({c for c in classes if classes.count(c) > 1})
            raise SchemaError(f"image classes {dupes} appear more than once; names must differ")
        object.__setattr__(self, "classes", classes)
        if tuple(float(v) for v in self.value_range) != (0.0, 1.0):
            raise SchemaError(
                f"value_range={self.value_range!r}: pixels are held in [0, 1]; scale them "
                "(ImageSet.from_arrays does so for uint8 images)"
            )
        object.__setattr__(self, "value_range", (0.0, 1.0))

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one image."""
        return (int(self.channels), int(self.height), int(self.width))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def code_of(self, label: Any) -> int:
        """The code of a class given by name (or by code); a clear error otherwise."""
        text = str(label)
        if text in self.classes:
            return self.classes.index(text)
        is_code = isinstance(label, int | np.integer) and not isinstance(label, bool)
        if is_code and 0 <= int(label) < self.n_classes:
            return int(label)
        raise DataError(
            f"label {label!r} is not one of the image classes {list(self.classes)}; "
            "use one of those names"
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["classes"] = list(self.classes)
        data["value_range"] = list(self.value_range)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageSchema:
        if not isinstance(data, dict):
            raise SchemaError(f"an image schema must be a mapping, not {type(data).__name__}")
        known = {"height", "width", "channels", "classes", "value_range"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SchemaError(f"unknown image schema field(s) {unknown}; known: {sorted(known)}")
        missing = sorted({"height", "width"} - set(data))
        if missing:
            raise SchemaError(f"the image schema lacks {missing}")
        return cls(
            height=data["height"],
            width=data["width"],
            channels=data.get("channels", 1),
            classes=tuple(data.get("classes", ("0",))),
            value_range=tuple(data.get("value_range", (0.0, 1.0))),
        )


class ImageSet:
    """Images ``(n, c, h, w)`` float32 in ``[0, 1]`` with integer labels into the classes."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, schema: ImageSchema) -> None:
        if not isinstance(schema, ImageSchema):
            raise SchemaError(f"schema must be an ImageSchema, not {type(schema).__name__}")
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim != 4 or tuple(images.shape[1:]) != schema.shape:
            raise DataError(
                f"images have shape {tuple(images.shape)} but the schema says "
                f"(n, {', '.join(map(str, schema.shape))}); pass (n, channels, height, width)"
            )
        if not np.issubdtype(images.dtype, np.floating):
            raise DataError(f"images must be floats in [0, 1], not {images.dtype}")
        images = images.astype(np.float32, copy=False)
        if images.size and not np.isfinite(images).all():
            bad = int(np.flatnonzero(~np.isfinite(images).reshape(len(images), -1).all(1))[0])
            raise DataError(f"image {bad} holds NaN or infinite pixels; clean or drop it")
        if images.size and (images.min() < 0.0 or images.max() > 1.0):
            flat = images.reshape(len(images), -1)
            bad = int(np.flatnonzero((flat < 0).any(1) | (flat > 1).any(1))[0])
            raise DataError(
                f"image {bad} has pixels outside [0, 1] (min {flat[bad].min():.4g}, max "
                f"{flat[bad].max():.4g}); scale the images to [0, 1]"
            )
        if labels.shape != (len(images),):
            raise DataError(f"{len(labels)} labels for {len(images)} images; give one per image")
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"labels must be integer class codes, not {labels.dtype}")
        labels = labels.astype(np.int64, copy=False)
        if labels.size and (labels.min() < 0 or labels.max() >= schema.n_classes):
            bad = int(labels[(labels < 0) | (labels >= schema.n_classes)][0])
            raise DataError(
                f"label code {bad} is not a class of {list(schema.classes)} "
                f"(codes 0..{schema.n_classes - 1})"
            )
        self.images = images
        self.labels = labels
        self.schema = schema

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        c, h, w = self.schema.shape
        return f"ImageSet({len(self)} images, {c}x{h}x{w}, {self.schema.n_classes} classes)"

    @property
    def label_names(self) -> list[str]:
        return [self.schema.classes[int(k)] for k in self.labels]

    def subset(self, index: Sequence[int] | np.ndarray) -> ImageSet:
        index = np.asarray(index, dtype=np.int64)
        return ImageSet(self.images[index], self.labels[index], self.schema)

    def split(self, fraction: float, seed: int = 0) -> tuple[ImageSet, ImageSet]:
        """Stratified split: ``(rest, part)`` with ``fraction`` of every class in ``part``."""
        if not 0.0 < float(fraction) < 1.0:
            raise DataError(f"split fraction {fraction!r} must lie strictly between 0 and 1")
        rng = np.random.default_rng(seed)
        part: list[np.ndarray] = []
        for code in range(self.schema.n_classes):
            members = np.flatnonzero(self.labels == code)
            rng.shuffle(members)
            take = int(round(len(members) * float(fraction)))
            if len(members) >= 2:
                take = min(max(take, 1), len(members) - 1)
            part.append(members[:take])
        chosen = np.sort(np.concatenate(part)) if part else np.zeros(0, np.int64)
        rest = np.setdiff1d(np.arange(len(self)), chosen)
        return self.subset(rest), self.subset(chosen)

    def to_uint8(self) -> np.ndarray:
        """Pixels as ``uint8`` ``(n, c, h, w)`` (what torch-fidelity and PNG files take)."""
        return np.clip(np.rint(self.images * 255.0), 0, 255).astype(np.uint8)

    def resized(self, size: int | tuple[int, int]) -> ImageSet:
        """Bilinear resize (antialiased when shrinking) to ``size`` pixels a side."""
        import torch
        import torch.nn.functional as F

        height, width = (size, size) if isinstance(size, int) else size
        schema = ImageSchema(height, width, self.schema.channels, self.schema.classes)
        if (height, width) == (self.schema.height, self.schema.width):
            return self
        x = torch.from_numpy(self.images)
        shrinking = height < self.schema.height or width < self.schema.width
        out = F.interpolate(
            x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking
        )
        return ImageSet(out.clamp(0, 1).numpy(), self.labels.copy(), schema)

    def concat(self, other: ImageSet) -> ImageSet:
        if other.schema != self.schema:
            raise DataError(
                f"cannot join image sets with different schemas: {self.schema} vs {other.schema}"
            )
        return ImageSet(
            np.concatenate([self.images, other.images]),
            np.concatenate([self.labels, other.labels]),
            self.schema,
        )

    # ------------------------------------------------------------------ ways in
    @classmethod
    def from_arrays(
        cls,
        images: Any,
        labels: Any = None,
        classes: Sequence[Any] | None = None,
    ) -> ImageSet:
        """From arrays: ``(n, h, w)``, ``(n, h, w, c)`` or ``(n, c, h, w)``.

        ``uint8`` pixels are scaled from 0..255; floats must already lie in ``[0, 1]``.
        ``labels`` are class names or codes (``None``: one class); ``classes`` fixes the
        class list and its order (default: the sorted distinct labels).
        """
        array = np.asarray(images)
        if array.ndim == 3:
            array = array[:, None]
        elif array.ndim == 4 and array.shape[-1] in CHANNELS and array.shape[1] not in CHANNELS:
            array = np.transpose(array, (0, 3, 1, 2))
        if array.ndim != 4:
            raise DataError(
                f"images of shape {array.shape} are not understood; give (n, h, w), "
                "(n, h, w, c) or (n, c, h, w)"
            )
        if array.dtype == np.uint8:
            array = array.astype(np.float32) / 255.0
        elif array.dtype == bool or not np.issubdtype(array.dtype, np.number):
            raise DataError(f"image pixels of dtype {array.dtype} are not numbers")
        else:
            array = array.astype(np.float32)
        if labels is None:
            raw = np.zeros(len(array), dtype=np.int64)
            names = ["0"] if classes is None else [str(c) for c in classes]
            codes = raw
        else:
            raw = np.asarray(labels)
            if raw.shape != (len(array),):
                raise DataError(
                    f"{raw.size} labels for {len(array)} images; give one label per image"
                )
            text = np.array([str(v) for v in raw.tolist()], dtype=object)
            if classes is None:
                distinct = sorted(set(raw.tolist()), key=lambda v: (str(type(v)), v))
                names = [str(v) for v in distinct]
            else:
                names = [str(c) for c in classes]
            lookup = {name: code for code, name in enumerate(names)}
            unknown = sorted({t for t in text.tolist() if t not in lookup})
            if unknown:
                raise DataError(
                    f"label(s) {unknown[:5]} are not among the classes {names}; add them to "
                    "classes or fix the labels"
                )
            codes = np.array([lookup[t] for t in text.tolist()], dtype=np.int64)
        _, channels, height, width = array.shape
        schema = ImageSchema(int(height), int(width), int(channels), tuple(names))
        return cls(array, codes, schema)

    @classmethod
    def from_folder(cls, path: str | os.PathLike, classes: Sequence[str] | None = None):
        """A folder with one sub-folder per class (its name is the label) of image files.

        Every image must have the same size and mode; grayscale files give one channel,
        anything else is converted to RGB.
        """
        from PIL import Image, UnidentifiedImageError

        root = Path(path)
        if not root.is_dir():
            raise DataError(f"image folder {str(path)!r} does not exist or is not a folder")
        folders = sorted(p for p in root.iterdir() if p.is_dir())
        if not folders:
            raise DataError(
                f"image folder {str(path)!r} has no class sub-folders; put each class's "
                "images in a sub-folder named after the class"
            )
        pixels: list[np.ndarray] = []
        labels: list[str] = []
        for folder in folders:
            for file in sorted(folder.iterdir()):
                if file.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                try:
                    with Image.open(file) as image:
                        mode = "L" if image.mode in ("L", "1", "I;16", "I") else "RGB"
                        pixels.append(np.asarray(image.convert(mode)))
                except (UnidentifiedImageError, OSError) as exc:
                    raise DataError(f"cannot read image {str(file)!r}: {exc}") from None
                labels.append(folder.name)
        if not pixels:
            raise DataError(f"image folder {str(path)!r} holds no image files")
        shapes = {p.shape for p in pixels}
        if len(shapes) > 1:
            raise DataError(
                f"images in {str(path)!r} differ in size or mode {sorted(shapes)[:3]}; resize "
                "them to one size first"
            )
        return cls.from_arrays(np.stack(pixels), labels, classes=classes)

    # ------------------------------------------------------------------ Parquet (PNG)
    def to_png_bytes(self) -> list[bytes]:
        from PIL import Image

        out = []
        for image in self.to_uint8():
            if self.schema.channels == 1:
                picture = Image.fromarray(image[0], mode="L")
            else:
                picture = Image.fromarray(np.transpose(image, (1, 2, 0)), mode="RGB")
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
            out.append(buffer.getvalue())
        return out

    def to_arrow(self):
        """A pyarrow table of PNG bytes and class names, with the schema in its metadata."""
        import pyarrow as pa

        table = pa.table(
            {
                "image": pa.array(self.to_png_bytes(), type=pa.binary()),
                "label": pa.array(self.label_names, type=pa.string()),
            }
        )
        meta = {PARQUET_KEY: json.dumps(self.schema.to_dict()).encode()}
        return table.replace_schema_metadata(meta)

    def to_parquet(self, path: str | os.PathLike) -> None:
        """Write the set as Parquet (see the module docstring), atomically."""
        import pyarrow.parquet as pq

        from synthgen.paths import atomic_path, check_writable

        check_writable(path, "images")
        with atomic_path(path, "images") as tmp:
            pq.write_table(self.to_arrow(), tmp)

    @classmethod
    def from_arrow(cls, table, where: str = "the table") -> ImageSet:
        from PIL import Image, UnidentifiedImageError

        names = set(table.column_names)
        if not {"image", "label"} <= names:
            raise DataError(
                f"{where} has columns {sorted(names)}; an image set needs 'image' (PNG bytes) "
                "and 'label'"
            )
        meta = (table.schema.metadata or {}).get(PARQUET_KEY)
        schema = ImageSchema.from_dict(json.loads(meta)) if meta else None
        pixels = []
        for row, blob in enumerate(table.column("image").to_pylist()):
            try:
                with Image.open(io.BytesIO(blob)) as image:
                    pixels.append(np.asarray(image))
            except (UnidentifiedImageError, OSError, TypeError) as exc:
                raise DataError(
                    f"{where}: row {row} does not hold a readable image ({exc})"
                ) from None
        labels = table.column("label").to_pylist()
        classes = None if schema is None else schema.classes
        if not pixels:
            if schema is None:
                raise DataError(f"{where} holds no images and no schema")
            empty = np.zeros((0, *schema.shape), np.float32)
            return cls(empty, np.zeros(0, np.int64), schema)
        if len({p.shape for p in pixels}) > 1:
            raise DataError(f"{where}: the images differ in size or mode")
        out = cls.from_arrays(np.stack(pixels), labels, classes=classes)
        if schema is not None and out.schema != schema:
            raise DataError(f"{where}: the images do not match the stored schema {schema}")
        return out

    @classmethod
    def from_parquet(cls, path: str | os.PathLike) -> ImageSet:
        import pyarrow.parquet as pq

        if not os.path.isfile(path):
            raise DataError(f"image file {str(path)!r} does not exist")
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several kinds for a file that is not Parquet
            raise DataError(f"cannot read {str(path)!r} as Parquet: {exc}") from None
        return cls.from_arrow(table, repr(str(path)))


def load_digits(size: int = 8) -> ImageSet:
    """scikit-learn's bundled handwritten digits (1,797 images, 10 classes), offline.

    The 8x8 originals hold 0..16 per pixel (scaled to ``[0, 1]``); ``size`` 16 or 32
    upsamples them bilinearly (the classes and the strokes stay; the sharpness is 8x8's).
    """
    from sklearn.datasets import load_digits as sklearn_digits

    if size not in (8, 16, 32):
        raise DataError(f"digits size={size!r} is not offered; use 8, 16 or 32")
    bunch = sklearn_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    digits = ImageSet.from_arrays(images, bunch.target, classes=[str(k) for k in range(10)])
    return digits.resized(size)

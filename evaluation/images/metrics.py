"""FID, KID and precision/recall of image sets, computed by torch-fidelity.

Why torch-fidelity: it is the reference implementation of the three metrics (FID as in
Heusel et al. 2017 / TTUR, KID as in Binkowski et al. 2018, precision/recall as in
Kynkaanniemi et al. 2019), so a number here means what it means in the papers. What
this module adds is the plumbing: image sets become torch ``Dataset``s of ``uint8``
``C x H x W`` tensors, the feature extractor is either the project CNN (registered with
torch-fidelity under ``synthgen-image-cnn``) or torch-fidelity's own
``inception-v3-compat`` from a weights file the user supplies, subset sizes shrink to
what small sets allow, and nothing is cached under ``~/.cache`` or downloaded.

Convention (torch-fidelity's): ``input1`` is the generated set, ``input2`` the real
one; precision is the share of generated images inside the real manifold, recall the
share of real images inside the generated one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

from synthgen.errors import DataError, ModelFileError
from synthgen.images.data import ImageSet

if TYPE_CHECKING:
    from evaluation.images.extractor import ImageFeatureExtractor

__all__ = [
    "INCEPTION_FILE",
    "INCEPTION_KIND",
    "FeatureSpace",
    "feature_space",
    "image_metrics",
]

INCEPTION_KIND = "inception-v3-compat"
#: The file torch-fidelity publishes for ``inception-v3-compat`` (it would download it).
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
#: A few entries of that state dict and their shapes: enough to tell it from other files.
INCEPTION_SIGNATURE = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}
INCEPTION_INPUT = (3, 299, 299)
KID_SUBSET = 1000
KID_SUBSETS = 50
PRC_NEIGHBORHOOD = 3
MIN_IMAGES = 2


@dataclass
class FeatureSpace:
    """One torch-fidelity feature extractor, the weights file it reads, and its report block.

    ``channels`` is what the extractor takes: grayscale is repeated to RGB for
    Inception (its ``forward`` refuses anything but ``B x 3 x H x W``); the project CNN
    takes the images' own channels.
    """

    kind: str
    torch_fidelity_name: str
    weights_path: str
    channels: int | None
    info: dict[str, Any] = field(default_factory=dict)
    extractor: ImageFeatureExtractor | None = None

    def check(self, images: ImageSet, what: str) -> None:
        """Refuse images the extractor cannot read (the project CNN has one input shape)."""
        if self.extractor is not None:
            self.extractor.check_shape(images, what)

    def dataset(self, images: ImageSet) -> Dataset:
        """The images as a torch ``Dataset`` of ``uint8`` ``C x H x W`` tensors."""
        pixels = torch.from_numpy(images.to_uint8())
        if self.channels == 3 and pixels.shape[1] == 1:
            pixels = pixels.repeat(1, 3, 1, 1)
        return ImageTensors(pixels)

    def metrics(
        self,
        synthetic: ImageSet,
        real: ImageSet,
        fid: bool = True,
        kid: bool = True,
        prc: bool = True,
        seed: int = 0,
    ) -> dict[str, float]:
        """torch-fidelity's metrics of ``synthetic`` (input1) against ``real`` (input2).

        Keys as in the report: ``fid.image``, ``kid.mean``, ``kid.std``,
        ``prc.precision``, ``prc.recall``, ``prc.f_score``.
        """
        import torch_fidelity

        n = min(len(synthetic), len(real))
        if n < MIN_IMAGES:
            raise DataError(
                f"image metrics need at least {MIN_IMAGES} images in each set, got "
                f"{len(synthetic)} synthetic and {len(real)} real"
            )
        self.check(synthetic, "synthetic images")
        self.check(real, "real images")
        kwargs: dict[str, Any] = {
            "input1": self.dataset(synthetic),
            "input2": self.dataset(real),
            "cuda": False,
            "batch_size": 64,
            "fid": fid,
            "kid": kid,
            "prc": prc,
            "feature_extractor": self.torch_fidelity_name,
            "feature_extractor_weights_path": self.weights_path,
            "kid_subsets": KID_SUBSETS,
            "kid_subset_size": min(KID_SUBSET, n),
            "prc_neighborhood": min(PRC_NEIGHBORHOOD, n - 1),
            "rng_seed": int(seed),
            "cache": False,
            "save_cpu_ram": True,  # no DataLoader worker processes
            "verbose": False,
        }
        try:
            raw = torch_fidelity.calculate_metrics(**kwargs)
        except RuntimeError as exc:  # load_state_dict: weights of another network
            if self.kind != INCEPTION_KIND:
                raise
            raise ModelFileError(
                f"the {self.kind} weights {self.weights_path!r} do not fit the network "
                f"({str(exc).splitlines()[0]})"
            ) from None
        out: dict[str, float] = {}
        if fid:
            out["fid.image"] = max(float(raw[torch_fidelity.KEY_METRIC_FID]), 0.0)
        if kid:
            out["kid.mean"] = float(raw[torch_fidelity.KEY_METRIC_KID_MEAN])
            out["kid.std"] = float(raw[torch_fidelity.KEY_METRIC_KID_STD])
        if prc:
            out["prc.precision"] = float(raw[torch_fidelity.KEY_METRIC_PRECISION])
            out["prc.recall"] = float(raw[torch_fidelity.KEY_METRIC_RECALL])
            out["prc.f_score"] = float(raw[torch_fidelity.KEY_METRIC_F_SCORE])
        return out


class ImageTensors(Dataset):
    """Items as bare ``uint8`` tensors (torch-fidelity wants ``input[i]`` to be a tensor)."""

    def __init__(self, pixels: torch.Tensor) -> None:
        self.pixels = pixels

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.pixels[index]


# --------------------------------------------------------------------- building spaces
def _sha256_file(path: str) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def _load_inception_state(path: Any) -> tuple[str, dict[str, Any]]:
    """The weights file's path and state dict, read without running any pickled code."""
    import pickle

    hint = (
        f"give the path of torch-fidelity's {INCEPTION_FILE} (from the torch-fidelity "
        "v0.2.0 release), or leave inception_weights=None to use the project extractor"
    )
    if not isinstance(path, str | os.PathLike):
        raise ModelFileError(f"inception_weights={path!r} is not a file path; {hint}")
    text = os.fspath(path)
    if not os.path.isfile(text):
        raise ModelFileError(f"Inception weights file {text!r} does not exist; {hint}")
    try:
        state = torch.load(text, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ModelFileError(
            f"Inception weights file {text!r} cannot be read as plain tensors "
            f"({str(exc).splitlines()[0][:200]}); {hint}"
        ) from None
    if not isinstance(state, dict):
        raise ModelFileError(
            f"Inception weights file {text!r} holds a {type(state).__name__}, not a state "
            f"dict; {hint}"
        )
    for key, shape in INCEPTION_SIGNATURE.items():
        tensor = state.get(key)
        if not torch.is_tensor(tensor) or tuple(tensor.shape) != shape:
            raise ModelFileError(
                f"Inception weights file {text!r} is not inception-v3-compat weights "
                f"(entry {key!r} missing or not of shape {shape}); {hint}"
            )
    return text, state


@contextmanager
def feature_space(
    extractor: ImageFeatureExtractor | None = None, inception_weights: Any = None
) -> Iterator[FeatureSpace]:
    """The feature space the metrics run in, with its weights file in a private temp folder.

    With ``inception_weights`` torch-fidelity's ``inception-v3-compat`` is used. It
    reads its file with ``torch.load(weights_only=False)`` (that can run pickled code),
    so the file is first read here with ``weights_only=True`` (plain tensors only) and
    torch-fidelity gets a copy written from those tensors. Otherwise the project
    ``extractor`` is saved (safe format) for torch-fidelity's registered class to load.
    """
    from evaluation.images.extractor import register_with_torch_fidelity

    with tempfile.TemporaryDirectory(prefix="synthgen-fid-") as folder:
        if inception_weights is not None:
            source, state = _load_inception_state(inception_weights)
            copy = str(Path(folder) / "inception.pth")
            torch.save(state, copy)
            del state
            info = {
                "kind": INCEPTION_KIND,
                "name": INCEPTION_KIND,
                "digest": _sha256_file(source),
                "input_shape": list(INCEPTION_INPUT),
                "weights_file": os.path.basename(source),
                "feature_dim": 2048,
            }
            yield FeatureSpace(INCEPTION_KIND, INCEPTION_KIND, copy, 3, info)
            return
        if extractor is None:
            raise DataError("a feature space needs an extractor or Inception weights")
        path = str(Path(folder) / "extractor.synth")
        extractor.save(path)
        name = register_with_torch_fidelity()
        yield FeatureSpace(extractor.info()["kind"], name, path, None, extractor.info(), extractor)


def image_metrics(
    synthetic: ImageSet,
    real: ImageSet,
    extractor: ImageFeatureExtractor | None = None,
    inception_weights: Any = None,
    seed: int = 0,
) -> dict[str, float]:
    """FID, KID and precision/recall of ``synthetic`` against ``real`` in one call.

    The lower-level entry point of :func:`evaluation.images.evaluate_images` (which
    also validates schemas, trains an extractor when none is given and adds the
    holdout, classifier and utility scores).
    """
    with feature_space(extractor, inception_weights) as space:
        return space.metrics(synthetic, real, seed=seed)

"""Real datasets bundled with the package, so demos and tests never download anything.

Sources and licences are listed in ``synthgen/datasets/data/SOURCES.md``.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from synthgen.errors import ConfigError

#: name -> (file, read_csv options, target column)
_DATASETS: dict[str, tuple[str, dict, str]] = {
    "adult": ("adult.csv.gz", {"skipinitialspace": True, "na_values": ["?"]}, "income"),
}


def names() -> list[str]:
    """Names accepted by ``load``."""
    return sorted(_DATASETS)


def target_of(name: str) -> str:
    """The label column of a bundled dataset (what utility metrics predict)."""
    return _spec(name)[2]


def _spec(name: str) -> tuple[str, dict, str]:
    try:
        return _DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; available: {', '.join(names())}") from None


def load(name: str) -> pd.DataFrame:
    """Load a bundled dataset as a DataFrame with proper dtypes and NaN for missing."""
    filename, options, _ = _spec(name)
    with resources.files(__package__).joinpath("data", filename).open("rb") as fh:
        frame = pd.read_csv(fh, compression="gzip", **options)
    return frame


__all__ = ["load", "names", "target_of"]

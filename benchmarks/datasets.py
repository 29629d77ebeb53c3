"""Registry of the shared benchmark datasets: file, read options, label and task.

The CSVs live outside the repository (``../shared/datasets`` beside the clone) because
only Adult is bundled with the package; each entry records how to read its file
correctly (Adult marks missing values with ``?`` after a space) and which column the
utility metrics predict. A dataset may have no label at all (``msq``, a wide
questionnaire table kept to measure how cost grows with the number of columns): its
``target`` and ``task`` are None, and the harness then skips the label-based parts
(stratified holdout split, TSTR/TRTR) instead of inventing a label.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

#: Environment variable that overrides the default dataset folder.
DATASETS_ENV = "SYNTHGEN_DATASETS"
#: Repository root (the folder that holds ``benchmarks/``).
REPO_ROOT = Path(__file__).resolve().parent.parent

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class DatasetSpec:
    """How to read one benchmark CSV and what its label is (None: the table has none)."""

    name: str
    file: str
    target: str | None = None
    task: Task | None = None
    read_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A label without a task (or a task without a label) would make the harness
        # guess which metrics apply; the registry must say both or neither.
        if (self.target is None) != (self.task is None):
            raise ValueError(
                f"dataset {self.name!r}: give both target and task, or neither "
                f"(got target={self.target!r}, task={self.task!r})"
            )

    @property
    def has_target(self) -> bool:
        """Whether utility metrics (TSTR/TRTR) and a stratified split apply."""
        return self.target is not None


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "adult",
            "adult.csv",
            "income",
            "classification",
            {"skipinitialspace": True, "na_values": ["?"]},
        ),
        DatasetSpec(
            "credit_default", "credit_default.csv", "default.payment.next.month", "classification"
        ),
        DatasetSpec(
            "california_housing", "california_housing.csv", "median_house_value", "regression"
        ),
        DatasetSpec(
            "online_shoppers_intention",
            "online_shoppers_intention.csv",
            "Revenue",
            "classification",
        ),
        DatasetSpec("magic", "magic.csv", "class", "classification"),
        # 3,896 x 92, no label, 20,924 missing cells: the wide table of the set.
        DatasetSpec("msq", "msq.csv"),
    )
}


class DatasetError(ValueError):
    """A dataset name or folder the harness cannot use (message says what to do)."""


def default_data_dir() -> Path:
    """``$SYNTHGEN_DATASETS`` if set, else ``../shared/datasets`` relative to the repo root."""
    env = os.environ.get(DATASETS_ENV)
    return Path(env) if env else REPO_ROOT.parent / "shared" / "datasets"


def get_spec(name: str) -> DatasetSpec:
    """The registry entry for ``name``; a clear error listing the known names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetError(
            f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}"
        ) from None


def load(name: str, data_dir: str | Path | None = None) -> pd.DataFrame:
    """Read dataset ``name`` from ``data_dir`` with its registered read options."""
    spec = get_spec(name)
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    path = folder / spec.file
    if not path.is_file():
        raise DatasetError(
            f"dataset file {path} not found; pass --data-dir or set {DATASETS_ENV} to the "
            "folder holding the shared datasets"
        )
    frame = pd.read_csv(path, **spec.read_options)
    if spec.target is not None and spec.target not in frame.columns:
        raise DatasetError(f"{path} has no target column {spec.target!r}")
    return frame

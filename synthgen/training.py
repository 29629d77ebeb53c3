"""Shared training scaffolding: devices, seeding, progress, logs, early stopping, checkpoints.

Every backend trains through ``BaseGenerator.fit`` which uses these pieces, so a
backend only supplies its networks and its loss.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch

from synthgen.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "float32", "bfloat16")


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn the user's ``device`` argument into a ``torch.device``, checking availability."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str) or not (device in DEVICES or device.startswith("cuda:")):
        raise ConfigError(f"device={device!r} is not supported; use 'auto', 'cpu' or 'cuda'")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device={device!r} was requested but no CUDA GPU is available; use device='cpu' "
            "or device='auto'"
        )
    return torch.device(device)


def native_bfloat16_cpu() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX512-BF16 or AMX).

    Without those instructions bfloat16 products are emulated and slower than float32.
    """
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of a backend's matrix products for the user's ``precision`` argument.

    ``"auto"`` picks bfloat16 products (float32 everything else) on CPUs with native
    bfloat16 arithmetic, where they run about twice as fast, and float32 elsewhere.
    """
    if precision not in PRECISIONS:
        raise ConfigError(
            f"precision={precision!r} is not supported; use one of {', '.join(PRECISIONS)}"
        )
    if precision == "auto":
        use_bf16 = device.type == "cpu" and native_bfloat16_cpu()
        return torch.bfloat16 if use_bf16 else torch.float32
    return torch.bfloat16 if precision == "bfloat16" else torch.float32


#: What each named random stream of a fit is for; a stream's seed is derived from the
#: model's ``seed`` and the purpose alone, so adding a stream never shifts the others.
PURPOSES = ("transform", "split", "order", "noise", "sample", "release")


class SeedStreams:
    """Independent seeds per purpose, spawned from one ``numpy.random.SeedSequence(seed)``.

    ``fit`` draws the transform's fit, the validation split, the data order and the
    training noise (latent draws, dropout, timesteps) from separate streams, so none of
    them depends on how many numbers another consumed, and it never touches the global
    python / numpy generators (torch's global generator is forked and restored).
    """

    def __init__(self, seed: int | None) -> None:
        # None: fresh entropy from the operating system (a new stream on every call)
        self.sequence = np.random.SeedSequence(None if seed is None else int(seed))

    def seed(self, purpose: str) -> int:
        """A 63-bit seed for ``purpose`` (fits torch, numpy and scikit-learn)."""
        index = PURPOSES.index(purpose)
        child = np.random.SeedSequence(
            self.sequence.entropy, spawn_key=(*self.sequence.spawn_key, index)
        )
        return int(child.generate_state(1, np.uint64)[0] >> np.uint64(1))

    def small_seed(self, purpose: str) -> int:
        """A 31-bit seed for ``purpose`` (for APIs limited to ``int32`` seeds)."""
        return self.seed(purpose) % (2**31)


@contextmanager
def forked_torch_rng(device: torch.device, seed: int) -> Iterator[None]:
    """Run a block with torch's global generator seeded with ``seed``, then restore it.

    Modules such as ``nn.Dropout`` draw from the global generator; forking keeps a fit
    reproducible without changing the caller's random state as a side effect.
    """
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A private torch RNG on ``device`` (never the global one, so sampling is isolated)."""
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator


@dataclass
class TrainingLog:
    """What happened during ``fit``: losses per epoch and wall-clock times."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    preprocessing_seconds: float = 0.0
    training_seconds: float = 0.0
    stopped_early: bool = False
    best_epoch: int | None = None
    #: What the scaffold changed from the settings, and why (e.g. a skipped validation split).
    notes: list[str] = field(default_factory=list)

    def record(self, epoch: int, seconds: float, **losses: float) -> None:
        self.epochs.append({"epoch": epoch, "seconds": seconds, **losses})

    @property
    def total_seconds(self) -> float:
        return self.preprocessing_seconds + self.training_seconds

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["total_seconds"] = self.total_seconds
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingLog:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_frame(self):  # pragma: no cover - convenience
        import pandas as pd

        return pd.DataFrame(self.epochs)


class EarlyStopping:
    """Stop when the validation loss has not improved by ``min_delta`` for ``patience`` epochs."""

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.best = float("inf")
        self.best_epoch: int | None = None
        self.bad_epochs = 0

    def step(self, epoch: int, value: float) -> bool:
        """Record ``value``; return True when training should stop."""
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.bad_epochs = state["bad_epochs"]


def show_progress(progress: bool | None) -> bool:
    """Progress bars appear when asked, or by default when stderr is a terminal."""
    if progress is not None:
        return bool(progress)
    return sys.stderr.isatty() and not os.environ.get("SYNTHGEN_NO_PROGRESS")


class EpochProgress:
    """A rich progress bar over epochs that shows the latest losses; a no-op when hidden."""

    def __init__(self, total: int, description: str, enabled: bool) -> None:
        self.enabled = enabled
        self.total = total
        self.description = description
        self._progress = None
        self._task = None

    def __enter__(self) -> EpochProgress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[losses]}"),
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=self.total, losses="")
        return self

    def update(self, completed: int, losses: dict[str, float]) -> None:
        if self._progress is not None:
            text = " ".join(f"{k}={v:.4g}" for k, v in losses.items())
            self._progress.update(self._task, completed=completed, losses=text)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


@contextmanager
def timer() -> Iterator[list[float]]:
    """``with timer() as t: ...`` then ``t[0]`` holds the elapsed seconds."""
    box = [0.0]
    start = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - start

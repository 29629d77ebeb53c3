"""Adapters that give synthgen backends and SDV synthesizers one timing interface.

Each adapter fits on the same frame with the same schema-derived column kinds and
reports the same three numbers, defined identically on both sides:

* ``preprocessing_seconds``: work before the first training epoch that turns the frame
  into the tensor the network trains on. synthgen: ``training_log.preprocessing_seconds``
  (``TableTransformer`` fit + encode). SDV: ``synth.preprocess(data)`` (RDT
  HyperTransformer) plus the CTGAN library's ``DataTransformer.fit`` and ``.transform``
  that ``TVAESynthesizer``/``CTGANSynthesizer`` run inside ``fit_processed_data`` before
  their epoch loop, timed in place while the real fit runs (see ``_timed_data_transformer``).
* ``fit_seconds``: wall clock of the whole fit (synthgen ``model.fit``; SDV ``preprocess``
  + ``fit_processed_data``, which is exactly what ``synth.fit`` does).
* ``seconds_per_epoch``: ``(fit_seconds - preprocessing_seconds) / epochs`` on both sides,
  so no side is credited for overhead the other pays.

SDV is only used as a baseline (it is under the Business Source License): nothing here
copies its code; the CTGAN ``DataTransformer`` is subclassed only to time its calls.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: SDV synthesizers the harness knows, by the name used on the command line.
SDV_SYNTHESIZERS = {
    "sdv:tvae": "TVAESynthesizer",
    "sdv:ctgan": "CTGANSynthesizer",
    "sdv:gaussiancopula": "GaussianCopulaSynthesizer",
}
#: SDV synthesizers that train for a number of epochs (the others have no epochs).
SDV_EPOCH_BASED = {"sdv:tvae", "sdv:ctgan"}
#: Suffix of a synthgen backend name that trains through autograd only (``tvae/autograd``):
#: the exact reference path, to compare with the accelerated one in the same run.
AUTOGRAD_SUFFIX = "/autograd"
#: Backends with an accelerated training path worth comparing.
ACCELERATED = ("ctgan", "tvae")
#: Table name used in the SDV / SDMetrics multi-table style metadata.
TABLE = "table"

_SDTYPES = {
    "numerical": "numerical",
    "categorical": "categorical",
    "boolean": "boolean",
    "datetime": "datetime",
    "id": "id",
}


@dataclass
class FitTiming:
    """Wall-clock numbers of one fit (seconds); ``epochs`` is None for non-epoch models."""

    preprocessing_seconds: float
    fit_seconds: float
    epochs: int | None
    measured_epoch_seconds: float | None = None

    @property
    def seconds_per_epoch(self) -> float | None:
        if not self.epochs:
            return None
        return (self.fit_seconds - self.preprocessing_seconds) / self.epochs


def seed_all(seed: int) -> None:
    """Seed the global RNGs SDV and the CTGAN library draw from (synthgen uses its own)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def sdv_metadata_dict(schema: Any) -> dict[str, Any]:
    """SDV/SDMetrics metadata built from *our* schema, so both sides see the same kinds."""
    columns: dict[str, dict[str, Any]] = {}
    for name, spec in schema.columns.items():
        columns[name] = {"sdtype": _SDTYPES[spec.kind]}
    return {"METADATA_SPEC_VERSION": "V1", "tables": {TABLE: {"columns": columns}}}


def known_backends() -> list[str]:
    """Every name ``make_runner`` accepts: synthgen's registry plus the SDV baselines."""
    import synthgen as sg

    variants = [name + AUTOGRAD_SUFFIX for name in ACCELERATED]
    return sorted(sg.BACKENDS) + variants + sorted(SDV_SYNTHESIZERS)


class Runner:
    """Fit once, then sample; subclasses wrap one library."""

    name: str

    def fit(self, train: pd.DataFrame, schema: Any) -> FitTiming:  # pragma: no cover
        raise NotImplementedError

    def sample(self, n: int, seed: int) -> pd.DataFrame:  # pragma: no cover
        raise NotImplementedError


class SynthgenRunner(Runner):
    """A backend looked up by name in ``sg.BACKENDS``."""

    def __init__(
        self,
        name: str,
        epochs: int,
        batch_size: int,
        seed: int,
        device: str,
        target: str | None = None,
        use_defaults: bool = False,
        time_budget: float | None = None,
        accelerate: bool = True,
    ) -> None:
        import synthgen as sg

        self.name = name
        cls = sg.BACKENDS[name.removesuffix(AUTOGRAD_SUFFIX)]
        params = cls._param_names()
        kwargs: dict[str, Any] = {"seed": seed, "device": device}
        if not accelerate:
            kwargs["accelerate"] = False
        if not use_defaults:
            kwargs["batch_size"] = batch_size
        if "progress" in params:
            kwargs["progress"] = False
        if time_budget is not None:
            kwargs["max_training_time"] = time_budget
        if target is not None and "target" in params:
            # class-conditional backends (TabDDPM) model the label as the paper does
            kwargs["target"] = target
        # Which parameter --epochs sets: none with use_defaults (the backend's own
        # length and stopping rule); "epochs" where the backend has it (a backend sized
        # in steps by default is switched to epochs); otherwise "steps".
        self._epochs_param: str | None = None
        if not use_defaults:
            self._epochs_param = "epochs" if "epochs" in params else "steps"
            if "steps" in params and "epochs" in params:
                kwargs["steps"] = None
        self._epochs = epochs
        self._batch_size = batch_size
        self._cls = cls
        self._kwargs = kwargs
        self.model: Any = None

    def fit(self, train: pd.DataFrame, schema: Any) -> FitTiming:
        kwargs = dict(self._kwargs)
        if self._epochs_param == "epochs":
            kwargs["epochs"] = self._epochs
        elif self._epochs_param == "steps":
            # Diffusion backends count optimisation steps: give them the same number of
            # batches as ``epochs`` passes over the data would be.
            kwargs["steps"] = self._epochs * math.ceil(len(train) / self._batch_size)
        self.model = self._cls(**kwargs)
        start = time.perf_counter()
        self.model.fit(train, schema=schema)
        fit_seconds = time.perf_counter() - start
        log = self.model.training_log
        epochs_run = len(log.epochs) or None
        measured = float(np.mean([e["seconds"] for e in log.epochs])) if log.epochs else None
        return FitTiming(
            preprocessing_seconds=float(log.preprocessing_seconds),
            fit_seconds=fit_seconds,
            epochs=epochs_run,
            measured_epoch_seconds=measured,
        )

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        return self.model.sample(n, seed=seed)


@contextlib.contextmanager
def _timed_data_transformer(seconds: list[float]) -> Iterator[None]:
    """Time the CTGAN library's ``DataTransformer.fit``/``transform`` during an SDV fit.

    SDV's TVAE/CTGAN create the transformer inside their fit, so the only way to time the
    real call (not a re-run on the side) is to have the module build a subclass that adds
    the elapsed time to ``seconds[0]``. The original class is restored on exit.
    """
    import ctgan.synthesizers.ctgan as ctgan_module
    import ctgan.synthesizers.tvae as tvae_module
    from ctgan.data_transformer import DataTransformer

    class TimedDataTransformer(DataTransformer):
        def fit(self, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return super().fit(*args, **kwargs)
            finally:
                seconds[0] += time.perf_counter() - start

        def transform(self, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return super().transform(*args, **kwargs)
            finally:
                seconds[0] += time.perf_counter() - start

    modules = (tvae_module, ctgan_module)
    originals = [module.DataTransformer for module in modules]
    for module in modules:
        module.DataTransformer = TimedDataTransformer
    try:
        yield
    finally:
        for module, original in zip(modules, originals, strict=True):
            module.DataTransformer = original


class SDVRunner(Runner):
    """An SDV single-table synthesizer fed metadata derived from our schema."""

    def __init__(self, name: str, epochs: int, batch_size: int, seed: int, device: str) -> None:
        if name not in SDV_SYNTHESIZERS:
            known = ", ".join(sorted(SDV_SYNTHESIZERS))
            raise ValueError(f"unknown SDV baseline {name!r}; use one of {known}")
        self.name = name
        self._epochs = epochs
        self._batch_size = batch_size
        self._seed = seed
        self._gpu = device.startswith("cuda") or device == "auto"
        self.synth: Any = None
        # Import now so the memory baseline taken before ``fit`` already holds SDV.
        import ctgan.synthesizers.tvae  # noqa: F401
        import sdv.single_table  # noqa: F401

    def _make(self, schema: Any) -> Any:
        import sdv.single_table as single_table
        from sdv.metadata import Metadata

        metadata = Metadata.load_from_dict(sdv_metadata_dict(schema))
        cls = getattr(single_table, SDV_SYNTHESIZERS[self.name])
        if self.name in SDV_EPOCH_BASED:
            return cls(
                metadata,
                epochs=self._epochs,
                batch_size=self._batch_size,
                enable_gpu=self._gpu,
            )
        return cls(metadata)

    def fit(self, train: pd.DataFrame, schema: Any) -> FitTiming:
        self.synth = self._make(schema)
        seed_all(self._seed)
        transformer_seconds = [0.0]
        start = time.perf_counter()
        processed = self.synth.preprocess({TABLE: train})
        preprocess_seconds = time.perf_counter() - start
        with _timed_data_transformer(transformer_seconds):
            self.synth.fit_processed_data(processed)
        fit_seconds = time.perf_counter() - start
        if self.name in SDV_EPOCH_BASED and transformer_seconds[0] == 0.0:
            # Fail loudly rather than under-report SDV's preprocessing if a new ctgan
            # release stops building its DataTransformer where we time it.
            raise RuntimeError(
                f"{self.name}: the CTGAN DataTransformer was not seen during fit, so SDV's "
                "preprocessing cannot be timed; check benchmarks.backends against the "
                "installed ctgan version"
            )
        epochs = self._epochs if self.name in SDV_EPOCH_BASED else None
        return FitTiming(
            preprocessing_seconds=preprocess_seconds + transformer_seconds[0],
            fit_seconds=fit_seconds,
            epochs=epochs,
        )

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        seed_all(seed)
        out = self.synth.sample(num_rows=n)
        return out[TABLE] if isinstance(out, dict) else out


def make_runner(
    name: str, epochs: int, batch_size: int, seed: int, device: str, **options: Any
) -> Runner:
    """The adapter for backend ``name`` (``tvae``, ``tvae/autograd`` ... or ``sdv:tvae`` ...).

    ``options`` go to synthgen backends only (see ``SynthgenRunner``): ``target`` for
    class-conditional models, ``use_defaults`` to keep their own epochs/steps and batch
    size, ``time_budget`` to cap a fit (``max_training_time``) for equal-wall-time rows.
    SDV baselines always get ``epochs`` and ``batch_size``.
    """
    import synthgen as sg

    if name in SDV_SYNTHESIZERS:
        return SDVRunner(name, epochs, batch_size, seed, device)
    if name in sg.BACKENDS:
        return SynthgenRunner(name, epochs, batch_size, seed, device, **options)
    if name.removesuffix(AUTOGRAD_SUFFIX) in ACCELERATED:
        return SynthgenRunner(name, epochs, batch_size, seed, device, accelerate=False, **options)
    raise ValueError(f"unknown backend {name!r}; known: {', '.join(known_backends())}")

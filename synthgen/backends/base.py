"""``BaseGenerator``: the training/sampling scaffold every backend shares.

A backend subclasses it and supplies its networks (``_build``), the players that train
them (``_players``: modules, optimiser settings and a loss with one value per row), a
validation loss and a generator of encoded rows. Encoding the frame once, batching on
the device, seeding, the optimisation step itself (backward, clipping, optimiser,
schedules, weight averages; see ``optimization``), progress, early stopping, the time
budget, checkpoints, conditional sampling and save/load live here, once.
"""

from __future__ import annotations

import inspect
import math
import os
import time
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from synthgen.backends.conditions import ConditionSampler
from synthgen.backends.optimization import PlayerState
from synthgen.backends.params import (
    check_bool,
    check_float,
    check_int,
    check_options,
)
from synthgen.backends.players import Player
from synthgen.errors import ConfigError, NotFittedError
from synthgen.schema import Schema, check_frame
from synthgen.training import (
    EarlyStopping,
    EpochProgress,
    SeedStreams,
    TrainingLog,
    forked_torch_rng,
    make_generator,
    resolve_device,
    resolve_precision,
    show_progress,
    timer,
)
from synthgen.transforms import TableTransformer
from synthgen.transforms.layout import SpanLayout

#: Rows generated per forward pass when sampling (bounds memory for huge ``n``).
SAMPLE_CHUNK = 65_536
#: Bytes of memory a sampled cell may take on its way to a DataFrame (encoded float32
#: slots, decoding buffers, object strings): the basis of ``sample``'s size check.
BYTES_PER_SAMPLED_CELL = 64


class BaseGenerator:
    """Shared constructor vocabulary and the fit / sample / save life cycle.

    Subclasses list their own hyper-parameters as keyword arguments of ``__init__`` and
    store them unchanged (scikit-learn style); learned state ends in ``_``.
    """

    #: Name written into model files; the registry maps it back to the class.
    backend_name: ClassVar[str] = "base"
    #: Batches must be a multiple of this (PacGAN packs rows together).
    batch_multiple: ClassVar[int] = 1
    #: Fewest rows a training batch may have (batch norm needs two).
    min_batch_rows: ClassVar[int] = 1
    #: The reversible transform between frames and the tensors this backend learns.
    transformer_class: ClassVar[type] = TableTransformer

    def __init__(
        self,
        epochs: int = 300,
        batch_size: int = 500,
        seed: int = 0,
        device: str = "auto",
        dp: Any = None,
        validation_fraction: float = 0.0,
        early_stopping_patience: int | None = None,
        checkpoint_dir: str | None = None,
        checkpoint_every: int = 0,
        progress: bool | None = None,
        transformer_options: dict[str, Any] | None = None,
        num_threads: int | None = None,
        max_training_time: float | None = None,
        clip_grad_norm: float | None = None,
        accelerate: bool = True,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.dp = dp
        self.validation_fraction = validation_fraction
        self.early_stopping_patience = early_stopping_patience
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        self.transformer_options = transformer_options
        self.num_threads = num_threads
        self.max_training_time = max_training_time
        self.clip_grad_norm = clip_grad_norm
        self.accelerate = accelerate

    # ------------------------------------------------------------------ params
    #: False for backends that do not train through the scaffold (AIM, MST): their
    #: parameters are their own constructors' only, not the scaffold's below.
    scaffold_params: ClassVar[bool] = True

    @classmethod
    def _param_names(cls) -> list[str]:
        names: list[str] = []
        for klass in cls.__mro__:
            if klass is BaseGenerator and not cls.scaffold_params:
                break
            if "__init__" not in vars(klass):
                continue
            for name, p in inspect.signature(klass.__init__).parameters.items():
                if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                    continue
                if name not in names:
                    names.append(name)
        return names

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor arguments as given (scikit-learn's contract, so ``clone`` works).

        ``deep`` is accepted for scikit-learn; no parameter is itself an estimator.
        """
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any):
        """Set constructor parameters by name; returns ``self`` (refits are needed)."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ConfigError(
                    f"{type(self).__name__} has no parameter {name!r}; parameters: {valid}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @classmethod
    def _params_from_file(cls, params: dict[str, Any]) -> dict[str, Any]:
        """A saved model's parameters as this version's constructor takes them.

        A file from before a parameter existed lacks it; a backend whose new
        parameter's default would build a different network than the file's sets the
        value that reproduces the old one here (files keep loading, and sampling).
        """
        return params

    def _check_params(self) -> None:
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, max(1, self.batch_multiple))
        check_int("seed", self.seed, 0)
        if not isinstance(self.device, str | torch.device):
            raise ConfigError(
                f"device={self.device!r} is not supported; use 'auto', 'cpu' or 'cuda'"
            )
        check_float("validation_fraction", self.validation_fraction, 0.0, 0.5, high_open=True)
        if self.dp is not None:
            from synthgen.backends.private import check_dp

            check_dp(self.dp)
        check_int("early_stopping_patience", self.early_stopping_patience, 1, optional=True)
        if self.early_stopping_patience is not None and self.validation_fraction <= 0:
            raise ConfigError(
                "early_stopping_patience needs a validation split: set validation_fraction, "
                "e.g. 0.1"
            )
        check_int("checkpoint_every", self.checkpoint_every, 0)
        if self.checkpoint_dir is not None and not isinstance(
            self.checkpoint_dir, str | os.PathLike
        ):
            raise ConfigError(f"checkpoint_dir={self.checkpoint_dir!r} must be a folder path")
        if self.checkpoint_every and not self.checkpoint_dir:
            raise ConfigError("checkpoint_every needs checkpoint_dir=<folder>")
        check_bool("progress", self.progress, optional=True)
        check_options("transformer_options", self.transformer_options, self.transformer_class)
        check_int("num_threads", self.num_threads, 1, optional=True)
        check_float("max_training_time", self.max_training_time, 0.0, low_open=True, optional=True)
        check_float("clip_grad_norm", self.clip_grad_norm, 0.0, low_open=True, optional=True)
        check_bool("accelerate", self.accelerate)

    # ------------------------------------------------------------------ backend hooks
    def _build(self, layout: SpanLayout, data: torch.Tensor | None) -> None:  # pragma: no cover
        """Create the networks; ``data`` is None when restoring a saved model."""
        raise NotImplementedError

    def _players(self) -> list[Player]:  # pragma: no cover
        """The players the scaffold trains, in update order (see ``players.Player``)."""
        raise NotImplementedError

    def _transformer_defaults(self) -> dict[str, Any]:
        """Transform options this backend derives from its own parameters.

        ``transformer_options`` given by the user override them; neither is written
        back to the constructor parameters.
        """
        return {}

    def _make_layout(self, transformer: Any, device: torch.device) -> SpanLayout | None:
        """Precomputed indexing over the encoded row (None for token-based backends)."""
        return SpanLayout(transformer.spans, device)

    def _modules(self) -> dict[str, torch.nn.Module]:  # pragma: no cover
        """Named networks whose weights are saved."""
        raise NotImplementedError

    def _validation_loss(self, data: torch.Tensor) -> float:  # pragma: no cover
        raise NotImplementedError

    def _training_rows(self, train: torch.Tensor, accelerated: bool) -> torch.Tensor:
        """The tensor whose rows the players' losses receive (built once per fit).

        The encoded training rows by default; a backend whose accelerated step wants
        them in another layout converts them here once instead of on every batch.
        """
        return train

    def _epochs_for(self, steps_per_epoch: int) -> int:
        """Epochs to run; backends sized in optimisation steps convert here."""
        return int(self.epochs)

    def _should_stop(self) -> bool:
        """Checked after every epoch; backends with their own stopping rule override it."""
        return False

    def _generate(self, n: int, generator: torch.Generator) -> torch.Tensor:  # pragma: no cover
        """``n`` encoded rows (discrete groups one-hot) on the model's device."""
        raise NotImplementedError

    def _generate_for(
        self, n: int, generator: torch.Generator, condition: dict[str, Any]
    ) -> torch.Tensor:
        """Rows aimed at ``condition``; backends that condition natively override this.

        Whatever is returned is still filtered by rejection, so an override only has to
        make matching rows likely (or certain), never guarantee them.
        """
        return self._generate(n, generator)

    # ------------------------------------------------------------------ fitting
    def fit(self, df: pd.DataFrame, schema: Schema | None = None, resume: bool = False):
        """Learn ``df``. Returns ``self``.

        ``schema`` defaults to ``Schema.infer(df)``. With ``resume=True`` training
        continues from the newest checkpoint in ``checkpoint_dir``. ``num_threads``
        (constructor) caps torch's CPU threads for the fit: small networks on a busy
        machine run faster on one thread than on several competing ones. The global
        random generators are left as they were: every random draw of the fit comes
        from streams derived from ``seed`` (``training.SeedStreams``).
        """
        self._check_params()
        # the budget covers preprocessing too: it is what a caller waits for
        self._started = time.perf_counter()
        self._budget = None if self.max_training_time is None else float(self.max_training_time)
        device = resolve_device(self.device)
        streams = SeedStreams(int(self.seed))
        previous = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(int(self.num_threads))
        try:
            with forked_torch_rng(device, streams.seed("noise")):
                return self._fit(df, schema, resume, device, streams)
        finally:
            torch.set_num_threads(previous)

    def _prepare(self, transformer: Any, device: torch.device) -> None:
        """Learned state a fitted or a loaded model sets up before its networks exist."""
        self.transformer_ = transformer
        self.device_ = device
        self.compute_dtype_ = resolve_precision(getattr(self, "precision", "float32"), device)
        self.layout_ = self._make_layout(transformer, device)

    def _time_fraction(self) -> float:
        """Share of ``max_training_time`` used so far (0 without a budget)."""
        if self._budget is None:
            return 0.0
        return (time.perf_counter() - self._started) / max(self._budget, 1e-9)

    def _encode_training_data(
        self, df: Any, schema: Any, streams: SeedStreams, device: torch.device
    ) -> tuple[Any, torch.Tensor, Any]:
        """Check the training data, fit the transform, encode the rows once.

        Returns the fitted transform, the encoded rows on ``device`` and, under ``dp``,
        the DP view of the data (``private.PrivateData``: what the transform and the
        initial values may read, and the preprocessing's share of the budget). Image
        backends override this: their data is an ``ImageSet``, not a frame.
        """
        check_frame(df)
        if len(df) < 2:
            raise ConfigError(
                f"the frame has {len(df)} row; a generator needs at least 2 rows to learn from"
            )
        schema = Schema.infer(df) if schema is None else schema
        options = {
            "seed": streams.small_seed("transform"),
            **self._transformer_defaults(),
            **(self.transformer_options or {}),
        }
        transformer = self.transformer_class(**options)
        if self.dp is None:
            transformer.fit(df, schema)
            return transformer, transformer.encode(df).to(device), None
        # the transform and the initial values see only DP statistics (see private)
        from synthgen.backends.private import prepare_private

        private = prepare_private(df, schema, self.dp, streams.seed("release"))
        transformer.fit(private.pseudo, private.schema)
        return transformer, transformer.encode(private.frame).to(device), private

    def _fit(
        self,
        df: pd.DataFrame,
        schema: Schema | None,
        resume: bool,
        device: torch.device,
        streams: SeedStreams,
    ):
        log = TrainingLog()
        with timer() as prep:
            transformer, data, private = self._encode_training_data(df, schema, streams, device)
        log.preprocessing_seconds = prep[0]
        self._prepare(transformer, device)
        if private is not None:
            return self._fit_private(log, private, data, resume, device, streams)
        train, valid = self._split(data, streams.seed("split"))
        stopper = None
        if self.early_stopping_patience is not None:
            if valid is None:
                log.notes.append(
                    f"early stopping skipped: {len(data)} rows are too few for a validation "
                    f"split of {self.validation_fraction}"
                )
            else:
                stopper = EarlyStopping(self.early_stopping_patience)
        self._build(self.layout_, train)
        self.training_log_ = log
        n = train.shape[0]
        batch = min(self.batch_size, n)
        batch -= batch % self.batch_multiple
        smallest = max(self.batch_multiple, self.min_batch_rows)
        if batch < smallest:
            raise ConfigError(
                f"{n} training rows are too few for {type(self).__name__}: it needs at least "
                f"{smallest} rows per batch"
            )
        # a last partial batch smaller than ``smallest`` is left out of that epoch (the
        # order is reshuffled every epoch, so no row is left out for good)
        steps = max(1, n // batch) if n % batch < smallest else math.ceil(n / batch)
        epochs = self._epochs_for(steps)
        # the accelerated paths are exact equivalents of autograd on the mean loss, so
        # they are used whenever nothing needs per-sample gradients
        accelerated = bool(self.accelerate) and self.dp is None
        rows = self._training_rows(train, accelerated)
        states = [
            PlayerState(player, epochs * steps * player.updates, self.clip_grad_norm)
            for player in self._players()
        ]
        generator = make_generator(streams.seed("order"), device)
        self._shuffle_generator = generator
        self.step_ = 0
        start_epoch = self._load_checkpoint(stopper, states) if resume else 0
        best_state: dict[str, dict[str, torch.Tensor]] | None = None
        with (
            timer() as fit_time,
            EpochProgress(epochs, type(self).__name__, show_progress(self.progress)) as bar,
        ):
            for epoch in range(start_epoch, epochs):
                with timer() as epoch_time:
                    self._set_training(True)
                    order = torch.randperm(n, generator=generator, device=device)
                    totals: dict[str, torch.Tensor] = {}
                    for step in range(steps):
                        index = order[step * batch : (step + 1) * batch]
                        if len(index) % self.batch_multiple:
                            index = index[: len(index) - len(index) % self.batch_multiple]
                        self._train_step(states, rows.index_select(0, index), accelerated, totals)
                        self.step_ += 1
                    epoch_losses = {k: float(v) / steps for k, v in totals.items()}
                    if valid is not None:
                        self._set_training(False)
                        with torch.no_grad():
                            epoch_losses["val_loss"] = self._validation_loss(valid)
                log.record(epoch + 1, epoch_time[0], **epoch_losses)
                for state in states:
                    own = epoch_losses.get(state.player.log_name, math.nan)
                    state.end_epoch(epoch_losses.get("val_loss", own))
                bar.update(epoch + 1, epoch_losses)
                stop = False
                if stopper is not None:
                    stop = stopper.step(epoch + 1, epoch_losses["val_loss"])
                    if stopper.best_epoch == epoch + 1:
                        best_state = self._weights_copy()
                if self.checkpoint_every and (epoch + 1) % self.checkpoint_every == 0:
                    self._save_checkpoint(epoch + 1, stopper, states)
                out_of_time = self._budget is not None and self._time_fraction() >= 1.0
                if stop or self._should_stop() or out_of_time:
                    log.stopped_early = True
                    break
        if stopper is not None and best_state is not None:
            self._load_weights(best_state)
            log.best_epoch = stopper.best_epoch
        self._set_training(False)
        log.training_seconds = fit_time[0]
        return self

    def _fit_private(
        self,
        log: TrainingLog,
        private: Any,
        data: torch.Tensor,
        resume: bool,
        device: torch.device,
        streams: SeedStreams,
    ):
        """DP-SGD: Poisson batches for every private update, a fixed number of steps.

        The noise multiplier is solved for the planned steps so that preprocessing plus
        training stays within ``dp.epsilon``; the accountant records every private
        update as it happens, and the reported epsilon is computed from that history.
        No validation split, early stopping or loss-driven schedule: each would read the
        raw rows outside DP-SGD, unaccounted. Losses are therefore not logged either.
        """
        from privacy.accounting import Accountant, PrivacySpent, solve_noise_multiplier
        from synthgen.backends.optimization import DPSettings

        dp = self.dp
        if self.validation_fraction or self.early_stopping_patience is not None:
            log.notes.append(
                "dp: no validation split and no early stopping (they would read raw rows "
                "outside DP-SGD, unaccounted); trained for the fixed number of epochs"
            )
        # data-derived initial values (frequencies, biases) come from the DP pseudo rows
        self._build(self.layout_, self.transformer_.encode(private.pseudo).to(device))
        self.training_log_ = log
        n = data.shape[0]
        sample_rate = min(1.0, float(self.batch_size) / n)
        steps = max(1, round(1.0 / sample_rate))
        epochs = self._epochs_for(steps)
        players = self._players()
        private_updates = sum(p.updates for p in players if p.private)
        planned = epochs * steps * private_updates
        training_epsilon = float(dp.epsilon) - private.preprocessing_epsilon
        training_delta = private.delta - private.preprocessing_delta
        if training_epsilon <= 0:
            raise ConfigError(
                f"dp: preprocessing used epsilon {private.preprocessing_epsilon:.4g} of "
                f"{dp.epsilon}, leaving nothing for training; lower preprocessing_epsilon"
            )
        sigma = solve_noise_multiplier(
            training_epsilon, training_delta, sample_rate, planned, dp.accountant
        )
        settings = DPSettings(
            sigma, float(dp.max_grad_norm), sample_rate * n, bool(self.accelerate)
        )
        states = [PlayerState(p, epochs * steps * p.updates, None, settings) for p in players]
        accountant = Accountant(dp.accountant)
        self._accountant = accountant
        rows = self._training_rows(data, False)
        generator = make_generator(streams.seed("order"), device)
        self._shuffle_generator = generator
        self.step_ = 0
        start_epoch = self._load_checkpoint(None, states) if resume else 0
        nominal = max(int(self.batch_size), self.min_batch_rows, self.batch_multiple)
        placeholder = torch.zeros(nominal, rows.shape[1], device=device)
        from privacy.dp_sgd import poisson_indices

        with (
            timer() as fit_time,
            EpochProgress(epochs, type(self).__name__, show_progress(self.progress)) as bar,
        ):
            for epoch in range(start_epoch, epochs):
                with timer() as epoch_time:
                    self._set_training(True)
                    for _ in range(steps):
                        fraction = self._time_fraction()
                        for state in states:
                            for _ in range(state.player.updates):
                                if state.dp_step is None:
                                    state.update(placeholder, False, fraction)
                                    continue
                                index = poisson_indices(n, sample_rate, generator, device)
                                state.update(rows.index_select(0, index), False, fraction)
                                accountant.step(sigma, sample_rate)
                        self.step_ += 1
                log.record(epoch + 1, epoch_time[0])
                bar.update(epoch + 1, {})
                if self.checkpoint_every and (epoch + 1) % self.checkpoint_every == 0:
                    self._save_checkpoint(epoch + 1, None, states)
                if self._budget is not None and self._time_fraction() >= 1.0:
                    log.stopped_early = True
                    break
        self._set_training(False)
        log.training_seconds = fit_time[0]
        spent = PrivacySpent.compose(
            preprocessing_epsilon=private.preprocessing_epsilon,
            preprocessing_delta=private.preprocessing_delta,
            accountant=accountant,
            training_delta=training_delta,
            noise_multiplier=sigma,
            sample_rate=sample_rate,
            delta_source=private.delta_source,
        )
        if spent.epsilon > float(dp.epsilon) * (1 + 1e-9) or spent.delta > private.delta * (
            1 + 1e-9
        ):  # pragma: no cover - the solver guarantees it; never report an overshoot
            raise RuntimeError(f"DP accounting overshot the target: {spent}")
        self.privacy_spent_ = spent
        self.dp_release_ = private.release
        log.notes.extend(f"dp accountant: {note}" for note in spent.notes)
        return self

    def _set_training(self, training: bool) -> None:
        """Every network in training mode (dropout, batch norm) or in inference mode."""
        for module in self._modules().values():
            module.train(training)

    def _train_step(
        self,
        states: list[PlayerState],
        batch: torch.Tensor,
        accelerated: bool,
        totals: dict[str, torch.Tensor],
    ) -> None:
        """One training step: every player's updates, in order; losses summed into ``totals``.

        A player updated several times per step (n critic steps) logs its last update.
        """
        fraction = self._time_fraction()
        for state in states:
            for _ in range(state.player.updates):
                value, metrics = state.update(batch, accelerated, fraction)
            for key, item in {state.player.log_name: value, **metrics}.items():
                totals[key] = totals.get(key, 0.0) + item.detach()

    def _split(self, data: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.validation_fraction:
            return data, None
        n_valid = int(round(len(data) * self.validation_fraction))
        if n_valid < 1 or len(data) - n_valid < 2:
            return data, None
        generator = make_generator(seed, torch.device("cpu"))
        order = torch.randperm(len(data), generator=generator).to(data.device)
        return data[order[n_valid:]], data[order[:n_valid]]

    # ------------------------------------------------------------------ weights & checkpoints
    def _weights_copy(self) -> dict[str, dict[str, torch.Tensor]]:
        return {
            name: {k: v.detach().clone() for k, v in module.state_dict().items()}
            for name, module in self._modules().items()
        }

    def _load_weights(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        for name, module in self._modules().items():
            module.load_state_dict(state[name])

    def _checkpoint_path(self) -> str:
        return os.path.join(str(self.checkpoint_dir), f"{self.backend_name}.ckpt")

    def _save_checkpoint(
        self, epoch: int, stopper: EarlyStopping | None, states: list[PlayerState]
    ) -> None:
        """Weights, optimiser state and progress, written atomically (weights-only format)."""
        os.makedirs(str(self.checkpoint_dir), exist_ok=True)
        payload = {
            "epoch": epoch,
            "step": self.step_,
            "modules": self._weights_copy(),
            "players": {s.player.name: s.state_dict() for s in states},
            "log": self.training_log_.epochs,
            "stopper": stopper.state_dict() if stopper else None,
            # both RNG streams, so a resumed fit continues exactly like an unbroken one
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device_.type == "cuda" else [],
            "shuffle_rng": self._shuffle_generator.get_state(),
            "accountant": self._accountant.state_dict() if self.dp is not None else None,
        }
        path = self._checkpoint_path()
        torch.save(payload, path + ".tmp")
        os.replace(path + ".tmp", path)

    def _load_checkpoint(self, stopper: EarlyStopping | None, states: list[PlayerState]) -> int:
        path = self._checkpoint_path() if self.checkpoint_dir else ""
        if not path or not os.path.isfile(path):
            raise ConfigError(
                f"resume=True but there is no checkpoint at {path or '(no checkpoint_dir)'}; "
                "fit once with checkpoint_dir and checkpoint_every set"
            )
        try:
            payload = torch.load(path, map_location=self.device_, weights_only=True)
            self._load_weights(payload["modules"])
            for state in states:
                state.load_state_dict(payload["players"][state.player.name])
            self.training_log_.epochs = list(payload["log"])
            if stopper is not None and payload["stopper"]:
                stopper.load_state_dict(payload["stopper"])
            torch.set_rng_state(payload["torch_rng"].cpu())
            if payload["cuda_rng"]:
                torch.cuda.set_rng_state_all([s.cpu() for s in payload["cuda_rng"]])
            self._shuffle_generator.set_state(payload["shuffle_rng"].cpu())
            if self.dp is not None:
                if not payload.get("accountant"):
                    raise ValueError("the checkpoint was written without dp")
                self._accountant.load_state_dict(payload["accountant"])
            self.step_ = int(payload["step"])
            return int(payload["epoch"])
        except Exception as error:  # torch.load and load_state_dict raise many kinds
            raise ConfigError(
                f"the checkpoint {path!r} cannot be resumed ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else 'damaged'}); it is damaged or "
                "was written by a model with other parameters: delete it and fit without "
                "resume=True"
            ) from None

    # ------------------------------------------------------------------ sampling
    def _check_fitted(self) -> None:
        if not hasattr(self, "transformer_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(df) first"
            )

    @property
    def schema(self) -> Schema:
        self._check_fitted()
        return self.transformer_.schema

    @property
    def training_log(self) -> TrainingLog:
        self._check_fitted()
        return self.training_log_

    @property
    def privacy_spent(self):
        """DP accounting of the fit; None when trained without differential privacy."""
        self._check_fitted()
        return getattr(self, "privacy_spent_", None)

    @torch.no_grad()
    def _generate_encoded(
        self, n: int, generator: torch.Generator, condition: dict[str, Any] | None = None
    ) -> torch.Tensor:
        self._set_training(False)  # batch norm and dropout in inference mode
        chunks = []
        for start in range(0, n, SAMPLE_CHUNK):
            size = min(SAMPLE_CHUNK, n - start)
            if condition is None:
                chunks.append(self._generate(size, generator).cpu())
            else:
                chunks.append(self._generate_for(size, generator, condition).cpu())
        if chunks:
            return torch.cat(chunks)
        return self._generate(0, generator).cpu()

    def sample(
        self,
        n: int,
        seed: int | None = None,
        conditions: dict[str, Any] | pd.DataFrame | list[dict[str, Any]] | None = None,
        max_tries: int = 100,
    ) -> pd.DataFrame:
        """Generate ``n`` rows with the training frame's columns and dtypes.

        ``seed`` makes the rows reproducible (the same seed gives the same rows on the
        same device); without it every call returns fresh rows. ``conditions`` fixes
        columns: ``{"income": ">50K"}``, a numeric range ``{"age": (30, 40)}``, or a list
        / DataFrame of condition rows (``n`` rows for each). Backends without native
        conditioning reach them by vectorised rejection sampling, giving up with a
        ``ConditionError`` after ``max_tries`` rounds.
        """
        self._check_fitted()
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ConfigError(f"n={n!r} must be a non-negative integer number of rows")
        if seed is not None:
            check_int("seed", seed, 0)
        check_int("max_tries", max_tries, 1)
        self._check_sample_size(int(n))
        sample_seed = SeedStreams(seed).seed("sample")
        generator = make_generator(sample_seed, self.device_)
        decode_seeds = np.random.default_rng(sample_seed)  # for transforms that decode with noise
        with forked_torch_rng(self.device_, sample_seed):
            if conditions is None:
                return self.transformer_.decode(
                    self._generate_encoded(int(n), generator),
                    seed=int(decode_seeds.integers(2**31)),
                )
            sampler = ConditionSampler(self.transformer_.schema, conditions)

            def generate(k: int, condition: dict[str, Any]) -> pd.DataFrame:
                return self.transformer_.decode(
                    self._generate_encoded(k, generator, condition),
                    seed=int(decode_seeds.integers(2**31)),
                )

            return sampler.sample(int(n), generate, max_tries=max_tries)

    def _check_sample_size(self, n: int) -> None:
        """Refuse a sample that cannot fit in memory, before any work."""
        import psutil

        cells = n * max(1, len(self.transformer_.schema.names))
        needed = cells * BYTES_PER_SAMPLED_CELL
        available = psutil.virtual_memory().available
        if needed > available:
            raise ConfigError(
                f"n={n} rows would need about {needed / 1e9:.3g} GB of memory but "
                f"{available / 1e9:.3g} GB are available; sample in chunks (a loop of "
                "sample(1_000_000, seed=k)) or use `synthgen sample`, which writes to a file"
            )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str) -> None:
        """Write the fitted model to ``path`` (JSON config + tensors, never pickle)."""
        from synthgen.io import save_model

        self._check_fitted()
        save_model(self, path)

    def _restore(self) -> None:
        """Rebuild the networks of a loaded model (weights are loaded afterwards)."""
        self._build(self.layout_, None)

    def _extra_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Backend state beyond network weights that sampling needs (JSON, tensors)."""
        return {}, {}

    def _load_extra_state(self, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        return None

"""The shared training loop: players, the optimisation step, randomness, parameters."""

from __future__ import annotations

import random
import types

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from torch import nn

import synthgen as sg
from synthgen.backends import base as base_module
from synthgen.backends.optimization import PlayerState
from synthgen.backends.players import LinearDecay, OptimizerSpec, Plateau, Player, RowLoss
from synthgen.errors import ConfigError

TINY = {
    "tvae": lambda **kw: sg.TVAE(epochs=2, batch_size=100, device="cpu", **kw),
    "ctgan": lambda **kw: sg.CTGAN(epochs=2, batch_size=100, device="cpu", **kw),
    "tabddpm": lambda **kw: sg.TabDDPM(
        steps=4,
        batch_size=100,
        num_timesteps=20,
        sample_steps=4,
        hidden=(32,),
        device="cpu",
        **kw,
    ),
    "tabular_ar": lambda **kw: sg.TabularAR(epochs=2, batch_size=100, device="cpu", **kw),
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 300
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "k": rng.integers(0, 5, size=n),
            "c": rng.choice(["a", "b", "c"], size=n),
        }
    )


@pytest.fixture(scope="module")
def fitted(frame) -> dict[str, sg.BaseGenerator]:
    return {name: make(progress=False).fit(frame) for name, make in TINY.items()}


# ---------------------------------------------------------------- randomness
@pytest.mark.parametrize("name", sorted(TINY))
def test_sample_without_seed_is_fresh_and_with_seed_reproducible(fitted, name):
    model = fitted[name]
    pd.testing.assert_frame_equal(model.sample(200, seed=1), model.sample(200, seed=1))
    first, second = model.sample(200), model.sample(200)
    assert not first.equals(second)
    assert not model.sample(200, seed=1).equals(model.sample(200, seed=2))


@pytest.mark.parametrize("name", sorted(TINY))
def test_fit_leaves_the_global_generators_alone(frame, name):
    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    TINY[name](progress=False).fit(frame).sample(10, seed=0)
    assert random.getstate() == before[0]
    assert np.array_equal(np.random.get_state()[1], before[1])
    assert torch.equal(torch.get_rng_state(), before[2])


@pytest.mark.parametrize("name", sorted(TINY))
def test_same_seed_same_model_whatever_the_global_state(frame, name):
    torch.manual_seed(1)
    a = TINY[name](seed=3, progress=False).fit(frame)
    torch.manual_seed(2)
    np.random.seed(2)
    b = TINY[name](seed=3, progress=False).fit(frame)
    for module_name, module in a._modules().items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, b._modules()[module_name].state_dict()[key]), key
    pd.testing.assert_frame_equal(a.sample(100, seed=5), b.sample(100, seed=5))


def test_seed_streams_are_independent_per_purpose():
    from synthgen.training import PURPOSES, SeedStreams

    streams = SeedStreams(0)
    seeds = [streams.seed(p) for p in PURPOSES]
    assert len(set(seeds)) == len(seeds)
    assert seeds == [SeedStreams(0).seed(p) for p in PURPOSES]
    assert SeedStreams(1).seed("order") != streams.seed("order")
    assert SeedStreams(None).seed("sample") != SeedStreams(None).seed("sample")
    assert all(0 <= s < 2**63 for s in seeds)


# ---------------------------------------------------------------- scikit-learn contract
@pytest.mark.parametrize("name", sorted(TINY))
def test_clone_get_params_and_set_params(frame, name):
    model = TINY[name](seed=4)
    copy = clone(model)
    assert type(copy) is type(model) and copy is not model
    assert copy.get_params(deep=True) == model.get_params(deep=False)
    copy.set_params(seed=9)
    assert copy.seed == 9 and model.seed == 4
    with pytest.raises(ConfigError, match="no parameter 'nonsense'"):
        copy.set_params(nonsense=1)
    fitted = clone(model).fit(frame)
    assert not hasattr(clone(fitted), "transformer_")  # clone drops learned state


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: sg.TVAE(embedding_dim="128"), "embedding_dim='128'"),
        (lambda: sg.TVAE(learning_rate=-1e-3), "learning_rate=-0.001"),
        (lambda: sg.TVAE(compress_dims=128), "compress_dims=128"),
        (lambda: sg.TVAE(compress_dims=(128, True)), "compress_dims"),
        (lambda: sg.TVAE(transformer_options={"bogus": 1}), r"unknown key\(s\) \['bogus'\]"),
        (lambda: sg.TVAE(seed=-1), "seed=-1"),
        (lambda: sg.TVAE(num_threads="2"), "num_threads='2'"),
        (lambda: sg.TVAE(epochs=2.5), "epochs=2.5"),
        (lambda: sg.TVAE(precision="half"), "precision='half'"),
        (lambda: sg.CTGAN(pac="10"), "pac='10'"),
        (lambda: sg.CTGAN(discriminator_steps=0), "discriminator_steps=0"),
        (lambda: sg.TabDDPM(hidden=[]), r"hidden=\[\]"),
        (lambda: sg.TabDDPM(ema_decay=1.0), "ema_decay=1.0"),
        (lambda: sg.TabularAR(flexible_share=2), "flexible_share=2"),
        (lambda: sg.TabularAR(hidden_dim=None), "hidden_dim=None"),
        (lambda: sg.TVAE(clip_grad_norm=0), "clip_grad_norm=0"),
        (lambda: sg.TVAE(accelerate="yes"), "accelerate='yes'"),
    ],
)
def test_bad_parameters_name_the_parameter_and_the_accepted_values(frame, make, match):
    with pytest.raises(ConfigError, match=match):
        make().fit(frame)


def test_transformer_options_error_lists_the_accepted_keys(frame):
    with pytest.raises(ConfigError, match="accepted keys: .*'seed'"):
        sg.TVAE(transformer_options={"bogus": 1}).fit(frame)


# ---------------------------------------------------------------- the optimisation step
def _player(**kw) -> tuple[Player, nn.Linear]:
    torch.manual_seed(0)
    layer = nn.Linear(3, 1)
    x = torch.randn(16, 3)

    def loss(batch: torch.Tensor) -> RowLoss:
        return RowLoss(layer(x)[:, 0] ** 2)

    return Player("p", [layer], OptimizerSpec("adam", 0.1), loss, **kw), layer


def test_the_step_uses_the_mean_of_the_row_loss():
    player, layer = _player()
    state = PlayerState(player, total_updates=10, clip_grad_norm=None)
    reference = nn.Linear(3, 1)
    reference.load_state_dict(layer.state_dict())
    optimizer = torch.optim.Adam(reference.parameters(), lr=0.1)
    torch.manual_seed(0)
    nn.Linear(3, 1)  # the player's layer consumed these draws
    x = torch.randn(16, 3)
    value, _ = state.update(torch.zeros(16, 1), accelerated=False, time_fraction=0.0)
    (reference(x)[:, 0] ** 2).mean().backward()
    optimizer.step()
    torch.testing.assert_close(layer.weight, reference.weight)
    assert value.shape == () and state.updates_done == 1


def test_gradient_clipping_bounds_the_gradient_norm():
    player, _ = _player()
    state = PlayerState(player, total_updates=10, clip_grad_norm=1e-3)
    state.update(torch.zeros(16, 1), accelerated=False, time_fraction=0.0)
    assert float(state.flat.parameter.grad.norm()) <= 1e-3 * (1 + 1e-5)


def test_linear_decay_follows_updates_or_time_whichever_is_further():
    player, _ = _player(schedule=LinearDecay())
    state = PlayerState(player, total_updates=4, clip_grad_norm=None)
    lrs = []
    for _ in range(4):
        state.update(torch.zeros(16, 1), accelerated=False, time_fraction=0.0)
        lrs.append(state.optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.1, 0.075, 0.05, 0.025])
    state.update(torch.zeros(16, 1), accelerated=False, time_fraction=0.9)
    assert state.optimizer.param_groups[0]["lr"] == pytest.approx(0.0)


def test_plateau_halves_the_rate_when_the_loss_stalls():
    player, _ = _player(schedule=Plateau(factor=0.5, patience=0))
    state = PlayerState(player, total_updates=4, clip_grad_norm=None)
    state.end_epoch(1.0)
    state.end_epoch(2.0)
    assert state.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_ema_moves_towards_the_weights_with_a_warm_up():
    player, layer = _player()
    average = nn.Linear(3, 1)
    average.load_state_dict(layer.state_dict())
    player.ema, player.ema_decay = average, 0.999
    state = PlayerState(player, total_updates=10, clip_grad_norm=None)
    start = average.weight.detach().clone()
    state.update(torch.zeros(16, 1), accelerated=False, time_fraction=0.0)
    decay = 2 / 11  # min(0.999, (1 + k) / (10 + k)) after the first update
    expected = decay * start + (1 - decay) * layer.weight.detach()
    torch.testing.assert_close(average.weight.detach(), expected)


def test_accelerated_and_autograd_paths_train_the_same_tvae(frame):
    kwargs = dict(epochs=3, batch_size=100, seed=0, precision="float32", progress=False)
    fast = sg.TVAE(**kwargs).fit(frame)
    slow = sg.TVAE(accelerate=False, **kwargs).fit(frame)
    for a, b in zip(fast.training_log.epochs, slow.training_log.epochs, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    for key, value in fast.decoder_.state_dict().items():
        torch.testing.assert_close(value, slow.decoder_.state_dict()[key], rtol=1e-3, atol=1e-4)


def test_ctgan_trains_through_autograd_when_not_accelerated(frame):
    model = sg.CTGAN(epochs=2, batch_size=100, accelerate=False, progress=False).fit(frame)
    losses = model.training_log.epochs[-1]
    assert all(np.isfinite(losses[k]) for k in ("loss_d", "loss_g", "penalty"))
    assert list(model.sample(20, seed=0).columns) == list(frame.columns)


def _fake_clock(monkeypatch, tick: float) -> None:
    """Every read of the scaffold's clock advances it by ``tick`` seconds."""
    now = [0.0]

    def perf_counter() -> float:
        now[0] += tick
        return now[0]

    monkeypatch.setattr(base_module, "time", types.SimpleNamespace(perf_counter=perf_counter))


def test_time_budget_stops_training_after_the_budget(frame, monkeypatch):
    _fake_clock(monkeypatch, tick=1.0)
    model = sg.TVAE(epochs=1000, batch_size=100, max_training_time=20.0, progress=False)
    log = model.fit(frame).training_log
    # three steps an epoch, one clock read per step: 20 reads is epoch 7
    assert log.stopped_early and 5 <= len(log.epochs) <= 8


def test_tiny_frame_skips_early_stopping_with_a_note():
    tiny = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "c": ["a", "b", "a", "b"]})
    model = sg.TabularAR(epochs=2, progress=False).fit(tiny)
    assert "early stopping skipped" in model.training_log.notes[0]
    assert len(model.sample(5, seed=0)) == 5


def test_sample_refuses_a_size_that_cannot_fit_in_memory(fitted):
    with pytest.raises(ConfigError, match="GB of memory"):
        fitted["tvae"].sample(2**62)
    with pytest.raises(ConfigError, match="seed=-1"):
        fitted["tvae"].sample(5, seed=-1)

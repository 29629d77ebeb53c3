"""TabDDPM backend: fit/sample contract, target conditioning, reproducibility, devices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import synthgen as sg
from synthgen.errors import ConfigError

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _small(**kw) -> sg.TabDDPM:
    options = dict(
        steps=60,
        batch_size=256,
        seed=0,
        device="cpu",
        hidden=(64, 64),
        time_dim=32,
        num_timesteps=100,
        sample_steps=20,
    )
    options.update(kw)
    return sg.TabDDPM(**options)


@pytest.fixture(scope="module")
def conditional(adult_small):
    return _small(target="income").fit(adult_small)


def test_sample_has_the_training_columns_and_dtypes(conditional, adult_small):
    synthetic = conditional.sample(300, seed=1)
    assert list(synthetic.columns) == list(adult_small.columns)
    assert synthetic.dtypes.equals(adult_small.dtypes)
    assert synthetic["age"].between(adult_small["age"].min(), adult_small["age"].max()).all()
    assert set(synthetic["workclass"].dropna()) <= set(adult_small["workclass"].dropna())


def test_steps_decide_the_training_length(conditional):
    log = conditional.training_log
    # 2000 rows / batch 256 = 8 steps per epoch; 60 steps round up to 8 whole epochs
    assert len(log.epochs) == 8 and conditional.step_ == 64
    assert not log.stopped_early


def test_target_conditioning_is_exact(conditional):
    rich = conditional.sample(200, seed=2, conditions={"income": ">50K"})
    assert (rich["income"] == ">50K").all() and len(rich) == 200


def test_target_frequencies_follow_training_data(conditional, adult_small):
    synthetic = conditional.sample(4000, seed=3)
    real = adult_small["income"].value_counts(normalize=True)
    fake = synthetic["income"].value_counts(normalize=True)
    assert abs(real[">50K"] - fake[">50K"]) < 0.03


def test_same_seed_same_model_same_samples(adult_small):
    a = _small(steps=10).fit(adult_small).sample(100, seed=5)
    b = _small(steps=10).fit(adult_small).sample(100, seed=5)
    pd.testing.assert_frame_equal(a, b)


def test_save_and_load_give_identical_samples(conditional, tmp_path):
    path = tmp_path / "adult.tabddpm"
    conditional.save(str(path))
    loaded = sg.load_model(str(path))
    assert isinstance(loaded, sg.TabDDPM)
    pd.testing.assert_frame_equal(loaded.sample(50, seed=9), conditional.sample(50, seed=9))
    pd.testing.assert_frame_equal(
        loaded.sample(20, seed=9, conditions={"income": "<=50K"}),
        conditional.sample(20, seed=9, conditions={"income": "<=50K"}),
    )


def test_learns_a_dependency_between_columns():
    """y = x > 0 exactly in training; a trained model keeps most of that link."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 3000)
    frame = pd.DataFrame({"x": x, "y": np.where(x > 0, "pos", "neg"), "z": rng.normal(5, 2, 3000)})
    model = _small(steps=400, hidden=(128, 128), batch_size=512, learning_rate=3e-3)
    synthetic = model.fit(frame).sample(2000, seed=0)
    agreement = ((synthetic["x"] > 0) == (synthetic["y"] == "pos")).mean()
    assert agreement > 0.85, agreement
    assert abs(synthetic["z"].mean() - 5) < 0.5 and abs(synthetic["z"].std() - 2) < 0.6


def test_unconditional_model_handles_every_column_kind(mixed_frame):
    model = _small(steps=20).fit(mixed_frame)
    synthetic = model.sample(100, seed=0)
    assert list(synthetic.columns) == list(mixed_frame.columns)
    assert synthetic["score"].isna().any() == mixed_frame["score"].isna().any()
    assert synthetic["joined"].dtype == mixed_frame["joined"].dtype


@pytest.mark.parametrize("device", DEVICES)
def test_device_parameterised_fit_and_sample(device, adult_small):
    """The CUDA path is this same code; on a CPU-only machine only 'cpu' runs."""
    model = _small(steps=8, device=device, target="income").fit(adult_small.head(500))
    assert next(model.denoiser_.parameters()).device.type == device
    synthetic = model.sample(64, seed=0)
    assert len(synthetic) == 64


def test_bad_targets_and_parameters_raise_clear_errors(adult_small):
    with pytest.raises(ConfigError, match="not a column"):
        _small(target="salary").fit(adult_small)
    with pytest.raises(ConfigError, match="fnlwgt"):
        _small(target="fnlwgt").fit(adult_small)
    with pytest.raises(ConfigError, match="no column besides"):
        _small(target="income").fit(adult_small[["income"]])
    with pytest.raises(ConfigError, match="steps"):
        _small(steps=0).fit(adult_small)
    with pytest.raises(ConfigError, match="sample_steps"):
        _small(sample_steps=0).fit(adult_small)
    with pytest.raises(sg.errors.ConditionError):
        _small(steps=2, target="income").fit(adult_small).sample(5, conditions={"income": "rich"})


def test_time_budget_stops_training(adult_small):
    model = _small(steps=10_000, max_training_time=1e-9).fit(adult_small)
    assert model.training_log.stopped_early
    # the budget is spent before the first epoch ends: exactly one epoch of steps runs
    assert len(model.training_log.epochs) == 1 and 0 < model.step_ < 10_000


def test_presets():
    quality = sg.TabDDPM.preset("quality", device="cpu", target="income")
    assert quality.steps == 30_000 and quality.sample_steps is None
    assert quality.target == "income" and quality.device == "cpu"
    assert sg.TabDDPM.preset("cpu").get_params() == sg.TabDDPM().get_params()
    with pytest.raises(ConfigError, match="unknown preset"):
        sg.TabDDPM.preset("turbo")


def test_checkpoint_and_resume_match_a_straight_run(adult_small, tmp_path, monkeypatch):
    frame = adult_small.head(600)
    kwargs = dict(steps=None, epochs=4, checkpoint_dir=str(tmp_path), checkpoint_every=1)
    straight = _small(**{**kwargs, "checkpoint_dir": None, "checkpoint_every": 0}).fit(frame)
    interrupted = _small(**kwargs)
    stop_after_two = lambda: len(interrupted.training_log_.epochs) >= 2  # noqa: E731
    monkeypatch.setattr(interrupted, "_should_stop", stop_after_two)
    interrupted.fit(frame)
    assert len(interrupted.training_log.epochs) == 2
    resumed = _small(**kwargs).fit(frame, resume=True)
    assert [e["epoch"] for e in resumed.training_log.epochs] == [1, 2, 3, 4]
    assert resumed.step_ == straight.step_
    for key, value in straight.ema_.state_dict().items():
        torch.testing.assert_close(value, resumed.ema_.state_dict()[key])


def test_fit_leaves_constructor_parameters_untouched(adult_small):
    model = _small(steps=2, n_quantiles=50)
    before = model.get_params()
    model.fit(adult_small.head(300))
    assert model.get_params() == before and model.transformer_options is None
    assert model.transformer_.n_quantiles == 50


# ---------------------------------------------------------------------- fast samplers
@pytest.fixture(scope="module")
def unconditional(adult_small):
    return _small(steps=16).fit(adult_small.head(800))


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_samplers_are_reproducible_across_sampling_batches(unconditional, sampler, monkeypatch):
    """Same seed, same rows, also when the rows are denoised in several batches."""
    unconditional.set_params(sampler=sampler)
    monkeypatch.setattr(sg.TabDDPM, "SAMPLE_BATCH", 64)
    seen: list[int] = []
    original = sg.TabDDPM._denoise_batch

    def spy(self, n, *args):
        seen.append(n)
        return original(self, n, *args)

    monkeypatch.setattr(sg.TabDDPM, "_denoise_batch", spy)
    a = unconditional.sample(150, seed=4)
    assert seen == [50, 50, 50]  # equal batches of at most SAMPLE_BATCH rows
    pd.testing.assert_frame_equal(a, unconditional.sample(150, seed=4))
    assert not a.equals(unconditional.sample(150, seed=5))
    unconditional.set_params(sampler="ddim")


def test_ddim_with_eta_one_is_the_ddpm_sampler(unconditional):
    """eta = 1 is the DDPM posterior and draws the same noise in the same order, so the
    same seed gives the same rows up to float rounding (a near-tie Gumbel draw may flip
    a category in a few rows)."""
    unconditional.set_params(sampler="ddpm")
    ddpm = unconditional.sample(500, seed=1)
    unconditional.set_params(sampler="ddim", eta=1.0)
    ddim = unconditional.sample(500, seed=1)
    unconditional.set_params(eta=0.5)
    same = np.ones(len(ddpm), dtype=bool)
    for column in ddpm.columns:
        a, b = ddpm[column], ddim[column]
        if pd.api.types.is_numeric_dtype(a):
            same &= np.isclose(a, b, rtol=1e-3, atol=1.0) | (a.isna() & b.isna())
        else:
            same &= (a.astype(str) == b.astype(str)).to_numpy()
    assert same.mean() > 0.98, same.mean()


def test_sampler_options_are_validated(unconditional, adult_small):
    with pytest.raises(ConfigError, match=r"sampler='euler'.*\['ddim', 'ddpm'\]"):
        _small(sampler="euler").fit(adult_small)
    with pytest.raises(ConfigError, match=r"eta=1.5 must be a number in \[0, 1\]"):
        _small(eta=1.5).fit(adult_small)
    with pytest.raises(ConfigError, match=r"sample_precision='fp16'.*'bfloat16'"):
        _small(sample_precision="fp16").fit(adult_small)
    # set_params after fit (how a loaded model is re-tuned) is checked when sampling
    unconditional.set_params(sampler="DDIM")
    try:
        with pytest.raises(ConfigError, match="sampler='DDIM'"):
            unconditional.sample(5, seed=0)
        unconditional.set_params(sampler="ddim", sample_steps=-3)
        with pytest.raises(ConfigError, match="sample_steps=-3"):
            unconditional.sample(5, seed=0)
    finally:
        unconditional.set_params(sampler="ddim", sample_steps=20)


def _plain_reverse_process(model: sg.TabDDPM, n: int, seed: int) -> torch.Tensor:
    """The reverse loop written plainly over encoded rows (split / merge every step, the
    network's own ``forward``): what the padded fast path must reproduce."""
    generator = torch.Generator().manual_seed(seed)
    layout, multinomial, gaussian = model.layout_, model.multinomial_, model.gaussian_
    alpha = layout.alpha_index
    x = torch.empty((n, layout.dim))
    x[:, alpha] = torch.randn((n, alpha.numel()), generator=generator)
    multinomial.merge(x, multinomial.draw(multinomial.uniform(n, x.device), generator))
    visited = model.schedule_.sampling_steps(model.sample_steps)
    for t, s in zip(visited[:-1], visited[1:], strict=True):
        ab_t, ab_s = float(model.schedule_.alpha_bar[t]), float(model.schedule_.alpha_bar[s])
        out = model.ema_(x, torch.full((n,), t), None)
        nxt = torch.empty_like(x)
        if model.sampler == "ddim":
            moved = gaussian.ddim_step(x[:, alpha], out[:, alpha], ab_t, ab_s, model.eta, generator)
        else:
            moved = gaussian.step(x[:, alpha], out[:, alpha], ab_t, ab_s, generator)
        nxt[:, alpha] = moved
        x0 = multinomial.predicted_x0(multinomial.split_logits(out))
        probs = multinomial.posterior(multinomial.split(x), x0, ab_t, ab_s)
        multinomial.merge(nxt, multinomial.draw(probs, generator))
        x = nxt
    return x


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_padded_fast_path_reproduces_the_plain_reverse_loop(unconditional, sampler):
    """Same draws in the same order: the same rows up to float rounding (a near-tie
    category draw may flip in a few rows, and everything after it in that row)."""
    unconditional.set_params(sampler=sampler, sample_precision="float32")
    with torch.no_grad():
        plain = _plain_reverse_process(unconditional, 400, seed=11)
        fast = unconditional._denoise(400, torch.Generator().manual_seed(11), None)
    unconditional.set_params(sampler="ddim", sample_precision="auto")
    rows_equal = torch.isclose(fast, plain, rtol=1e-3, atol=1e-3).all(dim=1)
    assert rows_equal.float().mean() > 0.98
    assert not torch.equal(fast, torch.zeros_like(fast))


def test_zero_rows(unconditional, conditional):
    assert len(unconditional.sample(0, seed=0)) == 0
    assert list(conditional.sample(0, seed=0).columns) == list(conditional.schema.names)

"""TVAE on the shared scaffold: fitting, sampling, reproducibility, conditions, resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import synthgen as sg
from synthgen.errors import ConditionError, ConfigError, DataError, NotFittedError


@pytest.fixture(scope="module")
def fitted(adult_small):
    return sg.TVAE(epochs=3, batch_size=256, seed=0, device="cpu").fit(adult_small)


def test_sample_has_training_columns_and_dtypes(fitted, adult_small):
    synthetic = fitted.sample(700, seed=1)
    assert list(synthetic.columns) == list(adult_small.columns)
    assert synthetic.dtypes.equals(adult_small.dtypes)
    assert len(synthetic) == 700
    assert synthetic["age"].between(17, 90).all()
    assert set(synthetic["income"]) <= {"<=50K", ">50K"}
    # workclass has nulls in the training rows: the model reproduces them at about that rate
    real_rate = adult_small["workclass"].isna().mean()
    assert real_rate > 0
    assert 0 < synthetic["workclass"].isna().mean() < 4 * real_rate + 0.05


def test_training_log_records_every_epoch(fitted):
    log = fitted.training_log
    assert [e["epoch"] for e in log.epochs] == [1, 2, 3]
    assert all(np.isfinite(e["loss"]) and np.isfinite(e["kl"]) for e in log.epochs)
    assert all(e["seconds"] >= 0 for e in log.epochs)
    assert log.total_seconds == log.preprocessing_seconds + log.training_seconds


def test_loss_decreases_with_training(adult_small):
    model = sg.TVAE(epochs=8, batch_size=200, seed=0, device="cpu").fit(adult_small)
    losses = [e["loss"] for e in model.training_log.epochs]
    assert losses[-1] < losses[0]


def test_same_seed_same_model_and_samples(adult_small):
    a = sg.TVAE(epochs=2, batch_size=256, seed=7, device="cpu").fit(adult_small)
    b = sg.TVAE(epochs=2, batch_size=256, seed=7, device="cpu").fit(adult_small)
    for key, value in a.decoder_.state_dict().items():
        assert torch.equal(value, b.decoder_.state_dict()[key])
    pd.testing.assert_frame_equal(a.sample(500, seed=3), b.sample(500, seed=3))
    assert not a.sample(500, seed=3).equals(a.sample(500, seed=4))


def test_different_seed_different_model(adult_small):
    a = sg.TVAE(epochs=1, batch_size=256, seed=1, device="cpu").fit(adult_small)
    b = sg.TVAE(epochs=1, batch_size=256, seed=2, device="cpu").fit(adult_small)
    assert not torch.equal(a.decoder_.sigma, b.decoder_.sigma) or not a.sample(50).equals(
        b.sample(50)
    )


def test_sampling_draws_categories_in_proportion(adult_small):
    model = sg.TVAE(epochs=30, batch_size=250, seed=0, device="cpu").fit(adult_small)
    synthetic = model.sample(4000, seed=0)
    real_share = (adult_small["sex"] == "Male").mean()
    assert abs((synthetic["sex"] == "Male").mean() - real_share) < 0.1
    assert synthetic["education"].nunique() > 5


def test_conditions_by_rejection(fitted):
    rows = fitted.sample(200, conditions={"income": ">50K"}, seed=2)
    assert len(rows) == 200 and (rows["income"] == ">50K").all()
    ranged = fitted.sample(100, conditions={"age": (30, 40)}, seed=2)
    assert ranged["age"].between(30, 40).all()
    several = fitted.sample(50, conditions=[{"sex": "Male"}, {"sex": "Female"}], seed=2)
    assert (several["sex"].iloc[:50] == "Male").all() and (
        several["sex"].iloc[50:] == "Female"
    ).all()


def test_bad_conditions_name_the_problem(fitted):
    with pytest.raises(ConditionError, match="'salary'.*not in the model's schema"):
        fitted.sample(10, conditions={"salary": 1})
    with pytest.raises(ConditionError, match="'income'.*'rich'.*allowed values"):
        fitted.sample(10, conditions={"income": "rich"})
    # outside the schema's bounds: refused at once, naming the column's range
    with pytest.raises(ConditionError, match=r"'age'.*impossible.*\[17.0, 90.0\]"):
        fitted.sample(10, conditions={"age": (200, 300)}, max_tries=3)
    # possible but rare for this barely trained model: rejection gives up
    with pytest.raises(ConditionError, match="too rare"):
        fitted.sample(
            10_000, seed=0, conditions={"age": (90, 90), "workclass": "Federal-gov"}, max_tries=1
        )


def test_mixed_kinds_end_to_end(mixed_frame):
    model = sg.TVAE(epochs=3, batch_size=100, seed=0, device="cpu").fit(mixed_frame)
    synthetic = model.sample(300, seed=0)
    assert synthetic.dtypes.equals(mixed_frame.dtypes)
    assert synthetic["user_id"].is_unique
    assert (
        synthetic["joined"].between(mixed_frame["joined"].min(), mixed_frame["joined"].max()).all()
    )
    assert synthetic["score"].isna().any()


def test_early_stopping_restores_best_epoch(adult_small, monkeypatch):
    """Scripted validation losses: best at epoch 3, patience 2, so training stops at 5
    and the weights of epoch 3 are the ones kept."""
    model = sg.TVAE(
        epochs=40,
        batch_size=500,
        seed=0,
        device="cpu",
        validation_fraction=0.2,
        early_stopping_patience=2,
    )
    script = iter([5.0, 4.0, 3.0, 3.5, 3.6, 1.0, 1.0])
    snapshots = []

    def scripted(data):
        snapshots.append({k: v.clone() for k, v in model.decoder_.state_dict().items()})
        return next(script)

    monkeypatch.setattr(model, "_validation_loss", scripted)
    log = model.fit(adult_small).training_log
    assert [e["val_loss"] for e in log.epochs] == [5.0, 4.0, 3.0, 3.5, 3.6]
    assert log.stopped_early and log.best_epoch == 3
    for key, value in model.decoder_.state_dict().items():
        assert torch.equal(value, snapshots[2][key]), key
    assert not torch.equal(
        model.decoder_.state_dict()["body.1.weight"], snapshots[4]["body.1.weight"]
    )


def test_checkpoint_and_resume_match_a_straight_run(adult_small, tmp_path):
    kwargs = dict(batch_size=256, seed=5, device="cpu")
    straight = sg.TVAE(epochs=4, **kwargs).fit(adult_small)
    first = sg.TVAE(epochs=2, checkpoint_dir=str(tmp_path), checkpoint_every=1, **kwargs)
    first.fit(adult_small)
    resumed = sg.TVAE(epochs=4, checkpoint_dir=str(tmp_path), checkpoint_every=1, **kwargs)
    resumed.fit(adult_small, resume=True)
    assert [e["epoch"] for e in resumed.training_log.epochs] == [1, 2, 3, 4]
    for key, value in straight.encoder_.state_dict().items():
        torch.testing.assert_close(value, resumed.encoder_.state_dict()[key])


def test_resume_without_checkpoint_is_an_error(adult_small, tmp_path):
    model = sg.TVAE(epochs=1, checkpoint_dir=str(tmp_path), device="cpu")
    with pytest.raises(ConfigError, match="no checkpoint"):
        model.fit(adult_small, resume=True)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"device": "tpu"}, "device"),
        ({"validation_fraction": 0.9}, "validation_fraction"),
        ({"early_stopping_patience": 3}, "validation split"),
        ({"compress_dims": ()}, "compress_dims"),
        ({"dp": object()}, "dp"),
        ({"precision": "fp8"}, "precision='fp8'.*float32"),
    ],
)
def test_bad_parameters(kwargs, match, adult_small):
    with pytest.raises(ConfigError, match=match):
        sg.TVAE(**kwargs).fit(adult_small.head(50))


def test_cuda_request_without_gpu_is_clear(adult_small):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the CUDA path is exercised by the device benchmark")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        sg.TVAE(epochs=1, device="cuda").fit(adult_small.head(50))


def test_bad_data(adult_small):
    with pytest.raises(ConfigError, match="at least 2 rows"):
        sg.TVAE(epochs=1).fit(adult_small.head(1))
    with pytest.raises(DataError, match="no rows"):
        sg.TVAE(epochs=1).fit(adult_small.head(0))
    inf = adult_small.head(50).astype({"age": float})
    inf.loc[3, "age"] = np.inf
    with pytest.raises(DataError, match="'age'.*infinite"):
        sg.TVAE(epochs=1).fit(inf)
    with pytest.raises(NotFittedError):
        sg.TVAE().sample(5)
    model = sg.TVAE(epochs=1, device="cpu").fit(adult_small.head(100))
    with pytest.raises(ConfigError, match="n=-1"):
        model.sample(-1)
    assert len(model.sample(0)) == 0


def test_one_row_per_batch_edge_and_tiny_frames():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
    synthetic = sg.TVAE(epochs=2, batch_size=2, device="cpu").fit(frame).sample(10)
    assert set(synthetic["c"]) <= {"a", "b"} and synthetic["x"].between(1, 3).all()


def test_time_budget_stops_training_and_bad_budgets_are_refused(adult_small):
    # a budget spent before the first epoch ends: exactly one epoch runs
    model = sg.TVAE(epochs=10_000, max_training_time=1e-9, device="cpu", seed=0)
    log = model.fit(adult_small).training_log
    assert log.stopped_early and len(log.epochs) == 1
    for bad in (0, -5.0, float("nan")):
        with pytest.raises(ConfigError, match="max_training_time"):
            sg.TVAE(max_training_time=bad).fit(adult_small)


def _fused_and_autograd_gradients(model, frame, rows=300):
    """Gradients of one batch by the fused step and by autograd on ``_negative_elbo``."""
    x = model.transformer_.encode(frame)[:rows]
    noise = torch.randn(len(x), model.embedding_dim, generator=torch.Generator().manual_seed(3))
    loss, kl, fused = model.fused_step_(model.heads_.pad_rows(x), noise, model.loss_factor)
    params = list(model.encoder_.parameters()) + list(model.decoder_.parameters())
    for param in params:
        param.grad = None
    reconstruction, kl_rows = model._negative_elbo(x, True, noise)
    reference = (model.loss_factor * reconstruction + kl_rows).mean()
    reference.backward()
    return loss, kl, fused, reference.detach(), kl_rows.mean().detach(), params


@pytest.mark.parametrize(
    ("frame_name", "dims"),
    [("adult_small", (128, 128)), ("mixed_frame", (64,)), ("categorical", (32, 16, 8))],
)
def test_fused_step_equals_autograd_on_the_reference_loss(frame_name, dims, request):
    """The hand-derived backward pass is the gradient of the model's own loss."""
    if frame_name == "categorical":  # no continuous outputs at all
        rng = np.random.default_rng(1)
        frame = pd.DataFrame(
            {"a": rng.choice(list("xyz"), 400), "b": rng.choice(["u", "v", None], 400)}
        )
    else:
        frame = request.getfixturevalue(frame_name)
    model = sg.TVAE(
        epochs=2,
        batch_size=100,
        seed=0,
        device="cpu",
        compress_dims=dims,
        decompress_dims=dims,
        precision="float32",
    ).fit(frame)
    assert model.heads_.complete
    loss, kl, fused, reference, kl_reference, params = _fused_and_autograd_gradients(model, frame)
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kl, kl_reference, rtol=1e-4, atol=1e-5)  # float32 sums
    for param in params:
        if param.numel():
            scale = float(param.grad.abs().max()) + 1e-6
            torch.testing.assert_close(fused[param] / scale, param.grad / scale, rtol=0, atol=1e-5)


def test_fused_step_trains_like_autograd(adult_small):
    """Several Adam steps with fused gradients land where autograd's would."""
    options = {"epochs": 3, "batch_size": 250, "seed": 0, "device": "cpu", "precision": "float32"}
    fused = sg.TVAE(**options).fit(adult_small)
    plain = sg.TVAE(**options)
    original = sg.TVAE._build

    def build_without_fused(self, layout, data):
        original(self, layout, data)
        self.heads_.complete = False  # force the autograd path

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sg.TVAE, "_build", build_without_fused)
        plain.fit(adult_small)
    for a, b in zip(fused.decoder_.parameters(), plain.decoder_.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
    assert fused.training_log.epochs[-1]["loss"] == pytest.approx(
        plain.training_log.epochs[-1]["loss"], rel=1e-4
    )


def test_bfloat16_step_stays_close_to_the_float32_gradient(adult_small):
    """bfloat16 products (float32 loss, heads and gradients) keep every gradient pointing
    where the exact one points: a few percent of rounding error (sums of 100 rows with
    cancelling signs amplify bfloat16's 0.4%), far below a mini-batch's own noise."""
    model = sg.TVAE(epochs=2, batch_size=100, seed=0, device="cpu", precision="bfloat16")
    model.fit(adult_small)
    assert model.fused_step_.compute_dtype == torch.bfloat16
    loss, _, fused, reference, _, params = _fused_and_autograd_gradients(model, adult_small)
    torch.testing.assert_close(loss, reference, rtol=5e-3, atol=0)
    for param in params:
        assert fused[param].dtype == torch.float32
        error = float((fused[param] - param.grad).norm() / (param.grad.norm() + 1e-12))
        cosine = torch.nn.functional.cosine_similarity(
            fused[param].flatten(), param.grad.flatten(), dim=0
        )
        assert error < 0.1 and float(cosine) > 0.995, (tuple(param.shape), error)


def test_precision_auto_follows_the_hardware(monkeypatch):
    from synthgen import training

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert training.resolve_precision("auto", cuda) == torch.float32
    assert training.resolve_precision("float32", cpu) == torch.float32
    assert training.resolve_precision("bfloat16", cpu) == torch.bfloat16
    monkeypatch.setattr(training, "native_bfloat16_cpu", lambda: False)
    assert training.resolve_precision("auto", cpu) == torch.float32
    monkeypatch.setattr(training, "native_bfloat16_cpu", lambda: True)
    assert training.resolve_precision("auto", cpu) == torch.bfloat16

"""Training under ``dp=``: every backend, honest totals, DP-only preprocessing, refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from opacus.accountants import RDPAccountant

import synthgen as sg
from privacy import DPConfig, PrivacySpent
from synthgen.errors import ConfigError, SynthgenError

#: Small, fast settings per backend (the DP path is what is tested, not quality).
SETTINGS = {
    "TVAE": dict(epochs=2, batch_size=100, compress_dims=(32,), decompress_dims=(32,)),
    "CTGAN": dict(epochs=2, batch_size=100, pac=1, generator_dims=(32,), discriminator_dims=(32,)),
    "TabDDPM": dict(steps=6, batch_size=100, hidden=(32, 32), num_timesteps=20),
    "TabularAR": dict(epochs=2, batch_size=100, hidden_dim=16),
}


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    df = sg.datasets.load("adult").sample(800, random_state=0).reset_index(drop=True)
    return df[["age", "workclass", "education", "hours-per-week", "sex", "income"]]


def _model(name: str, **extra):
    return getattr(sg, name)(seed=0, progress=False, **{**SETTINGS[name], **extra})


@pytest.fixture(scope="module", params=sorted(SETTINGS))
def fitted(request, adult):
    model = _model(request.param, dp=DPConfig(epsilon=1.0)).fit(adult)
    return request.param, model


def test_total_epsilon_is_within_the_target_and_delta_below_one_over_n(fitted, adult):
    _, model = fitted
    spent = model.privacy_spent
    assert isinstance(spent, PrivacySpent)
    n = len(adult)
    assert spent.epsilon <= 1.0
    assert spent.delta < 1 / n
    assert spent.delta == pytest.approx(1 / n**1.5)
    assert spent.delta_source.startswith("default")
    # nothing in this schema is declared public: part of the budget paid for the statistics
    assert spent.preprocessing_epsilon == pytest.approx(0.5)
    assert spent.epsilon == pytest.approx(spent.preprocessing_epsilon + spent.training_epsilon)
    assert spent.steps > 0 and 0 < spent.sample_rate <= 1


def test_training_epsilon_is_opacus_rdp_for_the_steps_that_ran(fitted):
    _, model = fitted
    spent = model.privacy_spent
    reference = RDPAccountant()
    reference.history = [(spent.noise_multiplier, spent.sample_rate, spent.steps)]
    assert spent.training_epsilon == pytest.approx(
        reference.get_epsilon(spent.training_delta), rel=1e-9
    )


def test_a_dp_model_samples_the_training_columns(fitted, adult):
    _, model = fitted
    syn = model.sample(200, seed=1)
    assert list(syn.columns) == list(adult.columns)
    assert len(syn) == 200


def test_dp_models_keep_their_receipt_through_save_and_load(fitted, tmp_path):
    name, model = fitted
    path = tmp_path / f"{name}.synth"
    model.save(str(path))
    loaded = sg.load_model(str(path))
    assert loaded.privacy_spent == model.privacy_spent
    pd.testing.assert_frame_equal(loaded.sample(50, seed=3), model.sample(50, seed=3))


def test_losses_computed_on_raw_rows_are_not_logged_under_dp(fitted):
    _, model = fitted
    for epoch in model.training_log.epochs:
        assert set(epoch) == {"epoch", "seconds"}


@pytest.mark.parametrize("name", ["TVAE", "TabularAR"])
def test_the_same_seed_gives_the_same_dp_model(name, adult):
    a = _model(name, dp=DPConfig(epsilon=2.0)).fit(adult)
    b = _model(name, dp=DPConfig(epsilon=2.0)).fit(adult)
    for (ka, va), (kb, vb) in zip(
        a._weights_copy().items(), b._weights_copy().items(), strict=True
    ):
        assert ka == kb
        for key in va:
            torch.testing.assert_close(va[key], vb[key], rtol=0, atol=0)
    pd.testing.assert_frame_equal(a.sample(100, seed=1), b.sample(100, seed=1))


def test_a_category_seen_once_is_never_learned_or_generated(adult):
    frame = adult.copy()
    frame.loc[5, "workclass"] = "Secret-Agency"
    model = _model("TVAE", dp=DPConfig(epsilon=5.0)).fit(frame)
    assert "Secret-Agency" not in (model.schema["workclass"].categories or [])
    assert "Secret-Agency" not in set(model.sample(2000, seed=0)["workclass"].dropna())


def test_public_domains_cost_nothing_and_are_kept(adult):
    schema = sg.Schema.infer(adult)
    for spec in schema:
        spec.public = True  # declared from a data dictionary, not read from these rows
    schema["age"].min, schema["age"].max = 0, 120
    schema["hours-per-week"].min, schema["hours-per-week"].max = 0, 168
    model = _model("TVAE", dp=DPConfig(epsilon=1.0)).fit(adult, schema=schema)
    spent = model.privacy_spent
    assert spent.preprocessing_epsilon == 0 and spent.preprocessing_delta == 0
    assert spent.training_epsilon == spent.epsilon <= 1.0
    assert model.schema["education"].categories == schema["education"].categories
    assert (model.schema["age"].min, model.schema["age"].max) == (0, 120)


def test_no_public_domain_and_no_preprocessing_budget_names_the_column(adult):
    schema = sg.Schema.infer(adult)
    for spec in schema:
        spec.public = spec.name != "education"
    schema["age"].min, schema["age"].max = 0, 120
    schema["hours-per-week"].min, schema["hours-per-week"].max = 0, 168
    model = _model("TVAE", dp=DPConfig(epsilon=1.0, preprocessing_epsilon=0.0))
    with pytest.raises(SynthgenError, match="education"):
        model.fit(adult, schema=schema)


def test_dp_refuses_packs_and_foreign_configs(adult):
    with pytest.raises(ConfigError, match="pac=1"):
        sg.CTGAN(epochs=1, pac=10, dp=DPConfig(epsilon=1.0)).fit(adult)
    with pytest.raises(ConfigError, match="DPConfig"):
        sg.TVAE(epochs=1, dp={"epsilon": 1.0}).fit(adult)
    with pytest.raises(ConfigError):
        DPConfig(epsilon=-1.0)


def test_validation_and_early_stopping_are_off_under_dp_and_say_so(adult):
    model = _model("TabularAR", dp=DPConfig(epsilon=1.0)).fit(adult)
    assert any("no validation split" in note for note in model.training_log.notes)
    assert not model.training_log.stopped_early


def test_the_ctgan_generator_never_receives_real_rows(adult, monkeypatch):
    model = _model("CTGAN", dp=DPConfig(epsilon=1.0))
    seen = []
    original = type(model)._generator_loss

    def spy(self, batch):
        seen.append(bool(torch.count_nonzero(batch)))
        return original(self, batch)

    monkeypatch.setattr(type(model), "_generator_loss", spy)
    model.fit(adult)
    assert seen and not any(seen)


def test_a_larger_epsilon_means_less_noise(adult):
    low = _model("TVAE", dp=DPConfig(epsilon=0.5)).fit(adult).privacy_spent
    high = _model("TVAE", dp=DPConfig(epsilon=8.0)).fit(adult).privacy_spent
    assert high.noise_multiplier < low.noise_multiplier
    assert np.isclose(high.steps, low.steps)


def test_cli_fit_with_epsilon_prints_and_saves_the_receipt(tmp_path, adult):
    from typer.testing import CliRunner

    from pipelines.cli import app

    data, model_path = tmp_path / "train.csv", tmp_path / "dp.synth"
    adult.to_csv(data, index=False)
    runner = CliRunner()
    args = ["fit", str(data), "--backend", "ctgan", "--epochs", "1", "--batch-size", "100"]
    result = runner.invoke(app, [*args, "--epsilon", "2", "--out", str(model_path)])
    assert result.exit_code == 0, result.output
    assert "differential privacy: epsilon" in result.output
    spent = sg.load_model(str(model_path)).privacy_spent
    assert spent is not None and spent.epsilon <= 2.0
    result = runner.invoke(app, ["fit", str(data), "--delta", "1e-6", "--out", str(model_path)])
    assert result.exit_code == 2 and "--epsilon" in result.output
    syn, report = tmp_path / "syn.csv", tmp_path / "report.json"
    sg.load_model(str(model_path)).sample(300, seed=0).to_csv(syn, index=False)
    args = ["evaluate", "--real", str(data), "--synthetic", str(syn), "--metrics", "fidelity"]
    result = runner.invoke(app, [*args, "--model", str(model_path), "--out", str(report)])
    assert result.exit_code == 0, result.output
    assert f"dp.epsilon: {spent.epsilon:.4f}" in result.output


def test_canary_audit_of_a_dp_model_stays_below_the_claim_and_reaches_the_report(adult):
    from evaluation import evaluate
    from privacy.audit import make_canaries, run_canary_audit

    rng = np.random.default_rng(0)
    canaries = make_canaries(adult, 60, rng)

    def fit(frame):
        return _model("TabularAR", dp=DPConfig(epsilon=1.0)).fit(frame)

    def score(model, rows):
        return model.log_prob(model.dp_release_.apply(rows))

    audit = run_canary_audit(
        adult, canaries, fit, score, rng, delta=1 / len(adult) ** 1.5, claimed_epsilon=1.0
    )
    assert audit.m == 60 and audit.guesses > 0
    assert audit.epsilon_lower_bound <= 1.0 and audit.consistent
    model = fit(adult)
    report = evaluate(
        real=adult,
        synthetic=model.sample(400, seed=0),
        metrics=["fidelity"],
        dp=model.privacy_spent,
        dp_audit=audit,
    )
    assert report.scores["dp.epsilon"] == model.privacy_spent.epsilon
    assert report.scores["dp.audit_epsilon_lower_bound"] == audit.epsilon_lower_bound
    assert "training_epsilon" in set(report.details["dp.accounting"]["field"])


def test_under_dp_a_plateau_schedule_is_off_and_the_rate_constant():
    from torch import nn

    from synthgen.backends.optimization import DPSettings, PlayerState
    from synthgen.backends.players import OptimizerSpec, Plateau, Player, RowLoss

    net = nn.Linear(3, 1)
    player = Player(
        name="p",
        modules=[net],
        optimizer=OptimizerSpec("adam", 0.1),
        loss=lambda batch: RowLoss(net(batch).squeeze(1)),
        schedule=Plateau(),
    )
    state = PlayerState(player, 4, None, DPSettings(1.0, 1.0, 8.0))
    assert state.plateau is None and not state.linear_decay
    for _ in range(3):
        state.update(torch.randn(8, 3), False, 0.0)
        state.end_epoch(123.0)
    assert state.optimizer.param_groups[0]["lr"] == 0.1

"""CTGAN: conditional vectors, training-by-sampling, eval-mode sampling, native conditions."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import synthgen as sg
from synthgen.errors import ConfigError


@pytest.fixture(scope="module")
def ctgan(adult_small):
    return sg.CTGAN(epochs=2, batch_size=200, seed=0, device="cpu").fit(adult_small)


def test_sample_shape_and_dtypes(ctgan, adult_small):
    synthetic = ctgan.sample(400, seed=1)
    assert list(synthetic.columns) == list(adult_small.columns)
    assert synthetic.dtypes.equals(adult_small.dtypes)
    assert synthetic["age"].between(17, 90).all()


def test_condition_bits_sit_at_each_columns_own_offset(ctgan):
    conds = ctgan.conditions_
    discrete = ctgan.schema.names_of("categorical", "boolean") + ["education-num"]
    assert sorted(conds.columns) == sorted(discrete)  # few-valued numbers are one-hot too
    widths = [span.width for span in conds.spans]
    for j in range(conds.n_columns):
        assert int(conds.offsets[j]) == sum(widths[:j])
        for k in range(widths[j]):
            vector = conds.vectors(torch.tensor([j]), torch.tensor([k]))[0]
            assert vector.sum() == 1 and int(vector.argmax()) == sum(widths[:j]) + k


def test_training_by_sampling_picks_rows_with_the_condition(ctgan):
    conds = ctgan.conditions_
    data = ctgan.train_data_  # stored in the padded layout
    position = ctgan.heads_.inverse
    for j, span in enumerate(conds.spans):
        for k in range(span.width):
            if conds.row_counts[int(conds.offsets[j]) + k] == 0:
                continue
            rows = conds.real_rows(torch.full((50,), j), torch.full((50,), k))
            assert torch.all(data[rows, position[span.start + k]] == 1), (span.column, k)


def test_padded_training_rows_hold_the_encoded_rows(ctgan, adult_small):
    heads = ctgan.heads_
    padded = ctgan.train_data_
    assert padded.shape == (len(adult_small), heads.width)
    assert float(padded[:, heads.keep == 0].abs().sum()) == 0.0  # padding slots are 0
    one_hot = padded[:, : heads.n_discrete]
    assert torch.all(one_hot.sum(dim=1) == ctgan.layout_.n_discrete)  # one hot slot per group
    back = padded[:, heads.inverse]
    assert torch.all(back[:, ctgan.layout_.discrete_mask.bool()].sum(1) == ctgan.layout_.n_discrete)


def test_condition_draws_follow_the_category_frequencies(ctgan):
    """Inverse-CDF draws: log-frequency while training, frequency when sampling."""
    conds = ctgan.conditions_
    generator = torch.Generator().manual_seed(0)
    for probs, training in ((conds.train_probs, True), (conds.data_probs, False)):
        column, category, _ = conds.draw(200_000, training=training, generator=generator)
        for j, span in enumerate(conds.spans):
            picked = category[column == j]
            assert int(picked.max()) < span.width  # never a padding slot
            observed = torch.bincount(picked, minlength=span.width).float() / len(picked)
            torch.testing.assert_close(observed, probs[j, : span.width], atol=0.012, rtol=0)


def test_training_conditions_use_log_frequency(ctgan, adult_small):
    conds = ctgan.conditions_
    j = conds.columns.index("income")
    counts = adult_small["income"].value_counts().sort_index().to_numpy()
    expected = torch.log(torch.tensor(counts, dtype=torch.float) + 1)
    expected = expected / expected.sum()
    torch.testing.assert_close(conds.train_probs[j, :2], expected)


def test_condition_loss_reads_the_conditioned_columns_logits(ctgan):
    conds = ctgan.conditions_
    j = conds.columns.index("sex")
    span = conds.spans[j]
    logits = torch.zeros(4, ctgan.heads_.width)  # padded layout, as in training
    logits[:, ctgan.heads_.inverse[span.start + 1]] = 50.0  # "second category" for 'sex'
    column = torch.full((4,), j)
    right = ctgan._condition_loss(logits, column, torch.full((4,), 1))
    wrong = ctgan._condition_loss(logits, column, torch.full((4,), 0))
    assert right < 1e-3 < wrong


def test_sampling_runs_batch_norm_in_eval_mode(ctgan, monkeypatch):
    modes = []
    original = ctgan.generator_.forward

    def spy(x):
        modes.append(ctgan.generator_.training)
        return original(x)

    monkeypatch.setattr(ctgan.generator_, "forward", spy)
    ctgan.generator_.train()  # even if left in train mode, sampling must switch to eval
    ctgan.sample(10, seed=0)
    assert modes and not any(modes)
    pd.testing.assert_frame_equal(ctgan.sample(50, seed=4), ctgan.sample(50, seed=4))


@pytest.mark.parametrize(
    "condition",
    [
        {"income": ">50K"},
        {"sex": "Female"},
        {"race": "Black"},
        {"native-country": "Mexico"},
        {"workclass": "Self-emp-inc", "income": "<=50K"},
        {"relationship": "Wife", "age": (30, 50)},
    ],
)
def test_native_conditions_hit_every_row(ctgan, condition):
    rows = ctgan.sample(300, conditions=condition, seed=5)
    assert len(rows) == 300
    for column, value in condition.items():
        if isinstance(value, tuple):
            assert rows[column].between(*value).all()
        else:
            assert (rows[column] == value).all()


def test_save_load_keeps_condition_frequencies(ctgan, tmp_path):
    path = tmp_path / "c.synth"
    ctgan.save(str(path))
    loaded = sg.load_model(str(path))
    torch.testing.assert_close(loaded.conditions_.data_probs, ctgan.conditions_.data_probs)
    pd.testing.assert_frame_equal(loaded.sample(200, seed=2), ctgan.sample(200, seed=2))
    rows = loaded.sample(20, conditions={"income": ">50K"}, seed=1)
    assert (rows["income"] == ">50K").all()


def test_same_seed_same_model(adult_small):
    a = sg.CTGAN(epochs=1, batch_size=100, seed=3, device="cpu").fit(adult_small.head(500))
    b = sg.CTGAN(epochs=1, batch_size=100, seed=3, device="cpu").fit(adult_small.head(500))
    pd.testing.assert_frame_equal(a.sample(100, seed=1), b.sample(100, seed=1))


def test_only_numerical_columns(mixed_frame):
    frame = mixed_frame[["age", "income"]]
    synthetic = sg.CTGAN(epochs=1, batch_size=100, device="cpu").fit(frame).sample(50)
    assert synthetic.dtypes.equals(frame.dtypes)


def test_bad_parameters(adult_small):
    with pytest.raises(ConfigError, match="multiple of pac"):
        sg.CTGAN(batch_size=105, pac=10).fit(adult_small)
    with pytest.raises(ConfigError, match="pac"):
        sg.CTGAN(pac=0).fit(adult_small)
    with pytest.raises(ConfigError, match="too few"):
        sg.CTGAN(epochs=1, batch_size=10, pac=10).fit(adult_small.head(5))


def _reference_critic_losses(critic, fake_in, real_in, mix, masks, penalty_weight, pac):
    """WGAN-GP critic objective by autograd through ``PacCritic.forward`` with given masks."""
    packs = fake_in.shape[0] // pac
    scores = critic(torch.cat([fake_in, real_in]), masks[0])
    loss = scores[:packs].mean() - scores[packs:].mean()
    mixed = torch.lerp(fake_in, real_in, mix).requires_grad_(True)
    (slope,) = torch.autograd.grad(critic(mixed, masks[1]).sum(), mixed, create_graph=True)
    penalty = penalty_weight * ((slope.reshape(packs, -1).norm(dim=1) - 1) ** 2).mean()
    return loss, penalty


def _critic_case(pac: int, rows: int, width: int, hidden: tuple[int, ...]):
    """A seeded critic, fake / real rows, per-pack penalty mix and dropout masks."""
    from synthgen.backends.ctgan import PacCritic
    from synthgen.backends.ctgan_critic import half_dropout_mask

    torch.manual_seed(0)
    critic = PacCritic(width, hidden, pac)
    fake_in, real_in = torch.randn(rows, width), torch.randn(rows, width)
    packs = rows // pac
    mix = torch.rand(packs, 1, 1).expand(packs, pac, 1).reshape(-1, 1)
    masks = (
        [half_dropout_mask(2 * packs, h, torch.device("cpu")) for h in hidden],
        [half_dropout_mask(packs, h, torch.device("cpu")) for h in hidden],
    )
    return critic, fake_in, real_in, mix, masks


@pytest.mark.parametrize("hidden", [(256, 256), (64,), (32, 16, 8)])
def test_fused_critic_gradients_equal_autograd(hidden):
    from synthgen.backends.ctgan_critic import FusedCritic

    pac, rows = 5, 40
    critic, fake_in, real_in, mix, masks = _critic_case(pac, rows, 12, hidden)
    fused = FusedCritic(critic, pac)
    loss, penalty, grads = fused.critic_gradients(fake_in, real_in, mix, 10.0, masks)
    ref_loss, ref_penalty = _reference_critic_losses(
        critic, fake_in, real_in, mix, masks, 10.0, pac
    )
    critic.zero_grad()
    (ref_loss + ref_penalty).backward()
    torch.testing.assert_close(loss, ref_loss.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(penalty, ref_penalty.detach(), rtol=1e-5, atol=1e-6)
    for name, param in critic.named_parameters():
        torch.testing.assert_close(grads[param], param.grad, rtol=1e-4, atol=1e-6, msg=name)

    # the generator's side: gradient of -mean(score) w.r.t. the rows, weights fixed
    rows_in = fake_in.clone().requires_grad_(True)
    g_loss, grad = fused.generator_gradient(rows_in.detach(), masks[1])
    reference = -critic(rows_in, masks[1]).mean()
    reference.backward()
    torch.testing.assert_close(g_loss, reference.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, rows_in.grad, rtol=1e-4, atol=1e-7)


def test_fused_critic_reads_slope_and_dropout_from_the_module():
    """Change the module's constants and the closed form follows (no copy of them)."""
    from synthgen.backends.ctgan import PacCritic
    from synthgen.backends.ctgan_critic import FusedCritic

    pac, rows, width = 2, 12, 5
    torch.manual_seed(0)
    critic = PacCritic(width, (16, 8), pac, leaky_slope=0.05, dropout=0.0).train()
    fused = FusedCritic(critic, pac)
    assert (fused.slope, fused.dropout) == (0.05, 0.0)
    fake_in, real_in = torch.randn(rows, width), torch.randn(rows, width)
    mix = torch.rand(rows // pac, 1, 1).expand(rows // pac, pac, 1).reshape(-1, 1)
    loss, penalty, grads = fused.critic_gradients(fake_in, real_in, mix, 10.0)
    ref_loss, ref_penalty = _reference_critic_losses(
        critic, fake_in, real_in, mix, (None, None), 10.0, pac
    )
    critic.zero_grad()
    (ref_loss + ref_penalty).backward()
    torch.testing.assert_close(loss, ref_loss.detach(), rtol=1e-5, atol=1e-6)
    for name, param in critic.named_parameters():
        torch.testing.assert_close(grads[param], param.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_bfloat16_critic_stays_close_to_the_exact_gradients():
    """bfloat16 products keep the critic's loss, penalty and gradients within bfloat16
    rounding (a few percent where sums cancel), and return float32 gradients."""
    from synthgen.backends.ctgan_critic import FusedCritic

    pac = 10
    critic, fake_in, real_in, mix, masks = _critic_case(pac, 200, 60, (256, 256))
    exact = FusedCritic(critic, pac)
    fast = FusedCritic(critic, pac, torch.bfloat16)
    loss, penalty, grads = exact.critic_gradients(fake_in, real_in, mix, 10.0, masks)
    loss16, penalty16, grads16 = fast.critic_gradients(fake_in, real_in, mix, 10.0, masks)
    assert abs(float(loss16 - loss)) < 0.02 * (abs(float(loss)) + 0.1)
    torch.testing.assert_close(penalty16, penalty, rtol=0.02, atol=1e-3)
    for name, param in critic.named_parameters():
        assert grads16[param].dtype == torch.float32
        if float(grads[param].norm()) < 1e-6:  # the score's bias: +-1/packs cancel exactly
            assert float(grads16[param].abs().max()) < 1e-6, name
            continue
        cosine = torch.nn.functional.cosine_similarity(
            grads16[param].flatten(), grads[param].flatten(), dim=0
        )
        assert float(cosine) > 0.995, name
    _, grad = exact.generator_gradient(fake_in, masks[1])
    _, grad16 = fast.generator_gradient(fake_in, masks[1])
    assert grad16.dtype == torch.float32
    cosine = torch.nn.functional.cosine_similarity(grad16.flatten(), grad.flatten(), dim=0)
    assert float(cosine) > 0.995


def test_half_dropout_masks_are_fair_independent_bits():
    from synthgen.backends.ctgan_critic import half_dropout_mask

    mask = half_dropout_mask(4000, 63, torch.device("cpu"), torch.Generator().manual_seed(1))
    assert set(mask.unique().tolist()) == {0.0, 2.0}  # inverted dropout scaling, like nn.Dropout
    kept = (mask > 0).float()
    assert abs(float(kept.mean()) - 0.5) < 0.005
    per_column = kept.mean(dim=0)  # every bit position of the random words is fair
    assert float((per_column - 0.5).abs().max()) < 0.04
    pair = (kept[:, :-1] * kept[:, 1:]).mean()  # neighbouring bits are independent
    assert abs(float(pair) - 0.25) < 0.01
    again = half_dropout_mask(4000, 63, torch.device("cpu"), torch.Generator().manual_seed(1))
    assert torch.equal(mask, again)

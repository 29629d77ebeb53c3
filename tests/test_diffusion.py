"""Diffusion building blocks: schedule, Gaussian and multinomial processes, denoiser."""

from __future__ import annotations

import pytest
import torch

from synthgen.diffusion import (
    GaussianDiffusion,
    MLPDenoiser,
    MultinomialDiffusion,
    NoiseSchedule,
    sinusoidal_embedding,
)
from synthgen.errors import ConfigError
from synthgen.transforms.columns import Span
from synthgen.transforms.layout import SpanLayout

# an encoded row: one continuous value, a 3-way group, a 2-way group, a 5-way group
SPANS = [
    Span("x", "alpha", 0, 1),
    Span("a", "category", 1, 3),
    Span("b", "null", 4, 2),
    Span("c", "category", 6, 5),
]


def _one_hot_rows(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    rows = torch.zeros(n, 11)
    rows[:, 0] = torch.randn(n, generator=g)
    for span in SPANS[1:]:
        pick = torch.randint(0, span.width, (n,), generator=g)
        rows[torch.arange(n), span.start + pick] = 1
    return rows


def test_cosine_schedule_goes_from_clean_to_noise():
    schedule = NoiseSchedule.cosine(1000)
    ab = schedule.alpha_bar
    assert ab[0] == 1.0 and ab[-1] < 1e-3
    assert torch.all(ab[1:] <= ab[:-1])
    assert schedule.num_steps == 1000


@pytest.mark.parametrize("count", [None, 1, 10, 999, 5000])
def test_sampling_steps_are_strided_and_end_at_zero(count):
    schedule = NoiseSchedule.cosine(1000)
    steps = schedule.sampling_steps(count)
    assert steps[0] == 1000 and steps[-1] == 0
    assert all(a > b for a, b in zip(steps, steps[1:], strict=False))
    expected = 1001 if count is None or count >= 1000 else count + 1
    assert len(steps) == expected


def test_schedule_rejects_bad_input():
    with pytest.raises(ConfigError):
        NoiseSchedule.cosine(0)
    with pytest.raises(ConfigError):
        NoiseSchedule(torch.tensor([0.5, 0.4]))
    with pytest.raises(ConfigError):
        NoiseSchedule.cosine(10).sampling_steps(0)


def test_gaussian_step_recovers_x0_from_the_true_noise():
    diffusion = GaussianDiffusion()
    x0 = torch.randn(64, 3).clamp(-3, 3)
    noise = torch.randn(64, 3)
    ab_t = torch.full((64, 1), 0.3)
    xt = diffusion.add_noise(x0, ab_t, noise)
    out = diffusion.step(xt, noise, 0.3, 1.0, None)  # s = 0: the posterior mean is x0
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=1e-5)


def test_multinomial_marginal_interpolates_between_data_and_uniform():
    layout = SpanLayout(SPANS, torch.device("cpu"))
    diffusion = MultinomialDiffusion(layout)
    rows = _one_hot_rows(32)
    groups = diffusion.split(rows)
    clean = diffusion.marginal(groups, torch.ones(32, 1, 1))
    for g, c in zip(groups, clean, strict=True):
        torch.testing.assert_close(c, g)
    noisy = diffusion.marginal(groups, torch.zeros(32, 1, 1))
    for p, bucket in zip(noisy, diffusion.buckets, strict=True):
        widths = (~bucket.pad).sum(dim=1).float()
        torch.testing.assert_close(p.sum(-1), torch.ones_like(p.sum(-1)))
        assert torch.all(p[:, bucket.pad] == 0)
        torch.testing.assert_close(p.max(-1).values, (1 / widths).expand(32, -1))


def test_multinomial_posterior_is_a_distribution_and_exact_at_step_one():
    layout = SpanLayout(SPANS, torch.device("cpu"))
    diffusion = MultinomialDiffusion(layout)
    x0 = diffusion.split(_one_hot_rows(16, seed=1))
    xt = diffusion.split(_one_hot_rows(16, seed=2))
    post = diffusion.posterior(xt, x0, torch.tensor(0.4), torch.tensor(0.7))
    for p, bucket in zip(post, diffusion.buckets, strict=True):
        torch.testing.assert_close(p.sum(-1), torch.ones_like(p.sum(-1)))
        assert torch.all(p[:, bucket.pad] == 0)
    # from t = 1 to s = 0 (alpha_bar_s = 1) the posterior is the clean data itself
    exact = diffusion.posterior(xt, x0, torch.tensor(0.99), torch.tensor(1.0))
    for p, g in zip(exact, x0, strict=True):
        torch.testing.assert_close(p, g)


def test_multinomial_loss_is_zero_for_a_perfect_prediction_and_positive_otherwise():
    layout = SpanLayout(SPANS, torch.device("cpu"))
    diffusion = MultinomialDiffusion(layout)
    rows = _one_hot_rows(16, seed=3)
    x0 = diffusion.split(rows)
    xt = diffusion.sample(diffusion.marginal(x0, torch.full((16, 1, 1), 0.5)))
    ab_t, ab_s = torch.full((16, 1, 1), 0.5), torch.full((16, 1, 1), 0.6)
    perfect = diffusion.split_logits(rows * 60.0)
    assert float(diffusion.loss(x0, xt, perfect, ab_t, ab_s).abs().max()) < 1e-4
    wrong = diffusion.split_logits((1 - rows) * 60.0)
    assert float(diffusion.loss(x0, xt, wrong, ab_t, ab_s).min()) > 1e-3


def test_multinomial_sampling_follows_the_probabilities_and_round_trips_rows():
    layout = SpanLayout(SPANS, torch.device("cpu"))
    diffusion = MultinomialDiffusion(layout)
    probs = diffusion.marginal(diffusion.split(_one_hot_rows(1)), torch.full((1, 1, 1), 0.5))
    probs = [p.expand(20000, -1, -1) for p in probs]
    g = torch.Generator().manual_seed(0)
    draws = diffusion.sample(probs, g)
    for d, p in zip(draws, probs, strict=True):
        torch.testing.assert_close(d.mean(0), p[0], atol=0.02, rtol=0)
    rows = _one_hot_rows(8)
    merged = diffusion.merge(rows.clone().zero_(), diffusion.split(rows))
    torch.testing.assert_close(merged[:, 1:], rows[:, 1:])


def test_denoiser_shapes_and_time_embedding():
    emb = sinusoidal_embedding(torch.tensor([0, 1, 500]), 9)
    assert emb.shape == (3, 9) and torch.isfinite(emb).all()
    assert not torch.allclose(emb[1], emb[2])
    net = MLPDenoiser(11, hidden=(16, 16), time_dim=8, num_classes=3)
    out = net(torch.randn(5, 11), torch.tensor([1, 2, 3, 4, 5]), torch.tensor([0, 1, 2, 0, 1]))
    assert out.shape == (5, 11)


# ---------------------------------------------------------------------- fast samplers
def _single_group(k: int) -> MultinomialDiffusion:
    return MultinomialDiffusion(SpanLayout([Span("c", "category", 0, k)], torch.device("cpu")))


def _posterior_matrix(
    diffusion: MultinomialDiffusion, k: int, p0: torch.Tensor, ab_t: float, ab_s: float
) -> torch.Tensor:
    """``M[i, j] = q(x_s = j | x_t = i, x_0 = p0)`` for one ``k``-way group (float64)."""
    xt = [torch.eye(k, dtype=torch.float64)[:, None, :]]
    x0 = [p0.to(torch.float64).expand(k, 1, k)]
    # (1, 1, 1)-shaped so float64 wins type promotion against the float32 group sizes
    ab = [torch.full((1, 1, 1), value, dtype=torch.float64) for value in (ab_t, ab_s)]
    post = diffusion.posterior(xt, x0, *ab)
    return post[0][:, 0, :]


@pytest.mark.parametrize("k", [2, 5])
@pytest.mark.parametrize("soft", [False, True])
def test_strided_multinomial_posterior_is_the_adjacent_posteriors_composed(k, soft):
    """q(x_s | x_t, x_0) for s < t equals q(x_{t-1} | x_t, x_0) ... q(x_s | x_{s+1}, x_0)."""
    ab = NoiseSchedule.cosine(40).alpha_bar
    diffusion = _single_group(k)
    g = torch.Generator().manual_seed(0)
    p0 = torch.eye(k, dtype=torch.float64)[1]
    if soft:  # composing needs p0 to sum to 1 in float64, not just in float32
        p0 = torch.softmax(torch.randn(k, generator=g, dtype=torch.float64) * 2, 0)
    for t, s in [(40, 0), (40, 25), (31, 7), (12, 11), (3, 0)]:
        composed = torch.eye(k, dtype=torch.float64)
        for step in range(t, s, -1):
            composed = composed @ _posterior_matrix(
                diffusion, k, p0, float(ab[step]), float(ab[step - 1])
            )
        direct = _posterior_matrix(diffusion, k, p0, float(ab[t]), float(ab[s]))
        torch.testing.assert_close(direct, composed, rtol=1e-9, atol=1e-12)


def test_strided_multinomial_posterior_at_stride_one_is_the_paper_formula():
    """Hoogeboom et al.'s adjacent-step posterior, written out: theta = (a_t x_t + (1-a_t)/K)
    * (ab_{t-1} x_0 + (1-ab_{t-1})/K), normalised."""
    ab = NoiseSchedule.cosine(20).alpha_bar
    layout = SpanLayout(SPANS, torch.device("cpu"))
    diffusion = MultinomialDiffusion(layout)
    x0 = diffusion.split(_one_hot_rows(16, seed=4))
    xt = diffusion.split(_one_hot_rows(16, seed=5))
    for t in (1, 7, 20):
        a_t, ab_prev = float(ab[t] / ab[t - 1]), float(ab[t - 1])
        got = diffusion.posterior(xt, x0, torch.tensor(float(ab[t])), torch.tensor(ab_prev))
        for p, g_t, g_0, bucket in zip(got, xt, x0, diffusion.buckets, strict=True):
            k = (~bucket.pad).sum(1).float()[None, :, None]
            theta = (a_t * g_t + (1 - a_t) / k) * (ab_prev * g_0 + (1 - ab_prev) / k)
            theta = theta.masked_fill(bucket.pad, 0.0)
            torch.testing.assert_close(p, theta / theta.sum(-1, keepdim=True))


def test_strided_multinomial_posterior_averages_to_the_marginal():
    """sum over x_t of q(x_t | x_0) q(x_s | x_t, x_0) = q(x_s | x_0), for a skip of 30 steps."""
    ab = NoiseSchedule.cosine(50).alpha_bar
    k, diffusion = 5, _single_group(5)
    p0 = torch.eye(k)[3]
    ab_t, ab_s = float(ab[45]), float(ab[15])
    q_t = ab_t * p0.double() + (1 - ab_t) / k
    q_s = ab_s * p0.double() + (1 - ab_s) / k
    torch.testing.assert_close(q_t @ _posterior_matrix(diffusion, k, p0, ab_t, ab_s), q_s)


def test_ddim_with_eta_one_is_the_ddpm_posterior_at_every_step():
    schedule = NoiseSchedule.cosine(100)
    diffusion = GaussianDiffusion()
    g = torch.Generator().manual_seed(0)
    xt, predicted = torch.randn(32, 4, generator=g), torch.randn(32, 4, generator=g)
    steps = schedule.sampling_steps(None)
    for t, s in zip(steps[:-1], steps[1:], strict=True):
        ab_t, ab_s = float(schedule.alpha_bar[t]), float(schedule.alpha_bar[s])
        x0 = diffusion.estimate_x0(xt, predicted, ab_t)
        _, variance = diffusion.posterior(xt, x0, ab_t, ab_s)
        assert diffusion.ddim_sigma(ab_t, ab_s, 1.0) ** 2 == pytest.approx(variance, rel=1e-9)
        ddpm = diffusion.step(xt, predicted, ab_t, ab_s, torch.Generator().manual_seed(t))
        ddim = diffusion.ddim_step(xt, predicted, ab_t, ab_s, 1.0, torch.Generator().manual_seed(t))
        torch.testing.assert_close(ddim, ddpm, rtol=1e-4, atol=1e-4)
    # strided too: one jump of 40 steps has the skip-step posterior's mean and variance
    ab_t, ab_s = float(schedule.alpha_bar[70]), float(schedule.alpha_bar[30])
    mean, variance = diffusion.posterior(xt, diffusion.estimate_x0(xt, predicted, ab_t), ab_t, ab_s)
    zero_noise = diffusion.ddim_step(xt, predicted, ab_t, ab_s, 0.0, None)
    eta_one = diffusion.ddim_step(xt, predicted, ab_t, ab_s, 1.0, torch.Generator().manual_seed(1))
    noise = torch.randn(xt.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(eta_one, mean + variance**0.5 * noise, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(zero_noise, eta_one)


def test_deterministic_ddim_with_the_true_noise_follows_the_forward_process():
    """eta = 0 keeps the noise direction: x_s = sqrt(ab_s) x_0 + sqrt(1 - ab_s) eps."""
    diffusion = GaussianDiffusion()
    x0 = torch.randn(64, 3).clamp(-3, 3)
    eps = torch.randn(64, 3)
    ab_t, ab_s = 0.2, 0.7
    xt = diffusion.add_noise(x0, torch.tensor(ab_t), eps)
    expected = diffusion.add_noise(x0, torch.tensor(ab_s), eps)
    got = diffusion.ddim_step(xt, eps, ab_t, ab_s, 0.0, None)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # no random numbers are drawn at eta = 0
    g = torch.Generator().manual_seed(3)
    diffusion.ddim_step(xt, eps, ab_t, ab_s, 0.0, g)
    assert torch.equal(
        torch.rand(2, generator=g), torch.rand(2, generator=torch.Generator().manual_seed(3))
    )


def test_reverse_weights_are_the_posterior_up_to_a_factor():
    """The fused sampler weights, normalised, are posterior(x_t, softmax(logits))."""
    from synthgen.transforms.layout import PaddedHeads

    layout = SpanLayout(SPANS, torch.device("cpu"))
    diffusion = MultinomialDiffusion(layout)
    heads = PaddedHeads(layout, torch.device("cpu"))
    g = torch.Generator().manual_seed(6)
    xt_rows = _one_hot_rows(32, seed=7)
    logits = torch.randn(32, 11, generator=g) * 3
    expected = diffusion.posterior(
        diffusion.split(xt_rows), diffusion.predicted_x0(diffusion.split_logits(logits)), 0.3, 0.8
    )
    # the sampler's inputs: views of padded rows, padding logits at PAD_LOGIT
    padded_logits = heads.pad_rows(logits) + heads.pad_bias
    got = diffusion.reverse_weights(
        diffusion.blocks(heads.pad_rows(xt_rows), heads),
        diffusion.blocks(padded_logits, heads),
        0.3,
        0.8,
    )
    for w, p, bucket in zip(got, expected, diffusion.buckets, strict=True):
        assert torch.all(w[:, bucket.pad] == 0) and torch.all(w[:, ~bucket.pad] > 0)
        torch.testing.assert_close(w / w.sum(-1, keepdim=True), p)
    # at s = 0 the weights are q(x_0 | x_t) with the predicted x_0 as prior
    final = diffusion.reverse_weights(
        diffusion.split(xt_rows), diffusion.split_logits(logits), 0.97, 1.0
    )
    exact = diffusion.posterior(
        diffusion.split(xt_rows), diffusion.predicted_x0(diffusion.split_logits(logits)), 0.97, 1.0
    )
    for w, p in zip(final, exact, strict=True):
        torch.testing.assert_close(w / w.sum(-1, keepdim=True), p)


def test_inverse_cdf_draws_follow_the_weights_and_skip_zero_weights(monkeypatch):
    weights = torch.tensor([[[0.0, 2.0, 0.0, 1.0, 1.0, 0.0, 0.0]]]).expand(40_000, 1, 7)
    drawn = MultinomialDiffusion.draw([weights], torch.Generator().manual_seed(0))[0]
    assert torch.all(drawn.sum(-1) == 1)
    frequencies = drawn.mean(dim=(0, 1))
    assert torch.all(frequencies[[0, 2, 5, 6]] == 0)
    torch.testing.assert_close(
        frequencies[[1, 3, 4]], torch.tensor([0.5, 0.25, 0.25]), atol=0.01, rtol=0
    )
    # written in place into the views it is given
    target = torch.full((40_000, 1, 7), 9.0)
    MultinomialDiffusion.draw([weights], torch.Generator().manual_seed(0), [target])
    assert torch.equal(target, drawn)
    # the largest uniform torch.rand returns (1 - 2^-24), at totals that are powers of
    # two and not: still the last category with weight, never the padding after it
    largest = 1 - 2**-24
    monkeypatch.setattr(torch, "rand", lambda shape, **kw: torch.full(shape, largest))
    for total in (1.0, 3.0, 4.0, 1e-30, 7e20):
        edge = torch.tensor([[[total / 2, 0.0, total / 2, 0.0, 0.0]]])
        assert MultinomialDiffusion.draw([edge])[0].tolist() == [[[0, 0, 1, 0, 0]]]


def test_padded_denoiser_is_the_network_in_padded_order():
    from synthgen.diffusion import PaddedDenoiser
    from synthgen.transforms.layout import PaddedHeads

    torch.manual_seed(0)
    layout = SpanLayout(SPANS, torch.device("cpu"))
    heads = PaddedHeads(layout, torch.device("cpu"))
    net = MLPDenoiser(11, hidden=(32, 32), time_dim=16, num_classes=3, dropout=0.1).eval()
    rows, y = _one_hot_rows(9, seed=8), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    expected = heads.pad_rows(net(rows, torch.full((9,), 40), y))
    got = PaddedDenoiser(net, heads)(heads.pad_rows(rows), 40, y)
    keep = heads.keep.bool()
    torch.testing.assert_close(got[:, keep], expected[:, keep], rtol=1e-5, atol=1e-5)
    assert torch.all(got[:, ~keep] < -1e8)  # padding logits: softmax gives exactly 0
    rough = PaddedDenoiser(net, heads, torch.bfloat16)(heads.pad_rows(rows), 40, y)
    assert rough.dtype == torch.float32
    torch.testing.assert_close(rough[:, keep], expected[:, keep], rtol=0.05, atol=0.05)


def test_fused_linear_relu_equals_the_plain_pair():
    from synthgen.diffusion.denoiser import linear_relu

    g = torch.Generator().manual_seed(2)
    h, w, b = torch.randn(64, 32, generator=g), torch.randn(16, 32, generator=g), torch.randn(16)
    expected = torch.nn.functional.linear(h, w, b).relu()
    torch.testing.assert_close(linear_relu(h, w, b), expected, rtol=1e-5, atol=1e-5)
    rough = linear_relu(h.bfloat16(), w.bfloat16(), b.bfloat16())
    plain = torch.nn.functional.linear(h.bfloat16(), w.bfloat16(), b.bfloat16()).relu()
    assert rough.dtype == torch.bfloat16
    torch.testing.assert_close(rough.float(), plain.float(), rtol=0.02, atol=0.05)

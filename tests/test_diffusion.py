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

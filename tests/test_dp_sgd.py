"""DP-SGD's step: torch.func per-sample gradients equal opacus', clipping and noise are opacus'."""

from __future__ import annotations

import pytest
import torch
from opacus import GradSampleModule
from torch import nn

from privacy.dp_sgd import DPSGDStep, PerSampleGradients, poisson_indices
from synthgen.core.errors import ConfigError


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 3))


def _row_loss(model: nn.Module):
    def loss(x: torch.Tensor) -> torch.Tensor:
        return model(x).square().sum(dim=1)

    return loss


def test_per_sample_gradients_equal_opacus_grad_sample_module():
    model = _model()
    x = torch.randn(7, 5)
    ours, values = PerSampleGradients([model], _row_loss(model))(x)
    reference = GradSampleModule(_model(), loss_reduction="sum")
    reference(x).square().sum().backward()
    theirs = [p.grad_sample for p in reference.parameters()]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(values, model(x).square().sum(dim=1).detach())


def _manual_update(model: nn.Module, x: torch.Tensor, clip: float, expected: float, lr: float):
    """SGD with per-sample clipping written out by hand (no noise)."""
    grads = []
    for row in x:
        model.zero_grad()
        model(row[None]).square().sum().backward()
        grads.append([p.grad.detach().clone() for p in model.parameters()])
    total = [torch.zeros_like(p) for p in model.parameters()]
    for g in grads:
        norm = torch.sqrt(sum(t.square().sum() for t in g))
        factor = min(1.0, clip / (float(norm) + 1e-6))
        for acc, t in zip(total, g, strict=True):
            acc += factor * t
    with torch.no_grad():
        for p, acc in zip(model.parameters(), total, strict=True):
            p -= lr * acc / expected
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("chunk", [None, 2, 1])
def test_step_clips_each_row_sums_and_divides_by_the_expected_batch(chunk):
    x = torch.randn(6, 5) * 3
    model = _model()
    per_sample = PerSampleGradients([model], _row_loss(model))
    optimizer = torch.optim.SGD(per_sample.params, lr=0.1)
    step = DPSGDStep(per_sample, optimizer, 0.0, 0.5, expected_batch_size=4.0, chunk_rows=chunk)
    step.step(x)
    expected = _manual_update(_model(), x, clip=0.5, expected=4.0, lr=0.1)
    for p, e in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.detach(), e, rtol=1e-5, atol=1e-6)


def test_noise_has_the_multiplier_times_the_clip_over_the_expected_batch():
    model = nn.Linear(200, 50, bias=False)
    nn.init.zeros_(model.weight)
    per_sample = PerSampleGradients([model], lambda x: model(x).sum(dim=1) * 0)
    optimizer = torch.optim.SGD(per_sample.params, lr=1.0)
    step = DPSGDStep(per_sample, optimizer, 2.0, 0.5, expected_batch_size=10.0)
    torch.manual_seed(1)
    step.step(torch.randn(3, 200))
    # zero gradients: the update is -lr * noise / expected, noise std = 2.0 * 0.5
    std = float(model.weight.detach().std())
    assert std == pytest.approx(2.0 * 0.5 / 10.0, rel=0.05)


def test_an_empty_batch_still_steps_with_noise_only():
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    per_sample = PerSampleGradients([model], _row_loss(model))
    step = DPSGDStep(per_sample, torch.optim.SGD(per_sample.params, lr=0.1), 1.0, 1.0, 4.0)
    step.step(torch.zeros(0, 5))
    moved = [
        not torch.equal(a, p.detach()) for a, p in zip(before, model.parameters(), strict=True)
    ]
    assert all(moved)  # noise reached every parameter


def test_poisson_indices_include_rows_independently():
    generator = torch.Generator().manual_seed(0)
    sizes = [len(poisson_indices(1000, 0.05, generator, torch.device("cpu"))) for _ in range(200)]
    mean = sum(sizes) / len(sizes)
    assert 45 < mean < 55
    assert len(set(sizes)) > 5  # the batch size varies, as Poisson sampling does
    with pytest.raises(ConfigError):
        poisson_indices(10, 0.0, generator, torch.device("cpu"))


def _tabular_ar_player():
    import synthgen as sg
    from privacy import DPConfig

    df = sg.datasets.load("adult").sample(400, random_state=0).reset_index(drop=True)
    model = sg.TabularAR(epochs=1, seed=0, progress=False, hidden_dim=16, dp=DPConfig(3.0))
    model.fit(df)
    rows = model.transformer_.encode(model.dp_release_.apply(df)).to(model.device_)[:48]
    return model, model._players()[0], rows


def test_ghost_norms_equal_the_norms_of_per_sample_gradients():
    from privacy.dp_sgd import ghost_norms

    model, player, rows = _tabular_ar_player()
    ranks = model._ranks(len(rows))
    taps: list = []
    values = model._nll(rows, ranks, taps)
    grads = torch.autograd.grad(values.sum(), [t.output for t in taps])
    ghost = ghost_norms(taps, grads)
    per_sample, _ = PerSampleGradients(player.modules, lambda r, k: model._nll(r, k))(rows, ranks)
    exact = torch.sqrt(sum(g.reshape(len(rows), -1).square().sum(1) for g in per_sample))
    torch.testing.assert_close(ghost, exact, rtol=1e-4, atol=1e-6)


def test_ghost_clipping_step_equals_torch_func_plus_opacus_without_noise():
    import copy

    from privacy.dp_sgd import GhostClippingStep

    model, player, rows = _tabular_ar_player()
    ranks = model._ranks(len(rows))
    twin = copy.deepcopy(model)
    a = model.network_
    per_sample = PerSampleGradients([a], lambda r, k: model._nll(r, k))
    DPSGDStep(per_sample, torch.optim.SGD(per_sample.params, lr=0.5), 0.0, 0.7, 40.0).step(
        rows, ranks
    )

    def loss(r, k):
        taps: list = []
        return twin._nll(r, k, taps), taps

    b = twin.network_
    params = list(b.parameters())
    GhostClippingStep(params, loss, torch.optim.SGD(params, lr=0.5), 0.0, 0.7, 40.0).step(
        rows, ranks
    )
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa.detach(), pb.detach(), rtol=1e-4, atol=1e-6)


class _Denoiser(nn.Module):
    """Linear + embedding layers as TabDDPM's denoiser uses them."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.label = nn.Embedding(4, 6)
        self.body = nn.Sequential(nn.Linear(6, 8), nn.SiLU(), nn.Linear(8, 6))
        self.head = nn.Linear(6, 2, bias=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x + self.label(y))).square().sum(dim=1)


def test_collected_taps_give_the_per_sample_norms_of_linear_and_embedding_layers():
    from privacy.taps import collect_taps, ghost_norms

    net = _Denoiser()
    x, y = torch.randn(9, 6), torch.randint(0, 4, (9,))
    with collect_taps([net]) as taps:
        values = net(x, y)
    grads = torch.autograd.grad(values.sum(), [t.output for t in taps])
    per_sample, _ = PerSampleGradients([net], net)(x, y)
    exact = torch.sqrt(sum(g.reshape(9, -1).square().sum(1) for g in per_sample))
    torch.testing.assert_close(ghost_norms(taps, grads), exact, rtol=1e-4, atol=1e-6)


def test_tvae_ghost_step_equals_torch_func_plus_opacus_without_noise():
    import copy

    import synthgen as sg
    from privacy import DPConfig
    from privacy.dp_sgd import GhostClippingStep
    from privacy.taps import tapped_loss

    df = sg.datasets.load("adult").sample(300, random_state=0).reset_index(drop=True)
    model = sg.TVAE(epochs=1, seed=0, progress=False, compress_dims=(16,), decompress_dims=(16,))
    model.set_params(dp=DPConfig(3.0)).fit(df)
    rows = model.transformer_.encode(model.dp_release_.apply(df))[:32]
    noise = torch.randn(len(rows), model.embedding_dim)
    twin = copy.deepcopy(model)

    def elbo(m):
        def loss(x, e):
            reconstruction, kl = m._negative_elbo(x, True, e)
            return m.loss_factor * reconstruction + kl

        return loss

    modules = [model.encoder_, model.decoder_]
    per_sample = PerSampleGradients(modules, elbo(model))
    DPSGDStep(per_sample, torch.optim.SGD(per_sample.params, lr=0.3), 0.0, 0.8, 20.0).step(
        rows, noise
    )
    twins = [twin.encoder_, twin.decoder_]
    params = [p for m in twins for p in m.parameters()]
    step = GhostClippingStep(
        params, tapped_loss(twins, elbo(twin)), torch.optim.SGD(params, lr=0.3), 0.0, 0.8, 20.0
    )
    step.step(rows, noise)
    for a, b in zip(per_sample.params, params, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-4, atol=1e-6)


def test_ghost_clipping_refuses_taps_that_miss_a_parameter_or_share_a_weight():
    from privacy.dp_sgd import GhostClippingStep
    from privacy.taps import collect_taps, tapped_loss

    net = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    params = list(net.parameters())
    step = GhostClippingStep(
        params,
        tapped_loss([net], lambda x: net(x).sum(1)),
        torch.optim.SGD(params, lr=0.1),
        1.0,
        1.0,
        4.0,
    )
    with pytest.raises(RuntimeError, match="cover 2 of 4"):
        step.step(torch.randn(5, 4))
    shared = nn.Linear(4, 4)
    with pytest.raises(RuntimeError, match="2-D"), collect_taps([shared]):
        shared(torch.randn(2, 3, 4))


def test_ghost_noise_has_the_multiplier_times_the_clip_over_the_expected_batch():
    from privacy.dp_sgd import GhostClippingStep
    from privacy.taps import tapped_loss

    net = nn.Linear(300, 40, bias=False)
    nn.init.zeros_(net.weight)
    params = list(net.parameters())
    step = GhostClippingStep(
        params,
        tapped_loss([net], lambda x: net(x).sum(1) * 0),
        torch.optim.SGD(params, lr=1.0),
        2.0,
        0.5,
        10.0,
    )
    torch.manual_seed(2)
    step.step(torch.randn(3, 300))
    assert float(net.weight.detach().std()) == pytest.approx(0.1, rel=0.05)

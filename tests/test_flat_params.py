"""FlatParameters: Adam over one flat buffer equals torch's Adam over the separate tensors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from synthgen.backends.flat_params import FlatParameters


def _nets(seed: int) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    return (
        nn.Sequential(nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3)),
        nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)),
    )


@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
def test_flat_adam_equals_per_tensor_adam(weight_decay):
    reference = _nets(0)
    packed = _nets(0)
    ref_params = [p for m in reference for p in m.parameters()]
    ref_opt = torch.optim.Adam(ref_params, lr=1e-2, weight_decay=weight_decay, fused=True)
    flat = FlatParameters(packed)
    flat_opt = torch.optim.Adam([flat.parameter], lr=1e-2, weight_decay=weight_decay, fused=True)
    generator = torch.Generator().manual_seed(1)
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=generator) for p in ref_params]
        for p, g in zip(ref_params, grads, strict=True):
            p.grad = g.clone()
        ref_opt.step()
        flat.set_grads(dict(zip(flat.params, grads, strict=True)))
        flat_opt.step()
    for a, b in zip(ref_params, flat.params, strict=True):
        # same formula element by element; only the kernel's vector/tail split may
        # round differently, so float32 rounding is the tolerance
        torch.testing.assert_close(a, b, rtol=2e-6, atol=1e-7)
    # the modules' own parameters moved: they are views of the flat buffer
    x = torch.randn(6, 7)
    torch.testing.assert_close(reference[0](x), packed[0](x), rtol=2e-6, atol=1e-6)


def test_collect_grads_takes_autograd_gradients_and_missing_ones_are_zero():
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    unused = nn.Linear(2, 2)
    flat = FlatParameters([net, unused])
    net(torch.randn(4, 3)).sum().backward()
    expected = [p.grad.clone() for p in net.parameters()]
    flat.collect_grads()
    sizes = [p.numel() for p in flat.params]
    pieces = torch.split(flat.parameter.grad, sizes)
    for piece, grad in zip(pieces, expected, strict=False):
        assert torch.equal(piece, grad.reshape(-1))
    assert not pieces[-1].any() and not pieces[-2].any()
    assert all(p.grad is None for p in flat.params)


def test_state_dict_round_trip_writes_into_the_flat_buffer():
    net = nn.Linear(3, 2)
    flat = FlatParameters([net])
    other = nn.Linear(3, 2)
    net.load_state_dict(other.state_dict())
    assert torch.equal(flat.parameter.detach()[:6].view(2, 3), other.weight.detach())


def test_mixed_dtypes_are_refused():
    with pytest.raises(ValueError, match="dtype"):
        FlatParameters([nn.Linear(2, 2), nn.Linear(2, 2).double()])

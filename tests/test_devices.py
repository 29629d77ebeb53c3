"""Every backend runs the same code on any device; the data and sampling stay on it.

On a CPU-only machine the ``cuda`` cases are skipped and the ``cpu`` cases run the
identical code path (device is a parameter, not a branch).
"""

from __future__ import annotations

import pytest
import torch

import synthgen as sg

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here"),
    ),
]

TINY = {
    "tvae": dict(epochs=1, batch_size=100, compress_dims=(32,), decompress_dims=(32,)),
    "ctgan": dict(epochs=1, batch_size=100, generator_dims=(32,), discriminator_dims=(32,)),
    "tabular_ar": dict(epochs=1, batch_size=100),
    "tabddpm": dict(steps=4, batch_size=100, hidden=(32,), time_dim=8, sample_steps=5),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(TINY))
def test_backend_fits_and_samples_on_device(name, device, adult_small):
    cls = sg.BACKENDS[name]
    options = {k: v for k, v in TINY[name].items() if k in cls._param_names()}
    model = cls(seed=0, device=device, **options).fit(adult_small.head(300))
    assert model.device_.type == device
    for module in model._modules().values():
        assert all(p.device.type == device for p in module.parameters())
    synthetic = model.sample(50, seed=1)
    assert list(synthetic.columns) == list(adult_small.columns) and len(synthetic) == 50
    conditioned = model.sample(20, seed=1, conditions={"sex": "Female"}, max_tries=500)
    assert (conditioned["sex"] == "Female").all()

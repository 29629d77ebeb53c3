"""Shared fixtures: small real data and a frame holding every column kind."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("SYNTHGEN_NO_PROGRESS", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def adult() -> pd.DataFrame:
    import synthgen as sg

    return sg.datasets.load("adult")


@pytest.fixture(scope="session")
def adult_small(adult: pd.DataFrame) -> pd.DataFrame:
    return adult.sample(2000, random_state=0).reset_index(drop=True)


@pytest.fixture()
def mixed_frame() -> pd.DataFrame:
    """One column of every kind, with nulls where a kind allows them."""
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "user_id": np.arange(1000, 1000 + n),
            "age": rng.integers(18, 90, n),
            "income": np.round(rng.lognormal(10, 1, n), 2),
            "score": np.where(rng.random(n) < 0.1, np.nan, rng.normal(0, 1, n)),
            "city": rng.choice(["Paris", "Lyon", "Nice", None], n, p=[0.5, 0.3, 0.15, 0.05]),
            "member": rng.random(n) < 0.3,
            "joined": pd.to_datetime("2020-01-01")
            + pd.to_timedelta(rng.integers(0, 1000, n), unit="D"),
        }
    )
    return frame

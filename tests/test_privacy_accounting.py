"""privacy.accounting and privacy.budget: DP settings, the accountant, the receipt, the ledger.

The accountant's numbers are checked against opacus' own accountants run on the same
history; where our PRV guard departs from opacus, against an independent closed form of
the Poisson-subsampled Gaussian's privacy profile.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from scipy.stats import norm

import privacy.accounting as accounting
from privacy.accounting import (
    PREPROCESSING_CAP,
    PREPROCESSING_SHARE,
    Accountant,
    DPConfig,
    PrivacySpent,
    planned_epsilon,
    solve_noise_multiplier,
)
from privacy.budget import BudgetExceededError, Charge, PrivacyBudget
from synthgen.core.errors import ConfigError, SynthgenError

pytestmark = pytest.mark.filterwarnings("ignore:Optimal order:UserWarning")

HISTORIES = [
    [(1.0, 0.02, 200)],
    [(1.5, 0.01, 300), (0.8, 0.01, 100)],  # two phases, different noise
    [(2.0, 0.05, 100), (1.2, 0.1, 20), (2.0, 0.05, 30)],  # sample rate changes too
]


def opacus_epsilon(kind: str, history, delta: float) -> float:
    """opacus' accountant stepped one step at a time, as its optimizer hook does."""
    acc = RDPAccountant() if kind == "rdp" else PRVAccountant()
    for sigma, rate, steps in history:
        for _ in range(steps):
            acc.step(noise_multiplier=sigma, sample_rate=rate)
    return float(acc.get_epsilon(delta))


def ours(kind: str, history) -> Accountant:
    acc = Accountant(kind)
    for sigma, rate, steps in history:
        acc.step(sigma, rate, steps)
    return acc


def profile_delta(epsilon: float, sigma: float, q: float) -> float:
    """delta(epsilon) of one Poisson-subsampled Gaussian step, "add a row" direction.

    P = (1-q) N(0, s^2) + q N(1, s^2) against Q = N(0, s^2): the loss exceeds epsilon
    beyond x* = 1/2 + s^2 log((e^eps - 1 + q) / q), so delta = q Phi_bar((x*-1)/s) -
    (e^eps - 1 + q) Phi_bar(x*/s), computed in log space. Any valid (epsilon, delta)
    guarantee must have delta >= this.
    """
    log_excess = epsilon + math.log1p(-(1 - q) * math.exp(-epsilon))  # log(e^eps - 1 + q)
    x_star = 0.5 + sigma**2 * (log_excess - math.log(q))
    return q * norm.sf((x_star - 1) / sigma) - math.exp(log_excess + norm.logsf(x_star / sigma))


# ----------------------------------------------------------------- DPConfig
BAD_CONFIGS = [
    ({"epsilon": 0}, "epsilon"),
    ({"epsilon": -1.0}, "epsilon"),
    ({"epsilon": math.inf}, "epsilon"),
    ({"epsilon": math.nan}, "epsilon"),
    ({"epsilon": True}, "epsilon"),
    ({"epsilon": "1"}, "epsilon"),
    ({"epsilon": 1.0, "delta": 0.0}, "delta"),
    ({"epsilon": 1.0, "delta": 1.0}, "delta"),
    ({"epsilon": 1.0, "delta": -1e-6}, "delta"),
    ({"epsilon": 1.0, "delta": True}, "delta"),
    ({"epsilon": 1.0, "delta": math.nan}, "delta"),
    ({"epsilon": 1.0, "max_grad_norm": 0.0}, "max_grad_norm"),
    ({"epsilon": 1.0, "max_grad_norm": -1.0}, "max_grad_norm"),
    ({"epsilon": 1.0, "max_grad_norm": math.inf}, "max_grad_norm"),
    ({"epsilon": 1.0, "accountant": "gdp"}, "accountant"),
    ({"epsilon": 1.0, "accountant": None}, "accountant"),
    ({"epsilon": 1.0, "preprocessing_epsilon": -0.1}, "preprocessing_epsilon"),
    ({"epsilon": 1.0, "preprocessing_epsilon": 1.0}, "preprocessing_epsilon"),
    ({"epsilon": 1.0, "preprocessing_epsilon": 2.0}, "preprocessing_epsilon"),
    ({"epsilon": 1.0, "preprocessing_epsilon": math.nan}, "preprocessing_epsilon"),
]


@pytest.mark.parametrize(("kwargs", "name"), BAD_CONFIGS)
def test_dpconfig_rejects_bad_values_by_name(kwargs, name):
    with pytest.raises(ConfigError, match=rf"\b{name}=") as info:
        DPConfig(**kwargs)
    assert repr(kwargs[name]) in str(info.value)


def test_dpconfig_defaults_round_trip_and_unknown_keys():
    cfg = DPConfig(np.float32(2.0), delta=1e-6, accountant="prv", preprocessing_epsilon=0)
    assert type(cfg.epsilon) is float and cfg.epsilon == 2.0
    assert cfg.preprocessing_epsilon == 0.0
    d = json.loads(json.dumps(cfg.to_dict()))
    assert DPConfig.from_dict(d) == cfg
    assert DPConfig(1.0).to_dict() == {
        "epsilon": 1.0,
        "delta": None,
        "max_grad_norm": 1.0,
        "accountant": "rdp",
        "preprocessing_epsilon": None,
    }
    with pytest.raises(ConfigError, match="unknown keys.*sigma"):
        DPConfig.from_dict({"epsilon": 1.0, "sigma": 1.0})
    with pytest.raises(ConfigError, match="epsilon"):
        DPConfig.from_dict({"delta": 1e-6})


def test_resolve_delta_default_given_and_refused():
    assert DPConfig(1.0).resolve_delta(10_000) == (
        pytest.approx(1e-6, rel=1e-12),
        "default 1/n^1.5",
    )
    assert DPConfig(1.0, delta=1e-7).resolve_delta(10_000) == (1e-7, "given")
    with pytest.raises(ConfigError, match=r"delta=0\.0001 .*well below 1/n.*1/n\^1\.5 = 1e-06"):
        DPConfig(1.0, delta=1e-4).resolve_delta(10_000)
    with pytest.raises(ConfigError, match="delta"):
        DPConfig(1.0, delta=2e-4).resolve_delta(10_000)
    for bad in (1, 0, True, 10.0):
        with pytest.raises(ConfigError, match="n_rows"):
            DPConfig(1.0).resolve_delta(bad)


def test_preprocessing_budget_and_delta_share():
    assert (PREPROCESSING_SHARE, PREPROCESSING_CAP) == (0.5, 1.0)
    assert DPConfig(1.0).preprocessing_budget(True) == pytest.approx(0.5)
    assert DPConfig(10.0).preprocessing_budget(True) == pytest.approx(1.0)
    cfg = DPConfig(2.0)
    assert cfg.preprocessing_budget(True) == pytest.approx(1.0)
    assert cfg.preprocessing_budget(False) == 0.0
    assert DPConfig(2.0, preprocessing_epsilon=0.5).preprocessing_budget(False) == 0.5
    assert cfg.preprocessing_delta(1e-6, True) == pytest.approx(1e-7)
    assert cfg.preprocessing_delta(1e-6, False) == 0.0
    assert DPConfig(2.0, preprocessing_epsilon=0.0).preprocessing_delta(1e-6, True) == 0.0


# ----------------------------------------------------------------- Accountant vs opacus
@pytest.mark.parametrize("history", HISTORIES)
@pytest.mark.parametrize("delta", [1e-5, 1e-7])
def test_rdp_accountant_equals_opacus(history, delta):
    acc = ours("rdp", history)
    assert acc.history == history and acc.steps == sum(n for *_, n in history)
    assert acc.get_epsilon(delta) == opacus_epsilon("rdp", history, delta)
    assert acc.used == "rdp" and acc.notes == []


@pytest.mark.parametrize("history", HISTORIES)
def test_prv_accountant_equals_opacus(history):
    acc = ours("prv", history)
    eps = acc.get_epsilon(1e-5)
    assert eps == pytest.approx(opacus_epsilon("prv", history, 1e-5), rel=1e-12)
    assert acc.used == "prv" and acc.notes == []
    assert eps < ours("rdp", history).get_epsilon(1e-5)  # PRV is the tighter one here


def test_step_merges_like_opacus_and_validates():
    acc = Accountant()
    acc.step(1.0, 0.01)
    acc.step(1.0, 0.01, steps=4)
    acc.step(np.float64(0.9), 0.01, 2)
    acc.step(1.0, 0.01)
    assert acc.history == [(1.0, 0.01, 5), (0.9, 0.01, 2), (1.0, 0.01, 1)]
    assert acc.steps == 8
    assert Accountant().get_epsilon(1e-5) == 0.0  # no step, no cost
    for kwargs, name in [
        ({"noise_multiplier": 0.0, "sample_rate": 0.1}, "noise_multiplier"),
        ({"noise_multiplier": math.nan, "sample_rate": 0.1}, "noise_multiplier"),
        ({"noise_multiplier": 1.0, "sample_rate": 0.0}, "sample_rate"),
        ({"noise_multiplier": 1.0, "sample_rate": 1.5}, "sample_rate"),
        ({"noise_multiplier": 1.0, "sample_rate": 0.1, "steps": 0}, "steps"),
        ({"noise_multiplier": 1.0, "sample_rate": 0.1, "steps": True}, "steps"),
        ({"noise_multiplier": 1.0, "sample_rate": 0.1, "steps": 2.0}, "steps"),
    ]:
        with pytest.raises(ConfigError, match=name):
            acc.step(**kwargs)
    assert acc.steps == 8  # refused steps record nothing
    for delta in (0.0, 1.0, -1e-5, math.nan):
        with pytest.raises(ConfigError, match="delta"):
            acc.get_epsilon(delta)
    with pytest.raises(ConfigError, match="accountant"):
        Accountant("gdp")


@pytest.mark.parametrize(
    ("sigma", "rate", "extra"),
    [(0.8, 0.01, 50), (0.8, 0.01, 0), (1.1, 0.02, 7), (0.8, 0.05, 1)],
)
def test_epsilon_after_equals_stepping_a_copy(sigma, rate, extra):
    acc = ours("rdp", HISTORIES[1])
    before = acc.history
    predicted = acc.epsilon_after(sigma, rate, extra, 1e-6)
    assert acc.history == before  # the look-ahead changes nothing
    stepped = acc.copy()
    if extra:
        stepped.step(sigma, rate, extra)
    assert predicted == stepped.get_epsilon(1e-6)
    assert predicted == opacus_epsilon("rdp", stepped.history, 1e-6)
    assert acc.history == before  # the copy is independent


def test_epsilon_after_prv_and_steps_affordable():
    acc = ours("prv", [(1.0, 0.02, 100)])
    stepped = acc.copy()
    stepped.step(1.2, 0.02, 30)
    assert acc.epsilon_after(1.2, 0.02, 30, 1e-5) == stepped.get_epsilon(1e-5)
    assert acc.steps == 100

    rdp = ours("rdp", [(1.0, 0.02, 100)])
    target = 2.0
    k = rdp.steps_affordable(1.0, 0.02, target, 1e-5, max_steps=5000)
    assert 0 < k < 5000
    assert rdp.epsilon_after(1.0, 0.02, k, 1e-5) <= target
    assert rdp.epsilon_after(1.0, 0.02, k + 1, 1e-5) > target
    assert rdp.steps_affordable(1.0, 0.02, 100.0, 1e-5, max_steps=10) == 10
    assert rdp.steps_affordable(1.0, 0.02, 0.01, 1e-5, max_steps=10) == 0


# ----------------------------------------------------------------- PRV fallback
def test_prv_failure_falls_back_to_rdp_with_a_note(monkeypatch):
    history = HISTORIES[1]
    rdp_eps = ours("rdp", history).get_epsilon(1e-5)

    def broken(self, delta, **kwargs):
        raise RuntimeError("Discrete mean differs significantly from continuous mean.")

    monkeypatch.setattr(PRVAccountant, "get_epsilon", broken)
    acc = ours("prv", history)
    assert acc.get_epsilon(1e-5) == rdp_eps
    assert acc.used == "rdp"
    assert acc.notes == [
        "PRV accountant failed (RuntimeError: Discrete mean differs significantly from "
        "continuous mean.); RDP used"
    ]
    acc.get_epsilon(1e-5)
    assert len(acc.notes) == 1  # the same failure is noted once

    for bad in (math.inf, math.nan, -0.5):
        monkeypatch.setattr(PRVAccountant, "get_epsilon", lambda self, delta, v=bad, **k: v)
        acc = ours("prv", history)
        assert acc.get_epsilon(1e-5) == rdp_eps and acc.used == "rdp"
        assert "PRV accountant failed (it returned epsilon=" in acc.notes[0]


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_prv_real_failure_tiny_delta():
    # opacus' PRV: "Floating point errors will dominate for such small values of delta"
    history = [(1.0, 0.01, 100)]
    with pytest.raises(ValueError, match="Floating point errors"):
        opacus_epsilon("prv", history, 1e-16)
    acc = ours("prv", history)
    assert acc.get_epsilon(1e-16) == opacus_epsilon("rdp", history, 1e-16)
    assert acc.used == "rdp" and "ValueError: Floating point errors" in acc.notes[0]


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_prv_small_noise_wrong_answer_is_not_used():
    # sigma=0.02, q=0.001, one step: opacus' PRV returns ~703 (exp overflow), yet the
    # exact privacy profile shows the true epsilon at delta=1e-5 is ~1360.
    sigma, q, delta = 0.02, 0.001, 1e-5
    raw = opacus_epsilon("prv", [(sigma, q, 1)], delta)
    assert profile_delta(raw, sigma, q) > 10 * delta, "opacus' PRV is now right here"
    acc = ours("prv", [(sigma, q, 1)])
    eps = acc.get_epsilon(delta)
    assert eps == opacus_epsilon("rdp", [(sigma, q, 1)], delta)
    assert profile_delta(eps, sigma, q) <= delta
    assert acc.used == "rdp" and "exceeds 700" in acc.notes[0]


def test_profile_delta_matches_opacus_prv_where_prv_is_reliable():
    # the independent closed form agrees with PRV on an ordinary case (one step)
    sigma, q = 0.7, 0.5
    eps = ours("prv", [(sigma, q, 1)]).get_epsilon(1e-5)
    assert profile_delta(eps, sigma, q) <= 1e-5
    assert profile_delta(eps - 0.05, sigma, q) > 1e-5  # PRV is within its 0.01 + slack


# ----------------------------------------------------------------- solving for sigma
@pytest.mark.parametrize(
    ("epsilon", "rate", "steps"), [(1.0, 0.01, 500), (3.0, 0.05, 60), (0.5, 0.02, 50)]
)
def test_solve_noise_multiplier_rdp(epsilon, rate, steps):
    sigma = solve_noise_multiplier(epsilon, 1e-5, rate, steps)
    theirs = get_noise_multiplier(
        target_epsilon=epsilon, target_delta=1e-5, sample_rate=rate, steps=steps
    )
    eps = planned_epsilon(sigma, rate, steps, 1e-5)
    assert eps <= epsilon
    assert eps >= epsilon - 0.01  # as tight as opacus' tolerance
    assert abs(eps - planned_epsilon(theirs, rate, steps, 1e-5)) <= 0.01
    assert sigma <= theirs  # same bisection, tighter tolerance


def test_solve_noise_multiplier_prv():
    sigma = solve_noise_multiplier(1.0, 1e-5, 0.1, 10, accountant="prv")
    eps = planned_epsilon(sigma, 0.1, 10, 1e-5, accountant="prv")
    assert 1.0 - 0.01 <= eps <= 1.0
    assert sigma < solve_noise_multiplier(1.0, 1e-5, 0.1, 10)  # PRV needs less noise


def test_solve_noise_multiplier_verifies_and_raises_sigma(monkeypatch):
    calls = []

    def too_small(**kwargs):
        calls.append(kwargs)
        return 1.2  # opacus would say ~1.26

    monkeypatch.setattr(accounting, "get_noise_multiplier", too_small)
    sigma = solve_noise_multiplier(1.0, 1e-5, 0.01, 500)
    assert calls and calls[0]["epsilon_tolerance"] <= 0.01
    assert sigma > 1.2
    assert planned_epsilon(sigma, 0.01, 500, 1e-5) <= 1.0
    assert planned_epsilon(sigma / 1.01, 0.01, 500, 1e-5) > 1.0  # 1% steps, no more


def test_solve_noise_multiplier_unreachable_and_bad_input():
    with pytest.raises(ConfigError, match=r"epsilon=1e-06.*steps=100000.*fewer epochs"):
        solve_noise_multiplier(1e-6, 1e-5, 1.0, 100_000)
    with pytest.raises(ConfigError, match="sample_rate"):
        solve_noise_multiplier(1.0, 1e-5, 0.0, 10)
    with pytest.raises(ConfigError, match="steps"):
        solve_noise_multiplier(1.0, 1e-5, 0.1, 0)
    with pytest.raises(ConfigError, match="accountant"):
        solve_noise_multiplier(1.0, 1e-5, 0.1, 10, accountant="gdp")


# ----------------------------------------------------------------- PrivacySpent
def test_privacy_spent_compose_sums_and_round_trip():
    acc = ours("rdp", HISTORIES[1])
    spent = PrivacySpent.compose(0.1, 1e-7, acc, 9e-7, 0.8, 0.01, "default 1/n^1.5")
    train = ours("rdp", HISTORIES[1]).get_epsilon(9e-7)
    assert spent.training_epsilon == train
    assert spent.epsilon == 0.1 + train
    assert spent.delta == 1e-7 + 9e-7
    assert (spent.steps, spent.accountant, spent.notes) == (400, "rdp", ())
    assert (spent.noise_multiplier, spent.sample_rate) == (0.8, 0.01)
    d = json.loads(json.dumps(spent.to_dict()))
    assert PrivacySpent.from_dict(d) == spent


def test_privacy_spent_compose_carries_prv_notes(monkeypatch):
    def broken(self, delta, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(PRVAccountant, "get_epsilon", broken)
    spent = PrivacySpent.compose(0.0, 0.0, ours("prv", HISTORIES[0]), 1e-6, 1.0, 0.02)
    assert spent.accountant == "rdp"
    assert spent.notes == ("PRV accountant failed (RuntimeError: boom); RDP used",)
    d = json.loads(json.dumps(spent.to_dict()))
    assert d["notes"] == list(spent.notes)
    assert PrivacySpent.from_dict(d) == spent
    assert str(spent).endswith("; PRV accountant failed (RuntimeError: boom); RDP used")


def test_privacy_spent_str_and_validation():
    spent = PrivacySpent(
        epsilon=0.998,
        delta=1.7e-7,
        accountant="rdp",
        noise_multiplier=1.23,
        sample_rate=0.0154,
        steps=650,
        preprocessing_epsilon=0.1,
        training_epsilon=0.898,
        preprocessing_delta=0.0,
        training_delta=1.7e-7,
        delta_source="default 1/n^1.5",
    )
    assert str(spent) == (
        "epsilon 0.998 (preprocessing 0.100 + training 0.898, rdp), delta 1.7e-07 "
        "(default 1/n^1.5), noise multiplier 1.23, sample rate 0.0154, 650 steps"
    )
    d = spent.to_dict()
    with pytest.raises(ConfigError, match="not the sum"):
        PrivacySpent.from_dict({**d, "epsilon": 1.5})
    with pytest.raises(ConfigError, match="not the sum"):
        PrivacySpent.from_dict({**d, "delta": 1e-6})
    with pytest.raises(ConfigError, match="unknown keys"):
        PrivacySpent.from_dict({**d, "sigma": 1.0})
    with pytest.raises(ConfigError, match="accountant"):
        PrivacySpent.from_dict({**d, "accountant": "gdp"})
    with pytest.raises(ConfigError, match="training_epsilon"):
        PrivacySpent.from_dict({**d, "training_epsilon": -0.1})
    with pytest.raises(ConfigError, match="accountant must be"):
        PrivacySpent.compose(0.1, 0.0, RDPAccountant(), 1e-6, 1.0, 0.01)


def test_accountant_state_round_trip_and_damage():
    acc = ours("prv", HISTORIES[2])
    acc.notes.append("PRV accountant failed (x); RDP used")
    state = json.loads(json.dumps(acc.state_dict()))
    back = Accountant("prv")
    back.load_state_dict(state)
    assert back.state_dict() == acc.state_dict()
    assert back.history == HISTORIES[2]
    with pytest.raises(ConfigError, match="kind"):
        Accountant("rdp").load_state_dict(state)
    for damaged, name in [
        ({**state, "history": [[0.0, 0.1, 3]]}, "noise_multiplier"),
        ({**state, "history": [[1.0, 2.0, 3]]}, "sample_rate"),
        ({**state, "history": [[1.0, 0.1, -3]]}, "steps"),
        ({**state, "history": [[1.0, 0.1]]}, "history entry"),
        ({**state, "surprise": 1}, "unknown keys"),
        ({**state, "used": "gdp"}, "used"),
    ]:
        fresh = Accountant("prv")
        with pytest.raises(ConfigError, match=name):
            fresh.load_state_dict(damaged)
        assert fresh.history == []  # nothing half-loaded


# ----------------------------------------------------------------- PrivacyBudget
AT = "2024-05-01T12:00:00+00:00"


def test_budget_charge_refuse_remaining():
    budget = PrivacyBudget(1.0, 1e-5, source="adult")
    c = budget.charge(0.4, 4e-6, "fit tvae v1", at=AT)
    assert c == Charge("fit tvae v1", 0.4, 4e-6, AT)
    assert budget.spent() == (0.4, 4e-6)
    assert budget.remaining() == (pytest.approx(0.6), pytest.approx(6e-6))
    assert budget.can_afford(0.6, 6e-6) and not budget.can_afford(0.61, 0.0)
    with pytest.raises(BudgetExceededError) as info:
        budget.charge(0.7, 1e-6, "fit ctgan v1")
    message = str(info.value)
    assert "'adult'" in message and "'fit ctgan v1'" in message
    assert "epsilon=0.7" in message and "epsilon=0.6" in message and "remain" in message
    assert isinstance(info.value, SynthgenError)
    with pytest.raises(BudgetExceededError, match="delta"):
        budget.charge(0.1, 7e-6, "too much delta")
    assert len(budget.charges) == 1  # refused charges record nothing
    stamp = budget.charge(0.6, 6e-6, "the rest").at
    assert stamp.endswith("+00:00")
    assert budget.remaining() == (0.0, 0.0)
    assert not budget.can_afford(1e-9, 0.0)


def test_budget_accepts_exact_use_up_despite_rounding():
    budget = PrivacyBudget(0.3, 3e-6)
    budget.charge(0.1, 1e-6, "a")
    budget.charge(0.2, 2e-6, "b")  # 0.1 + 0.2 = 0.30000000000000004 in floats
    assert budget.spent() == (0.3, 3e-6)
    budget = PrivacyBudget(1.0, 0.0)
    for i in range(10):
        budget.charge(0.1, 0.0, f"tenth {i}")
    assert budget.spent() == (1.0, 0.0)
    with pytest.raises(BudgetExceededError):
        budget.charge(1e-9, 0.0, "one more")


def test_budget_validates_inputs():
    for args, name in [
        ((0.0, 1e-5), "epsilon"),
        ((-1.0, 1e-5), "epsilon"),
        ((math.inf, 1e-5), "epsilon"),
        ((1.0, -1e-5), "delta"),
        ((1.0, 1.0), "delta"),
        ((1.0, True), "delta"),
    ]:
        with pytest.raises(ConfigError, match=name):
            PrivacyBudget(*args)
    budget = PrivacyBudget(1.0, 1e-5, "adult")
    for kwargs, name in [
        ({"epsilon": -0.1, "delta": 0.0, "label": "x"}, "epsilon"),
        ({"epsilon": math.nan, "delta": 0.0, "label": "x"}, "epsilon"),
        ({"epsilon": 0.1, "delta": -1e-9, "label": "x"}, "delta"),
        ({"epsilon": 0.1, "delta": 0.0, "label": ""}, "label"),
        ({"epsilon": 0.1, "delta": 0.0, "label": "x", "at": "yesterday"}, "at"),
        ({"epsilon": 0.1, "delta": 0.0, "label": "x", "at": "2024-05-01T12:00:00"}, "at"),
        ({"epsilon": 0.1, "delta": 0.0, "label": "x", "at": "2024-05-01T12:00:00+02:00"}, "at"),
    ]:
        with pytest.raises(ConfigError, match=name):
            budget.charge(**kwargs)
    assert budget.charges == []


def test_budget_round_trip_and_damaged_state():
    budget = PrivacyBudget(2.0, 1e-5, source="credit_default")
    budget.charge(0.123456789012345, 3.3e-7, "fit tvae", at=AT)
    budget.charge(1.1, 1e-6, "fit ctgan")
    text = budget.to_json()
    back = PrivacyBudget.from_json(text)
    assert back.state_dict() == budget.state_dict()
    assert back.to_json() == text
    assert back.charges == budget.charges and back.spent() == budget.spent()
    state = json.loads(text)
    damaged = [
        ({**state, "epsilon": -2.0}, "epsilon"),
        ({**state, "epsilon": 1.0}, "damaged"),  # charges exceed the total
        ({**state, "delta": 1e-6}, "damaged"),
        ({**state, "charges": [{**state["charges"][0], "epsilon": -0.1}]}, "epsilon"),
        ({**state, "charges": [{**state["charges"][0], "extra": 1}]}, "keys"),
        ({**state, "charges": "none"}, "charges"),
        ({k: v for k, v in state.items() if k != "source"}, "keys"),
    ]
    for bad, name in damaged:
        with pytest.raises(ConfigError, match=name):
            PrivacyBudget.from_state_dict(bad)
    keep = PrivacyBudget(1.0, 1e-5, "x")
    with pytest.raises(ConfigError):
        keep.load_state_dict({**state, "epsilon": 1.0})
    assert keep.state_dict() == {"source": "x", "epsilon": 1.0, "delta": 1e-5, "charges": []}
    with pytest.raises(ConfigError, match="JSON"):
        PrivacyBudget.from_json("{not json")


@settings(max_examples=150, deadline=None)
@given(
    total_eps=st.floats(0.01, 10.0),
    total_delta=st.sampled_from([0.0, 1e-6, 1e-5]),
    attempts=st.lists(
        st.tuples(st.floats(0.0, 3.0), st.sampled_from([0.0, 1e-7, 3e-7, 1e-6, 4e-6])),
        max_size=25,
    ),
)
def test_random_charges_never_exceed_the_total(total_eps, total_delta, attempts):
    budget = PrivacyBudget(total_eps, total_delta, "prop")
    for i, (eps, delta) in enumerate(attempts):
        before = math.fsum(c.epsilon for c in budget.charges)
        before_delta = math.fsum(c.delta for c in budget.charges)
        affordable = budget.can_afford(eps, delta)
        try:
            budget.charge(eps, delta, f"charge {i}", at=AT)
        except BudgetExceededError:
            assert not affordable
            # refused only when a sum would really pass its total
            assert before + eps > total_eps or before_delta + delta > total_delta
        else:
            assert affordable
        spent_eps, spent_delta = budget.spent()
        assert spent_eps <= total_eps and spent_delta <= total_delta
        assert math.fsum(c.epsilon for c in budget.charges) <= total_eps * (1 + 1e-12)
        assert math.fsum(c.delta for c in budget.charges) <= total_delta * (1 + 1e-12)
        left_eps, left_delta = budget.remaining()
        assert left_eps >= 0 and left_delta >= 0
        assert spent_eps + left_eps == pytest.approx(total_eps, rel=1e-12)
    assert PrivacyBudget.from_json(budget.to_json()).state_dict() == budget.state_dict()

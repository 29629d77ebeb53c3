"""AIM and MST (marginal-based DP backends), their zCDP accounting and the k-way TVD."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import synthgen as sg
from evaluation.marginals import average_tvd, discretize, marginal_tvd
from privacy.accounting import DPConfig
from privacy.zcdp import (
    ZCDPBudget,
    exponential_mechanism,
    exponential_rho,
    gaussian_rho,
    zcdp_delta,
    zcdp_epsilon,
    zcdp_epsilon_simple,
    zcdp_rho,
)
from synthgen.errors import ConditionError, ConfigError, MissingDependencyError, SynthgenError


# ---------------------------------------------------------------------- zCDP arithmetic
@pytest.mark.parametrize("rho, epsilon", [(0.1, 1.5), (0.01, 0.5), (1.0, 8.0), (0.003, 0.2)])
def test_zcdp_delta_equals_a_direct_numerical_minimisation(rho, epsilon):
    from scipy.optimize import minimize_scalar

    def log_delta(alpha: float) -> float:  # CKS 2020, Corollary 13, in log space
        return (
            (alpha - 1) * (alpha * rho - epsilon)
            + alpha * math.log1p(-1 / alpha)
            - math.log(alpha - 1)
        )

    best = minimize_scalar(
        log_delta, bounds=(1 + 1e-9, 1e5), method="bounded", options={"xatol": 1e-12}
    )
    assert zcdp_delta(rho, epsilon) == pytest.approx(math.exp(best.fun), rel=1e-7)


@pytest.mark.parametrize("rho, delta", [(0.1, 1e-5), (0.0147, 1e-6), (2.0, 1e-9)])
def test_zcdp_epsilon_equals_opacus_rdp_conversion_and_beats_the_simple_bound(rho, delta):
    from opacus.accountants.analysis.rdp import get_privacy_spent

    orders = np.linspace(1.0005, 400.0, 400_000)  # a dense grid: opacus minimises over it
    reference, _ = get_privacy_spent(orders=orders, rdp=rho * orders, delta=delta)
    epsilon = zcdp_epsilon(rho, delta)
    assert epsilon == pytest.approx(reference, rel=1e-6)
    assert zcdp_delta(rho, epsilon) <= delta  # never understated
    assert epsilon < zcdp_epsilon_simple(rho, delta)
    assert zcdp_epsilon_simple(rho, delta) == rho + 2 * math.sqrt(rho * math.log(1 / delta))


@pytest.mark.parametrize("epsilon, delta", [(1.0, 1e-5), (0.3, 1e-6), (10.0, 1e-5)])
def test_zcdp_rho_inverts_the_conversion(epsilon, delta):
    rho = zcdp_rho(epsilon, delta)
    assert zcdp_epsilon(rho, delta) <= epsilon
    assert zcdp_epsilon(rho * (1 + 1e-6), delta) > epsilon  # the largest such rho
    with pytest.raises(ConfigError, match="epsilon"):
        zcdp_rho(0.0, delta)
    with pytest.raises(ConfigError, match="delta"):
        zcdp_rho(epsilon, 1.5)


def test_mechanism_costs_and_the_budget_refuses_to_overspend():
    assert gaussian_rho(10.0) == 1 / 200
    assert exponential_rho(0.4) == pytest.approx(0.02)
    budget = ZCDPBudget(0.05)
    budget.spend("a", 0.03)
    with pytest.raises(ConfigError, match="would spend"):
        budget.spend("b", 0.03)
    assert budget.used == 0.03 and budget.remaining == pytest.approx(0.02)


def test_exponential_mechanism_draws_proportionally_to_exp_epsilon_score_over_2_delta():
    scores = np.array([0.0, 1.0, 2.0])
    rng = np.random.default_rng(0)
    draws = np.bincount(
        [exponential_mechanism(scores, 2.0, 1.0, rng) for _ in range(6000)], minlength=3
    )
    expected = np.exp(scores) / np.exp(scores).sum()  # epsilon / (2 Delta) = 1
    assert np.allclose(draws / 6000, expected, atol=0.02)
    assert exponential_mechanism(np.array([0.0, 5.0, 1.0]), 1e4, 1.0, rng) == 1


# ---------------------------------------------------------------------- k-way TVD
def test_marginal_tvd_matches_a_hand_computation():
    real = pd.DataFrame({"a": ["x", "x", "y", "y"], "b": [1, 2, 1, 2]})
    syn = pd.DataFrame({"a": ["x", "x", "x", "y"], "b": [1, 1, 2, 2]})
    r, s = discretize(real, syn)
    # real cells (x,1) (x,2) (y,1) (y,2): 1/4 each; synthetic 2/4, 1/4, 0, 1/4
    assert marginal_tvd(r, s, ["a", "b"]) == pytest.approx(0.5 * (0.25 + 0 + 0.25 + 0))
    # one-way: a is 1/2, 1/2 against 3/4, 1/4; b is the same in both
    assert marginal_tvd(r, s, ["a"]) == pytest.approx(0.25)
    assert average_tvd(real, syn, 1) == pytest.approx((0.25 + 0.0) / 2)
    assert average_tvd(real, syn, 2) == pytest.approx(0.25)
    assert average_tvd(real, real, 2) == 0.0
    with pytest.raises(ConfigError, match="k=3"):
        average_tvd(real, syn, 3)


def test_tvd_bins_numbers_by_the_real_quantiles_and_samples_sets_with_a_seed():
    rng = np.random.default_rng(0)
    real = pd.DataFrame({f"c{i}": rng.normal(size=500) for i in range(6)})
    shifted = real + 10.0  # every synthetic value beyond the real range: the last bin
    r, s = discretize(real, shifted, bins=4)
    assert set(r["c0"]) == {0, 1, 2, 3} and set(s["c0"]) == {3}
    assert marginal_tvd(r, s, ["c0"]) == pytest.approx(0.75, abs=0.01)
    one = average_tvd(real, shifted, 3, max_sets=5, seed=1)
    assert one == average_tvd(real, shifted, 3, max_sets=5, seed=1)
    assert 0.7 < one <= 1.0


# ---------------------------------------------------------------------- the backends
def test_model_marginals_equal_the_brute_force_joint():
    from synthgen.backends.marginal import ModelMarginals

    rng = np.random.default_rng(0)
    sizes = {"a": 3, "b": 4, "c": 2, "d": 5, "e": 3}
    factors = [
        (("a", "b"), rng.normal(size=(3, 4))),
        (("b", "c"), rng.normal(size=(4, 2))),
        (("c", "d", "a"), rng.normal(size=(2, 5, 3))),  # a cycle a-b-c-a
        (("e",), rng.normal(size=3)),  # a component of its own
    ]
    marginals = ModelMarginals(factors, sizes, 100.0)
    joint = np.einsum("ab,bc,cda,e->abcde", *[np.exp(v) for _, v in factors])
    joint *= 100.0 / joint.sum()
    for query in [("a",), ("d", "b"), ("d", "a", "e"), ("c", "e"), ("e",)]:
        summed = joint.sum(axis=tuple(i for i, x in enumerate("abcde") if x not in query))
        order = sorted(query, key="abcde".index)
        expected = np.transpose(summed, [order.index(x) for x in query]).reshape(-1)
        assert np.allclose(marginals(query), expected), query


def _frame(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """b copies a 90% of the time (a strong 2-column dependence); c and d independent."""
    rng = np.random.default_rng(seed)
    a = rng.choice(["p", "q", "r", "s"], n, p=[0.4, 0.3, 0.2, 0.1])
    b = np.where(rng.random(n) < 0.9, a, rng.choice(["p", "q", "r", "s"], n))
    return pd.DataFrame(
        {
            "a": a,
            "b": b,
            "c": rng.integers(18, 60, n),
            "d": rng.random(n) < 0.3,
        }
    )


def _schema(df: pd.DataFrame) -> sg.Schema:
    """Categories and bounds declared public: no preprocessing budget, a stable domain."""
    schema = sg.Schema.infer(df)
    for name in ("a", "b"):
        schema[name].categories = ["p", "q", "r", "s"]
        schema[name].public = True
    schema["c"].min, schema["c"].max, schema["c"].public = 18, 59, True
    return schema


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return _frame()


@pytest.fixture(scope="module")
def mst(frame) -> sg.MST:
    """One MST fit shared by the tests below (jax compiles its programs once per shape)."""
    return sg.MST(epsilon=1.0, delta=1e-6, progress=False).fit(frame, schema=_schema(frame))


def test_mst_contract_columns_dtypes_seeds_and_round_trip(mst, frame, tmp_path):
    syn = mst.sample(400, seed=3)
    assert list(syn.columns) == list(frame.columns) and len(syn) == 400
    assert syn.dtypes.to_dict() == frame.dtypes.to_dict()
    assert syn.equals(mst.sample(400, seed=3))
    assert not syn.equals(mst.sample(400, seed=4))
    assert set(syn["a"]) <= {"p", "q", "r", "s", None}
    assert syn["c"].between(18, 59).all()  # the public bounds
    path = tmp_path / "m.synth"
    mst.save(str(path))
    loaded = sg.load_model(str(path))
    assert type(loaded) is sg.MST and loaded.cliques == mst.cliques
    assert loaded.sample(400, seed=3).equals(syn)
    assert loaded.privacy_spent == mst.privacy_spent
    assert loaded.rho_used_ == mst.rho_used_ and loaded.dp_release_ == mst.dp_release_
    assert mst.training_log.training_seconds > 0 and mst.training_log.notes


def test_clone_get_and_set_params(mst):
    from sklearn.base import clone

    copy = clone(mst)
    assert copy.get_params() == mst.get_params()
    assert not hasattr(copy, "potentials_")
    assert set(sg.AIM().get_params()) >= {"epsilon", "delta", "dp", "workload", "max_model_size"}
    assert "epochs" not in sg.AIM().get_params()
    copy.set_params(epsilon=0.5)
    assert copy.epsilon == 0.5
    with pytest.raises(ConfigError, match="no parameter 'epochs'"):
        copy.set_params(epochs=3)


def test_privacy_spent_composes_preprocessing_and_measurements(frame, mst):
    model = sg.MST(dp=DPConfig(epsilon=1.5, delta=1e-6), progress=False).fit(frame)
    spent = model.privacy_spent
    assert spent.accountant == "zcdp"
    assert spent.epsilon <= 1.5 and spent.delta <= 1e-6 * (1 + 1e-12)
    assert spent.preprocessing_epsilon == pytest.approx(min(0.75, 1.0))  # DPConfig's share
    assert spent.preprocessing_epsilon == model.dp_release_.epsilon
    assert spent.epsilon == pytest.approx(spent.preprocessing_epsilon + spent.training_epsilon)
    assert spent.training_epsilon == pytest.approx(
        zcdp_epsilon(model.rho_used_, spent.training_delta), rel=1e-12
    )
    # MST spends its whole rho: the conversion brings the total back to the target
    assert spent.epsilon == pytest.approx(1.5, rel=1e-6)
    assert mst.privacy_spent.preprocessing_epsilon == 0.0  # every domain public: free
    assert mst.privacy_spent.epsilon == pytest.approx(1.0, rel=1e-6)


def test_mst_keeps_a_strong_dependence_far_better_than_independence(frame, mst):
    model = mst
    syn = model.sample(1000, seed=0)
    real_match = (frame["a"] == frame["b"]).mean()  # ~0.92
    independent = sum(
        frame["a"].value_counts(normalize=True) * frame["b"].value_counts(normalize=True)
    )
    synthetic_match = (syn["a"] == syn["b"]).mean()
    assert synthetic_match > independent + 0.8 * (real_match - independent)
    assert ("a", "b") in {tuple(sorted(c)) for c in model.cliques}


def test_aim_respects_its_workload_and_conditions_the_model(frame):
    model = sg.AIM(
        epsilon=3.0, delta=1e-6, workload=[["a", "b"], ["b", "d"]], rounds=6, progress=False
    ).fit(frame, schema=_schema(frame))
    assert model.privacy_spent.epsilon <= 3.0
    allowed = [{"a", "b"}, {"b", "d"}]
    assert all(any(set(c) <= w for w in allowed) or len(c) == 1 for c in model.cliques)
    syn = model.sample(500, seed=1, conditions={"a": "s"})
    assert len(syn) == 500 and (syn["a"] == "s").all()
    assert (syn["b"] == "s").mean() > 0.6  # conditioned model: b follows a
    ranged = model.sample(200, seed=1, conditions={"c": (30, 35)})
    assert ranged["c"].between(30, 35).all()
    several = model.sample(50, seed=2, conditions=[{"a": "p", "d": True}, {"a": "q"}])
    assert len(several) == 100 and (several["a"].iloc[:50] == "p").all()
    assert several["d"].iloc[:50].all()
    with pytest.raises(ConditionError, match="not a known category"):
        model.sample(10, conditions={"a": "zz"})
    hurried = sg.AIM(**{**model.get_params(), "max_training_time": 1e-3})
    hurried.fit(frame, schema=_schema(frame))  # the first round is made the last one
    assert len(hurried.training_log.epochs) == 1 and hurried.training_log.stopped_early
    assert hurried.privacy_spent.epsilon == pytest.approx(3.0, rel=1e-6)  # all spent
    assert hurried.privacy_spent.epsilon <= 3.0


def test_bad_inputs_raise_synthgen_errors_naming_the_fix(frame, monkeypatch):
    with pytest.raises(ConfigError, match="epsilon=0"):
        sg.AIM(epsilon=0).fit(frame)
    with pytest.raises(ConfigError, match="epsilon=-1"):
        sg.MST(epsilon=-1).fit(frame)
    with pytest.raises(ConfigError, match="needs a budget"):
        sg.MST().fit(frame)
    with pytest.raises(ConfigError, match="not both"):
        sg.MST(epsilon=1.0, dp=DPConfig(epsilon=1.0)).fit(frame)
    with pytest.raises(ConfigError, match=r"\['nope'\]"):
        sg.AIM(epsilon=1.0, workload=[["a", "nope"]], progress=False).fit(frame)
    with pytest.raises(ConfigError, match="workload"):
        sg.AIM(epsilon=1.0, workload="a,b").fit(frame)
    with pytest.raises(ConfigError, match="rounds=3 must be above the 4 modelled columns"):
        sg.AIM(epsilon=1.0, rounds=3, progress=False).fit(frame)
    monkeypatch.setitem(sys.modules, "mbi", None)  # as if the extra were not installed
    with pytest.raises(MissingDependencyError, match=r"\.\[marginals\]") as info:
        sg.MST(epsilon=1.0).fit(frame)
    assert isinstance(info.value, SynthgenError)


def test_importing_synthgen_loads_neither_mbi_nor_jax():
    code = (
        "import sys, synthgen, synthgen.backends; synthgen.AIM; "
        "print(json.dumps([m for m in ('mbi', 'jax') if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []


# ---------------------------------------------------------------------- pipelines
def test_a_job_with_backend_mst_charges_the_ledger(tmp_path, frame):
    from pipelines.catalog import Catalog
    from pipelines.jobs.runner import run_job
    from pipelines.jobs.spec import parse_spec

    data = tmp_path / "frame.csv"
    frame.to_csv(data, index=False)
    spec = {
        "name": "mst_job",
        "seed": 0,
        "source": {"file": str(data), "name": "toy"},
        "holdout": {"fraction": 0.2},
        "model": {"backend": "mst", "dp": {"epsilon": 1.0}},
        "produce": {"rows": 300},
        "evaluate": {"sections": ["fidelity"]},
        "gates": {"max_epsilon": 1.0, "validation_must_pass": False},
        "export": {"name": "toy_synth"},
    }
    with Catalog(f"sqlite:///{tmp_path}/c.db", tmp_path / "store") as catalog:
        first = run_job(parse_spec(json.dumps(spec)), catalog=catalog)  # registers the source
        assert first.status == "failed" and "no privacy budget" in first.error
        catalog.set_budget("toy", 1.5)
        result = run_job(parse_spec(json.dumps(spec)), catalog=catalog)
        assert result.status == "succeeded", result.error
        charges = catalog.budget("toy")["charges"]
        assert [c["status"] for c in charges] == ["spent"]
        assert 0.99 < charges[0]["epsilon"] <= 1.0
        model = sg.MST(epsilon=0.4, progress=False)  # the budget given as epsilon=
        catalog.train_private("toy", model, frame, schema=_schema(frame))
        assert catalog.budget("toy")["charges"][-1]["epsilon"] == pytest.approx(
            model.privacy_spent.epsilon
        )
    with pytest.raises(ConfigError, match="model.dp"):
        parse_spec(json.dumps({**spec, "model": {"backend": "aim"}}))
    with pytest.raises(ConfigError, match="model.params.epsilon"):
        from pipelines.jobs.runner import build_model

        build_model(
            parse_spec(json.dumps({**spec, "model": {**spec["model"], "params": {"epsilon": 1}}}))
        )


def test_each_fit_releases_jax_compiled_programs(frame, monkeypatch):
    """AIM compiles a program per clique set; kept for the process's life, nine Adult
    fits in one process exhausted its memory maps. Every fit releases them, even one
    that fails."""
    import synthgen.backends.marginal as marginal

    calls = []
    monkeypatch.setattr(marginal, "release_compiled_programs", lambda: calls.append(1))
    sg.MST(epsilon=2.0, seed=0, progress=False).fit(frame, schema=_schema(frame))
    assert calls == [1]

    def broken(*args, **kwargs):
        raise RuntimeError("estimation failed")

    monkeypatch.setattr(marginal.MST, "_select_and_measure", broken)
    with pytest.raises(RuntimeError, match="estimation failed"):
        sg.MST(epsilon=2.0, seed=0, progress=False).fit(frame, schema=_schema(frame))
    assert calls == [1, 1]

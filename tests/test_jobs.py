"""Batch jobs: spec validation (field + line), the runner's stages, gates, caching, DP."""

from __future__ import annotations

import json
import textwrap

import pytest

from pipelines.catalog import Catalog
from pipelines.jobs.runner import bias_widening, run_job
from pipelines.jobs.spec import load_spec, parse_spec
from synthgen.errors import ConfigError


@pytest.fixture(scope="module")
def adult_file(tmp_path_factory):
    import synthgen as sg

    path = tmp_path_factory.mktemp("data") / "adult_small.csv"
    sg.datasets.load("adult").sample(1200, random_state=0).to_csv(path, index=False)
    return path


def spec_text(adult_file, **overrides) -> str:
    base = {
        "name": "small",
        "seed": 0,
        "source": {"file": str(adult_file), "name": "adult_small"},
        "holdout": {"fraction": 0.25},
        "model": {"backend": "tabular_ar", "params": {"epochs": 2, "batch_size": 256}},
        "produce": {"rows": 500},
        "evaluate": {"target": "income", "sensitive": ["sex"]},
        "gates": {"min_fidelity": 0.5, "max_mia_auc": 0.9, "validation_must_pass": False},
        "export": {"name": "adult_small_synth", "tags": ["test"]},
    }
    base.update(overrides)
    return json.dumps(base)  # JSON is YAML


@pytest.fixture
def catalog(tmp_path):
    """The runner on SQLite (the catalog suite checks both databases behave the same)."""
    with Catalog(f"sqlite:///{tmp_path}/c.db", tmp_path / "store") as cat:
        yield cat


@pytest.fixture
def any_catalog(catalog_url, tmp_path):
    with Catalog(catalog_url, tmp_path / "store") as cat:
        yield cat


def test_job_end_to_end_exports_with_lineage_report_validation_and_run(catalog, adult_file):
    result = run_job(parse_spec(spec_text(adult_file)), catalog=catalog)
    assert result.status == "succeeded", result.error
    assert result.exit_code == 0
    assert list(result.stages) == [
        "load",
        "fit",
        "sample",
        "validate",
        "evaluate",
        "gate",
        "export",
    ]
    assert all(s["status"] in ("ok", "cached") for s in result.stages.values())
    shown = catalog.show("adult_small_synth")
    assert shown["row_count"] == 500 and shown["tags"] == ["test"]
    assert shown["parents"][0]["parent"] == "adult_small@1"
    assert shown["parents"][0]["relation"] == "sampled_from"
    assert shown["reports"] and "fidelity.overall" in shown["reports"][0]["scores"]
    assert len(shown["validations"]) == 1
    assert shown["models"][0]["backend"] == "TabularAR"
    (run,) = catalog.runs()
    assert run["status"] == "succeeded" and run["id"] == result.run_id
    assert set(run["stages"]) >= {"load", "fit", "sample", "validate", "evaluate", "gate", "export"}
    assert catalog.storage.exists(result.report_uri)


def test_second_run_reuses_the_model_and_the_version(catalog, adult_file):
    spec = parse_spec(spec_text(adult_file))
    first = run_job(spec, catalog=catalog)
    second = run_job(spec, catalog=catalog)
    assert second.stages["fit"]["status"] == "cached"
    assert second.model_id == first.model_id
    assert second.dataset.ref == first.dataset.ref  # same seed, same samples: one version
    assert second.dataset.digest == first.dataset.digest


def test_failed_gate_exports_nothing_and_names_the_gate(catalog, adult_file):
    gates = {"min_fidelity": 0.999, "validation_must_pass": False}
    result = run_job(parse_spec(spec_text(adult_file, gates=gates)), catalog=catalog)
    assert result.status == "gate_failed" and result.exit_code == 1
    (gate,) = result.failed_gates()
    assert gate.gate == "min_fidelity" and "off by" in gate.detail
    assert result.stages["export"]["status"] == "skipped"
    assert [d.name for d in catalog.list()] == ["adult_small"]  # only the source
    assert catalog.storage.exists(result.report_uri)  # the report is kept
    (run,) = catalog.runs()
    assert run["status"] == "gate_failed" and "min_fidelity" in run["error"]


def test_augmentation_job(catalog, adult_file):
    produce = {"augment": {"target": "income", "balance": True}}
    result = run_job(parse_spec(spec_text(adult_file, produce=produce)), catalog=catalog)
    assert result.status == "succeeded", result.error
    data = catalog.read("adult_small_synth")
    counts = data["income"].value_counts()
    assert counts.iloc[0] == counts.iloc[1]  # balanced
    assert data["is_synthetic"].sum() == result.stages["sample"]["rows"]
    assert "utility.aug_gain_roc_auc" in result.scores
    assert catalog.show("adult_small_synth")["parents"][0]["relation"] == "augmented_from"


def test_dp_job_charges_the_ledger_once(any_catalog, adult_file):
    catalog = any_catalog
    model = {"backend": "tabular_ar", "params": {"epochs": 1}, "dp": {"epsilon": 2.0}}
    gates = {"max_epsilon": 2.0, "validation_must_pass": False}
    spec = parse_spec(spec_text(adult_file, model=model, gates=gates))
    first = run_job(spec, catalog=catalog)  # the source has no budget yet: refused
    assert first.status == "failed" and "no privacy budget" in first.error
    assert first.stages["fit"]["status"] == "failed"
    catalog.set_budget("adult_small", 3.0)
    second = run_job(spec, catalog=catalog)
    assert second.status == "succeeded", second.error
    assert 0 < second.stages["fit"]["epsilon"] <= 2.0
    third = run_job(spec, catalog=catalog)  # cached: not trained or charged again
    assert third.stages["fit"]["status"] == "cached"
    charges = catalog.budget("adult_small")["charges"]
    assert [c["status"] for c in charges] == ["spent"]


def test_spec_errors_name_the_field_and_line(tmp_path, adult_file):
    path = tmp_path / "bad.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            name: bad
            source:
              file: {adult_file}
            model:
              backend: tvea
            produce:
              rows: 0
            gates:
              min_fidelty: 0.9
            export: {{name: out}}
            """
        )
    )
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    message = str(info.value)
    assert "line 5: model.backend: unknown backend 'tvea'" in message
    assert "line 7: produce.rows" in message
    assert "gates.min_fidelty: unknown field" in message
    for text, needle in [
        ("name: x\nexport: {name: y}\n", "source: required field is missing"),
        ("name: x\nsource: {file: a.csv, bundled: adult}\nexport: {name: y}\n", "exactly one"),
        ("name: [\n", "not valid YAML"),
        ("- a\n- b\n", "YAML mapping"),
        ("name: x\nsource: {bundled: adult}\nexport: {name: ../y}\n", "not valid"),
        (
            "name: x\nsource: {bundled: adult}\nexport: {name: y}\n"
            "produce: {augment: {target: income, balance: true}}\n"
            "gates: {max_bias_gap_widening: 0.1}\n",
            "augmentation job",
        ),
        ("name: x\nsource: {bundled: adult}\nexport: {name: y}\ngates: {max_epsilon: 1}\n",
         "needs model.dp"),
    ]:  # fmt: skip
        with pytest.raises(ConfigError, match=needle):
            parse_spec(text)
    with pytest.raises(ConfigError, match="does not exist"):
        load_spec(tmp_path / "missing.yaml")


def test_bad_model_params_fail_the_run_cleanly(catalog, adult_file):
    model = {"backend": "tabular_ar", "params": {"epochz": 3}}
    result = run_job(parse_spec(spec_text(adult_file, model=model)), catalog=catalog)
    assert result.status == "failed" and result.exit_code == 2
    assert "does not take ['epochz']" in result.error
    assert catalog.runs()[0]["status"] == "failed"


def test_bias_widening():
    scores = {
        "bias.sex.target_gap_real": 0.20,
        "bias.sex.target_gap_synthetic": 0.25,
        "bias.sex.dp_diff_trtr": 0.10,
        "bias.sex.dp_diff_tstr": 0.18,
    }
    assert bias_widening(scores) == pytest.approx(0.08)
    assert bias_widening({}) != bias_widening({})  # NaN: not measured


def test_every_example_spec_is_valid():
    from pathlib import Path

    examples = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))
    assert {p.stem for p in examples} >= {
        "adult_augment", "credit_default_dp", "adult_tabddpm", "adult_nightly"
    }  # fmt: skip
    for path in examples:
        spec = load_spec(path)
        assert spec.export.name
    assert load_spec(examples[0].parent / "adult_nightly.yaml").schedule.cron == "0 2 * * *"


def test_sql_source(catalog, adult_file, tmp_path):
    import pandas as pd
    from sqlalchemy import create_engine

    url = f"sqlite:///{tmp_path}/warehouse.db"
    engine = create_engine(url)
    pd.read_csv(adult_file).to_sql("people", engine, index=False)
    engine.dispose()
    source = {"sql": {"url": url, "query": "SELECT * FROM people WHERE age >= 18"},
              "name": "people_adults"}  # fmt: skip
    result = run_job(parse_spec(spec_text(adult_file, source=source)), catalog=catalog)
    assert result.status == "succeeded", result.error
    assert catalog.get("people_adults").row_count == int(
        (pd.read_csv(adult_file)["age"] >= 18).sum()
    )
    bad = {"sql": {"url": url, "query": "SELECT * FROM nowhere"}, "name": "x"}
    failed = run_job(parse_spec(spec_text(adult_file, source=bad)), catalog=catalog)
    assert failed.status == "failed" and "source.sql.query failed" in failed.error

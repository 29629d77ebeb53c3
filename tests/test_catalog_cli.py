"""``synthgen export`` / ``synthgen catalog ...`` / ``synthgen fit --from`` end to end."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()


@pytest.fixture
def env(catalog_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHGEN_CATALOG_URL", catalog_url)
    monkeypatch.setenv("SYNTHGEN_STORAGE", str(tmp_path / "store"))
    import synthgen as sg

    real = sg.datasets.load("adult").sample(800, random_state=0).reset_index(drop=True)
    real.to_csv(tmp_path / "adult.csv", index=False)
    real.sample(300, random_state=1).to_parquet(tmp_path / "syn.parquet")
    real.sample(300, random_state=2).to_parquet(tmp_path / "syn2.parquet")
    return tmp_path


def cli(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def as_json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_export_list_show_lineage_json(env):
    cli("export", env / "adult.csv", "--name", "adult", "--tag", "real")
    first = as_json(cli("export", env / "syn.parquet", "--name", "adult_synth", "--from", "adult",
                        "--json"))  # fmt: skip
    assert first["created"] and first["version"] == 1
    again = as_json(cli("export", env / "syn.parquet", "--name", "adult_synth", "--from", "adult",
                        "--json"))  # fmt: skip
    assert not again["created"] and again["version"] == 1  # identical content: one version
    as_json(
        cli("export", env / "syn2.parquet", "--name", "adult_synth", "--from", "adult", "--json")
    )
    listed = as_json(cli("catalog", "list", "--json"))
    assert [(d["name"], d["version"]) for d in listed] == [
        ("adult", 1), ("adult_synth", 1), ("adult_synth", 2)
    ]  # fmt: skip
    for entry in listed:
        assert {"name", "version", "digest", "uri", "format", "row_count", "created_at"} <= set(
            entry
        )
    assert listed[0]["row_count"] == 800 and listed[0]["tags"] == ["real"]
    shown = as_json(cli("catalog", "show", "adult_synth@1", "--json"))
    assert shown["parents"][0]["parent"] == "adult@1"
    graph = as_json(cli("catalog", "lineage", "adult", "--json"))
    assert {e["child"] for e in graph["downstream"]} == {"adult_synth@1", "adult_synth@2"}
    events = as_json(cli("catalog", "lineage", "adult_synth", "--openlineage"))
    assert events[0]["inputs"][0]["name"] == "adult"
    human = cli("catalog", "list")
    assert human.exit_code == 0 and "adult_synth@2" in human.stdout


def test_budget_and_fit_from_catalog_charges_it(env):
    cli("export", env / "adult.csv", "--name", "adult")
    result = cli("fit", "--from", "adult", "--backend", "tabular_ar", "--epochs", "1",
                 "--epsilon", "1", "--out", env / "m.synth")  # fmt: skip
    assert result.exit_code == 2 and "no privacy budget" in result.stderr
    budget = as_json(cli("catalog", "budget", "adult", "--set", "1.5", "--json"))
    assert budget["epsilon"] == 1.5 and budget["charges"] == []
    result = cli("fit", "--from", "adult", "--backend", "tabular_ar", "--epochs", "1",
                 "--epsilon", "1", "--out", env / "m.synth")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (env / "m.synth").is_file()
    budget = as_json(cli("catalog", "budget", "adult", "--json"))
    (charge,) = budget["charges"]
    assert charge["status"] == "spent" and 0 < charge["epsilon"] <= 1.0
    # The second run does not fit in what is left: refused before any training.
    result = cli("fit", "--from", "adult", "--backend", "tabular_ar", "--epochs", "1",
                 "--epsilon", "1", "--out", env / "m2.synth")  # fmt: skip
    assert result.exit_code == 2 and "remain of the total" in result.stderr
    assert not (env / "m2.synth").exists()
    assert len(as_json(cli("catalog", "budget", "adult", "--json"))["charges"]) == 1


def test_bad_input_is_one_line_exit_2(env):
    cases = [
        (["catalog", "show", "nope"], "not in the catalog"),
        (["catalog", "show", "adult@x"], "positive integer"),
        (["export", env / "missing.csv", "--name", "a"], "missing.csv"),
        (["export", env / "syn.parquet", "--name", "../x"], "not valid"),
        (["export", env / "syn.parquet", "--name", "a", "--from", "ghost"], "not in the catalog"),
        (["export", env / "syn.parquet", "--name", "a", "--relation", "x"], "--relation"),
        (["catalog", "budget", "adult", "--delta", "1e-6"], "--delta needs --set"),
        (["catalog", "gc", "--min-age", "-1"], ">= 0"),
        (["fit", "--out", env / "m.synth"], "one of them"),
        (["catalog", "list", "--catalog", "mysql://x@y/z"], "sqlite or postgresql"),
    ]
    for args, needle in cases:
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.stderr.splitlines() if line]
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, result.stderr)
        assert needle in lines[0], (args, lines[0])
    assert as_json(cli("catalog", "list", "--json")) == []  # nothing was written


def test_export_with_a_failing_validation_result_stores_nothing(env):
    (env / "bad.json").write_text(json.dumps({"success": False, "failures": ["column 'age'"]}))
    result = cli("export", env / "syn.parquet", "--name", "s", "--validation", env / "bad.json")
    assert result.exit_code == 1 and "validation failed" in result.stderr
    (env / "good.json").write_text(json.dumps({"success": True, "failures": []}))
    result = cli("export", env / "syn.parquet", "--name", "s", "--validation", env / "good.json",
                 "--json")  # fmt: skip
    assert as_json(result)["version"] == 1
    shown = as_json(cli("catalog", "show", "s", "--json"))
    assert shown["validations"][0]["success"] is True
    assert pd.read_parquet(shown["uri"]).shape == (300, 15)


def test_gc_and_runs_json(env):
    assert as_json(cli("catalog", "gc", "--min-age", "0", "--json")) == {
        "removed": [],
        "dry_run": False,
    }
    assert as_json(cli("catalog", "runs", "--json")) == []


def test_export_with_suite_is_gated_by_great_expectations(env):
    import synthgen as sg
    from pipelines.validation import derive_suite, save_suite

    real = pd.read_csv(env / "adult.csv")
    save_suite(derive_suite(real, sg.Schema.infer(real)), env / "suite.json")
    bad = pd.read_parquet(env / "syn.parquet").reset_index(drop=True)
    bad.loc[0, "age"] = 500
    bad.to_parquet(env / "bad.parquet")
    result = cli("export", env / "bad.parquet", "--name", "s", "--suite", env / "suite.json")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert "column 'age'" in line and "500" in line
    assert as_json(cli("catalog", "list", "--json")) == []
    result = cli("export", env / "syn.parquet", "--name", "s", "--suite", env / "suite.json",
                 "--json")  # fmt: skip
    assert as_json(result)["created"]
    (validation,) = as_json(cli("catalog", "show", "s", "--json"))["validations"]
    assert validation["success"] is True and validation["failures"] == []

"""The command line: demo, fit, sample, and one-line errors for bad input."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()


def test_demo_runs_the_main_job_into_the_catalog(tmp_path, adult):
    out = tmp_path / "synthetic.csv"
    url = f"sqlite:///{tmp_path}/demo.db"
    result = runner.invoke(
        app, ["demo", "--epochs", "2", "--rows", "500", "--out", str(out), "--catalog", url]
    )
    assert result.exit_code == 0, result.output
    assert "fidelity.overall" in result.output and "utility.tstr_roc_auc" in result.output
    assert "catalog entry: adult_synthetic@1" in result.output
    frame = pd.read_csv(out)
    assert list(frame.columns) == list(adult.columns) and len(frame) == 500
    from pipelines.catalog import Catalog

    with Catalog(url) as catalog:
        shown = catalog.show("adult_synthetic")
        assert shown["parents"][0]["parent"] == "adult@1"
        assert shown["reports"] and shown["validations"][0]["success"]
        (run,) = catalog.runs()
        assert run["status"] == "succeeded"


def test_fit_then_sample_csv_and_parquet(tmp_path, adult_small):
    data = tmp_path / "train.csv"
    adult_small.to_csv(data, index=False)
    model = tmp_path / "m.synth"
    result = runner.invoke(app, ["fit", str(data), "--epochs", "1", "--out", str(model)])
    assert result.exit_code == 0, result.output
    for name in ("syn.parquet", "syn.csv"):
        out = tmp_path / name
        result = runner.invoke(app, ["sample", str(model), "-n", "123", "--out", str(out)])
        assert result.exit_code == 0, result.output
        frame = pd.read_parquet(out) if name.endswith(".parquet") else pd.read_csv(out)
        assert len(frame) == 123 and list(frame.columns) == list(adult_small.columns)


def test_errors_are_one_line_with_exit_code_2(tmp_path):
    bad = tmp_path / "data.xlsx"
    bad.write_text("nope")
    result = runner.invoke(app, ["fit", str(bad), "--out", str(tmp_path / "m.synth")])
    assert result.exit_code == 2
    assert "unsupported file type" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["sample", str(bad), "-n", "5"])
    assert result.exit_code == 2 and "data.xlsx" in result.stderr and "model" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    csv = tmp_path / "d.csv"
    pd.DataFrame({"a": [1.0, 2.0]}).to_csv(csv, index=False)
    result = runner.invoke(app, ["fit", str(csv), "--backend", "gpt", "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "unknown backend 'gpt'" in result.output
    assert not (tmp_path / "m").exists()


def test_sample_does_not_leave_partial_files(tmp_path, adult_small):
    data = tmp_path / "train.parquet"
    adult_small.to_parquet(data)
    model = tmp_path / "m.synth"
    assert (
        runner.invoke(app, ["fit", str(data), "--epochs", "1", "--out", str(model)]).exit_code == 0
    )
    result = runner.invoke(app, ["sample", str(model), "-n", "5", "--out", str(tmp_path / "x.txt")])
    assert result.exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.synth", "train.parquet"]


def test_fit_tabddpm_with_steps_and_target(tmp_path, adult_small):
    data = tmp_path / "train.csv"
    adult_small.head(600).to_csv(data, index=False)
    model = tmp_path / "m.synth"
    args = ["fit", str(data), "--backend", "tabddpm", "--steps", "3", "--target", "income"]
    result = runner.invoke(app, [*args, "--out", str(model)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "syn.csv"
    result = runner.invoke(app, ["sample", str(model), "-n", "20", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out)) == 20


def test_fit_rejects_options_the_backend_does_not_take(tmp_path, adult_small):
    data = tmp_path / "train.csv"
    adult_small.head(100).to_csv(data, index=False)
    model = tmp_path / "m.synth"
    args = ["fit", str(data), "--backend", "tvae", "--steps", "3", "--out", str(model)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "does not take --steps" in result.output
    assert not model.exists()


def test_fit_points_image_backends_at_image_jobs(tmp_path, adult_small):
    data = tmp_path / "train.csv"
    adult_small.head(20).to_csv(data, index=False)
    model = tmp_path / "m.synth"
    result = runner.invoke(app, ["fit", str(data), "--backend", "image_ddpm", "--out", str(model)])
    assert result.exit_code == 2 and "image backend" in result.output
    assert "synthgen run" in result.output and not model.exists()
    result = runner.invoke(app, ["fit", str(data), "--backend", "nope", "--out", str(model)])
    assert result.exit_code == 2 and "image_vae" not in result.output

"""``synthgen evaluate``: files in, report out; bad files exit 2 without a traceback."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from pipelines.evaluate_cmd import register
from synthgen import datasets


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:  # a second command keeps typer in multi-command mode
        """Nothing."""

    return app


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    df = datasets.load("adult").sample(1500, random_state=0).reset_index(drop=True)
    df.iloc[:500].to_csv(d / "train.csv", index=False)
    df.iloc[500:1000].to_parquet(d / "syn.parquet", index=False)
    df.iloc[1000:].to_csv(d / "test.csv", index=False)
    return d


def test_writes_json_and_html(app, files):
    runner = CliRunner()
    args = [
        "evaluate",
        "--real",
        str(files / "train.csv"),
        "--synthetic",
        str(files / "syn.parquet"),
        "--holdout",
        str(files / "test.csv"),
        "--target",
        "income",
        "--sensitive",
        "sex,race",
    ]
    out = files / "report.json"
    res = runner.invoke(app, [*args, "--out", str(out), "--metrics", "fidelity,bias,privacy"])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["format"] == "synthgen.evaluation"
    assert "privacy.dcr_share" in data["scores"] and "bias.sex.share_max_diff" in data["scores"]
    html_out = files / "report.html"
    res = runner.invoke(app, [*args, "--out", str(html_out), "--metrics", "fidelity"])
    assert res.exit_code == 0, res.output
    assert 'id="scorecard"' in html_out.read_text()


@pytest.mark.parametrize("case", ["missing", "garbage_parquet", "bad_ext", "bad_target", "bad_out"])
def test_bad_input_exits_2_with_one_line(app, files, case):
    real, syn, out = files / "train.csv", files / "syn.parquet", files / "r.html"
    target = "income"
    if case == "missing":
        syn = files / "nope.parquet"
    elif case == "garbage_parquet":
        syn = files / "garbage.parquet"
        syn.write_bytes(b"this is not parquet")
    elif case == "bad_ext":
        syn = files / "syn.xlsx"
        syn.write_bytes(b"x")
    elif case == "bad_target":
        target = "salary"
    else:
        out = files / "r.pdf"
    res = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--real",
            str(real),
            "--synthetic",
            str(syn),
            "--target",
            target,
            "--out",
            str(out),
            "--metrics",
            "fidelity",
        ],
    )
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert "error:" in res.output

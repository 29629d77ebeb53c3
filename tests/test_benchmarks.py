"""Smoke test of the benchmark harness: a tiny run end to end, then the shape of its output.

It proves the harness runs and every column of the table is filled with a plausible
value; it asserts nothing about speed (timings belong to recorded benchmark runs).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest

# ``benchmarks`` is a folder of the repository, not part of the installed distribution.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import datasets  # noqa: E402
from benchmarks.harness import BenchmarkConfig, run  # noqa: E402
from benchmarks.metrics import seconds_per_million_cells  # noqa: E402
from benchmarks.report import NOT_APPLICABLE, ratios, to_markdown  # noqa: E402
from benchmarks.run import main  # noqa: E402

DATA_DIR = Path(
    os.environ.get(datasets.DATASETS_ENV) or datasets.REPO_ROOT.parent / "shared" / "datasets"
)

needs_data = pytest.mark.skipif(
    not (DATA_DIR / "adult.csv").is_file(),
    reason=f"shared datasets not found at {DATA_DIR} (set {datasets.DATASETS_ENV})",
)


def _markdown_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """Header and body cells of the first Markdown table in ``text``."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header, body = cells[0], []
    for row in cells[2:]:
        if row == cells[0] or set(row[0]) <= {"-"}:
            break
        if len(row) != len(header):
            break
        body.append(row)
    return header, body


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bench")
    config = BenchmarkConfig(
        backends=["tvae", "tabular_ar", "sdv:gaussiancopula"],
        datasets=["adult"],
        out=str(out),
        epochs=2,
        batch_size=500,
        seed=0,
        data_dir=str(DATA_DIR),
        quality_rows=1_000,
        sample_rows=2_000,
        max_rows=2_000,
        utility=True,
        threads=1,
    )
    payload = run(config, echo=lambda _msg: None)
    return payload, out


@needs_data
def test_json_has_plausible_values(smoke_run: tuple[dict, Path]) -> None:
    _, out = smoke_run
    payload = json.loads((out / "results.json").read_text())
    info = payload["datasets"]["adult"]
    assert info["train_rows"] == 1_600
    assert info["holdout_rows"] == 400
    assert info["quality_rows"] == 1_000
    assert info["floor_rows"] == 400  # k = min(--quality-rows, holdout rows)
    assert 0 < info["floor"] <= 1
    # real unseen rows rarely equal a training row in Adult, but never more than all
    assert 0 <= info["holdout_copies"] < 0.5
    by_backend = {r["backend"]: r for r in payload["results"]}
    assert set(by_backend) == {"tvae", "tabular_ar", "sdv:gaussiancopula"}
    for name, r in by_backend.items():
        assert r["status"] == "ok", r.get("error")
        assert 0 <= r["preprocessing_s"] <= r["fit_s"], name  # a part of the fit
        assert r["fit_cpu_s"] > 0
        assert r["sampling_rows_per_s"] > 0
        assert 50 < r["peak_rss_mb"] < 64_000
        assert 0 <= r["rss_increase_mb"] <= r["peak_rss_mb"]
        for key in ("quality", "column_shapes", "pair_trends"):
            assert 0 < r[key] <= 1, (name, key)
        assert math.isclose(r["quality"], (r["column_shapes"] + r["pair_trends"]) / 2, abs_tol=1e-9)
        for key in ("tstr_f1", "tstr_roc_auc", "trtr_f1", "trtr_roc_auc"):
            assert 0 <= r[key] <= 1, (name, key)
        assert r["trtr_roc_auc"] > 0.75  # real data predicts income well; anything less is a bug
        # size and cost per cell
        assert r["columns"] == 15
        assert r["cells"] == 1_600 * 15
        assert r["s_per_m_cells"] == pytest.approx(r["fit_s"] / r["cells"] * 1e6)
        # memorisation on len(holdout) synthetic rows
        assert r["dcr_rows"] == 400
        assert 0 <= r["dcr_share"] <= 1, name
        assert 0 <= r["exact_copies"] <= 1, name
        # the per-dataset references are copied unchanged into every row
        assert r["floor"] == info["floor"] and r["holdout_copies"] == info["holdout_copies"]
        assert r["quality_k_rows"] == 400
        assert 0 < r["quality_at_k"] <= 1, name
        assert r["floor_gap"] == pytest.approx(r["floor"] - r["quality_at_k"])
    # k real rows against k other real rows: no two-epoch generator gets that close
    assert by_backend["tvae"]["floor_gap"] > 0
    assert by_backend["tvae"]["epochs"] == 2
    assert by_backend["tabular_ar"]["epochs"] == 2
    assert {r["torch_threads"] for r in by_backend.values()} == {1}
    assert by_backend["tvae"]["seconds_per_epoch"] > 0
    ar = by_backend["tabular_ar"]
    assert isinstance(ar["tokens_per_row"], int) and ar["row_encoding"] == "tokens"
    assert ar["tokens_per_row"] >= 15  # at least one token per column
    tvae = by_backend["tvae"]
    # one-hot categories and mode-specific numbers: wider than one float per column
    assert tvae["row_encoding"] == "floats" and tvae["tokens_per_row"] > 15
    assert by_backend["sdv:gaussiancopula"]["epochs"] is None
    assert by_backend["sdv:gaussiancopula"]["seconds_per_epoch"] is None
    assert by_backend["sdv:gaussiancopula"]["tokens_per_row"] is None
    assert payload["machine"]["cpu_model"]
    assert payload["ratios"] == []  # no SDV model of the same name as ours in this run


@needs_data
def test_markdown_table_is_filled(smoke_run: tuple[dict, Path]) -> None:
    _, out = smoke_run
    text = (out / "results.md").read_text()
    header, body = _markdown_rows(text)
    assert header[:4] == ["dataset", "backend", "epochs", "tokens / row"]
    assert {
        "quality",
        "pair trends",
        "TSTR F1",
        "TRTR AUC",
        "peak RSS (MB)",
        "cells",
        "s / M cells",
        "quality @k",
        "floor",
        "floor - quality @k",
        "DCR share",
        "exact copies",
        "holdout copies",
    } <= set(header)
    assert len(body) == 3
    for row in body:
        for column, cell in zip(header, row, strict=True):
            assert cell, (row[1], column)
            if cell == NOT_APPLICABLE:
                # Only a model without epochs or an encoding may leave those columns empty.
                assert row[1] == "sdv:gaussiancopula" and column in (
                    "epochs",
                    "s / epoch",
                    "tokens / row",
                )
            elif column not in ("dataset", "backend"):
                float(cell.replace(",", ""))
    cells = {row[1]: dict(zip(header, row, strict=True)) for row in body}
    assert cells["tvae"]["cells"] == "24,000"
    assert "real-data floor" in text and "k=400" in text


def test_seconds_per_million_cells() -> None:
    # 12 s on 1,000 rows x 20 columns = 20,000 cells -> 600 s per million cells
    assert seconds_per_million_cells(12.0, 1_000, 20) == pytest.approx(600.0)
    # the same fit time on a table twice as wide costs half as much per cell
    assert seconds_per_million_cells(12.0, 1_000, 40) == pytest.approx(300.0)
    assert seconds_per_million_cells(1.0, 0, 5) is None


def test_dataset_spec_needs_target_and_task_together() -> None:
    with pytest.raises(ValueError, match="both target and task"):
        datasets.DatasetSpec("x", "x.csv", target="y")
    assert not datasets.get_spec("msq").has_target
    assert datasets.get_spec("adult").has_target


@pytest.mark.skipif(not (DATA_DIR / "msq.csv").is_file(), reason=f"msq.csv not found in {DATA_DIR}")
def test_msq_loads_without_a_label() -> None:
    spec = datasets.get_spec("msq")
    assert spec.target is None and spec.task is None
    frame = datasets.load("msq", DATA_DIR)
    assert frame.shape == (3_896, 92)
    assert int(frame.isna().sum().sum()) == 20_924  # the missing cells SOURCES.md records


@pytest.mark.skipif(not (DATA_DIR / "msq.csv").is_file(), reason=f"msq.csv not found in {DATA_DIR}")
def test_no_target_dataset_runs_with_utility(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A narrow slice of msq (its missing cells included), registered like msq itself
    # (no target, no task): SDMetrics on all 92 columns would take minutes here.
    frame = datasets.load("msq", DATA_DIR)
    narrow = frame[[*frame.columns[:6], "scale"]]
    (tmp_path / "data").mkdir()
    narrow.to_csv(tmp_path / "data" / "msq_narrow.csv", index=False)
    monkeypatch.setitem(
        datasets.DATASETS, "msq_narrow", datasets.DatasetSpec("msq_narrow", "msq_narrow.csv")
    )
    config = BenchmarkConfig(
        backends=["tvae"],
        datasets=["msq_narrow"],
        out=str(tmp_path / "out"),
        epochs=1,
        batch_size=100,
        data_dir=str(tmp_path / "data"),
        quality_rows=200,
        sample_rows=200,
        max_rows=300,
        utility=True,
        threads=1,
    )
    payload = run(config, echo=lambda _msg: None)
    info = payload["datasets"]["msq_narrow"]
    assert info["target"] is None and info["task"] is None
    assert (info["train_rows"], info["holdout_rows"], info["floor_rows"]) == (240, 60, 60)
    (r,) = payload["results"]
    assert r["status"] == "ok", r.get("error")
    assert not [key for key in r if key.startswith(("tstr_", "trtr_"))]
    assert r["cells"] == 240 * 7
    assert 0 <= r["dcr_share"] <= 1 and r["dcr_rows"] == 60
    assert 0 < r["floor"] <= 1 and 0 < r["quality_at_k"] <= 1
    text = (tmp_path / "out" / "results.md").read_text()
    header, body = _markdown_rows(text)
    assert "DCR share" in header and "TSTR F1" not in header
    assert "no label" in text


def test_ratios_and_markdown_compare_same_named_models() -> None:
    base = {"status": "ok", "dataset": "adult", "epochs": 300, "sampling_rows_per_s": 1e4}
    results = [
        {
            **base,
            "backend": "tvae",
            "fit_s": 100.0,
            "fit_cpu_s": 150.0,
            "preprocessing_s": 1.0,
            "seconds_per_epoch": 0.33,
            "quality": 0.85,
        },
        {
            **base,
            "backend": "sdv:tvae",
            "fit_s": 400.0,
            "fit_cpu_s": 600.0,
            "preprocessing_s": 20.0,
            "seconds_per_epoch": 1.27,
            "quality": 0.80,
            "sampling_rows_per_s": 5e3,
        },
        {"status": "error", "dataset": "adult", "backend": "sdv:ctgan", "error": "boom"},
    ]
    (row,) = ratios(results)
    assert row["ours"] == "tvae" and row["sdv"] == "sdv:tvae"
    assert row["fit_ratio"] == pytest.approx(0.25)
    assert row["preprocessing_ratio"] == pytest.approx(0.05)
    assert row["quality_diff"] == pytest.approx(0.05)
    assert row["sampling_speedup"] == pytest.approx(2.0)
    payload = {
        "results": results,
        "config": {"command": "python -m benchmarks.run ...", "device": "cpu"},
        "started_utc": "t0",
        "finished_utc": "t1",
        "load_average_before": (1.0, 1.0, 1.0),
        "load_average_after": (1.0, 1.0, 1.0),
        "machine": {
            "cpu_model": "cpu",
            "usable_cores": 2,
            "memory_gb": 8,
            "torch_threads": 2,
            "versions": {"sdv": "2.0.0"},
            "git_commit": "abc",
        },
        "datasets": {"adult": {"train_rows": 10, "holdout_rows": 0, "quality_rows": 10}},
    }
    text = to_markdown(payload)
    assert "| adult | tvae / sdv:tvae | 0.250 | 0.250 | 0.050 |" in text
    assert "sdv:ctgan: boom" in text


def test_cli_rejects_unknown_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--backends", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown backend" in capsys.readouterr().err
    assert main(["--backends", "tvae", "--datasets", "mnist", "--out", str(tmp_path)]) == 2
    assert "unknown dataset" in capsys.readouterr().err


def test_dcr_share_counts_ties_as_one_half():
    """A generator that emits rows present in both references is a coin flip, not 0."""
    import pandas as pd

    from benchmarks.metrics import memorisation_scores
    from synthgen import Schema

    shared = pd.DataFrame({"a": [0, 1, 2, 3] * 25, "b": [1, 0, 1, 0] * 25})
    schema = Schema.infer(shared)
    scores = memorisation_scores(shared, shared.iloc[:40], shared.copy(), schema, seed=0)
    assert scores["dcr_ties"] == 1.0 and scores["dcr_share"] == 0.5
    copied = pd.DataFrame({"a": [5, 6, 7, 8] * 25, "b": [2, 3, 2, 3] * 25})
    train = pd.concat([shared.iloc[:50], copied.iloc[:50]], ignore_index=True)
    schema = Schema.infer(train)
    scores = memorisation_scores(train, copied.iloc[:40], shared, schema, seed=0)
    assert scores["dcr_share"] == 1.0 and scores["exact_copies"] == 1.0


def test_image_harness_writes_rows_with_every_score(tmp_path):
    from benchmarks import images

    out = tmp_path / "images.jsonl"
    images.main(
        ["--size", "8", "--budget", "1", "--per-class", "3", "--backends", "image_vae",
         "--threads", "1", "--out", str(out)]
    )  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["backend"] for r in rows] == ["real (holdout)", "shuffled pixels", "image_vae"]
    real, shuffled, vae = rows
    # the references bracket the scale: the holdout is near the floor, shuffled far off
    assert real["fid.image"] == real["fid.real_vs_real"]
    assert shuffled["fid.image"] > 10 * real["fid.image"]
    assert vae["images"] == 30 and vae["epochs"] >= 1 and vae["fit_seconds"] > 0
    assert vae["extractor"]["digest"] == real["extractor"]["digest"]
    table = images.markdown_table(out)
    assert table.count("\n") == 4 and "image_vae" in table

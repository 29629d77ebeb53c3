"""Smoke test of the sampling harness (benchmarks/sampling.py) at a tiny size."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks import sampling


def test_harness_times_sampling_and_the_cli_parquet_path(tmp_path, capsys):
    results = tmp_path / "sampling.jsonl"
    argv = ["--backends", "tabular_ar", "--rows", "400", "--out-rows", "1200", "--repeats", "1"]
    argv += ["--max-train-rows", "300", "--set", "tabular_ar.epochs=1", "--threads", "1"]
    records = sampling.main([*argv, "--results", str(results), "--work-dir", str(tmp_path)])

    (line,) = results.read_text().splitlines()
    record = json.loads(line)
    assert record == json.loads(json.dumps(records[0]))
    assert record["backend"] == "tabular_ar" and record["rows"] == 400
    assert record["fit_options"] == {"epochs": 1} and record["threads"] == 1
    assert record["in_memory"]["rows_per_s"] > 0 and len(record["in_memory"]["seconds"]) == 1
    parquet = record["parquet"]
    # the child's own high-water mark: at least the interpreter plus torch and pandas
    assert parquet["peak_rss_mb"] > 50 and parquet["file_mb"] > 0
    assert parquet["cli_seconds"] is not None and parquet["wall_seconds"] >= parquet["cli_seconds"]
    table = capsys.readouterr().out
    assert "| backend | rows/s (in memory) | rows/s (to Parquet) | peak RSS (MB)" in table
    assert "| tabular_ar |" in table
    # the Parquet file is removed once measured; nothing but the results is left
    assert not list(tmp_path.glob("*.parquet"))


def test_table_shows_seconds_per_million_rows():
    record = {
        "backend": "tabddpm",
        "in_memory": {"rows_per_s": 20_000.0},
        "parquet": {"rows_per_s": 10_000.0, "peak_rss_mb": 812.4},
        "load_before": 0.5,
        "load_after": 1.25,
    }
    row = sampling.markdown_table([record]).splitlines()[-1]
    assert row == "| tabddpm | 20,000 | 10,000 | 812 | 50.0 | 100.0 | 0.50 / 1.25 |"


def test_bad_arguments_say_what_is_expected():
    with pytest.raises(SystemExit, match=r"unknown backends \['gan'\]"):
        sampling.main(["--backends", "gan"])
    with pytest.raises(SystemExit, match="BACKEND.OPTION=JSON"):
        sampling.main(["--backends", "tvae", "--set", "epochs=1"])
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        sampling.main(["--backends", "tvae", "--model", "tvae.synth"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux's")
def test_peak_rss_is_the_childs_own_not_the_parents():
    """ru_maxrss of a vfork/exec'd child carries the parent's peak; VmHWM does not."""
    ballast = bytearray(200 * 2**20)
    ballast[::4096] = b"\1" * len(ballast[::4096])  # touch every page: resident
    code = "import sys; x = bytearray(40 * 2**20); x[::4096] = b'1' * len(x[::4096]); "
    code += "print('ready', flush=True); sys.stdin.read()"  # hold the memory until told
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        peak = sampling._peak_of(child.pid) / 2**20
    finally:
        child.communicate("")
    assert 40 <= peak < 150, peak
    assert len(ballast) == 200 * 2**20

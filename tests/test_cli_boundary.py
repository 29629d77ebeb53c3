"""The command line's boundary: every bad invocation prints ONE line on stderr and exits 2.

Each case also checks that no output (and no temporary file) is left behind, and that
outputs are refused before any training or sampling: a failed ``--out`` must never cost
a finished model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import pipelines.cli as cli
from pipelines.cli import app
from pipelines.tables import write_chunks
from synthgen.errors import DataError

runner = CliRunner()


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A folder with a tiny CSV, a tiny fitted model, a text file and a sub-folder."""
    d = tmp_path_factory.mktemp("cli_boundary")
    rng = np.random.default_rng(0)
    n = 80
    frame = pd.DataFrame(
        {"x": rng.normal(size=n), "k": rng.integers(0, 9, n), "c": rng.choice(["a", "b"], n)}
    )
    frame.to_csv(d / "data.csv", index=False)
    result = runner.invoke(
        app, ["fit", str(d / "data.csv"), "--epochs", "1", "--out", str(d / "m.synth")]
    )
    assert result.exit_code == 0, result.output
    (d / "notes.txt").write_text("not a model")
    (d / "folder").mkdir()
    return d


def _listing(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


LONG = "a-rather-long-folder-name-that-makes-the-message-wrap-at-eighty-columns/" * 3

# (case id, argv with {d} for the work folder, text the one line must contain)
BAD = [
    ("bad integer", ["sample", "{d}/m.synth", "-n", "abc"], "Invalid value for '-n' / '--rows'"),
    ("unknown option", ["fit", "{d}/data.csv", "--bogus"], "No such option: --bogus"),
    ("missing argument", ["fit"], "give the training table as DATA or a catalog dataset"),
    ("unknown command", ["fly"], "No such command"),
    ("input is a directory", ["fit", "{d}/folder.csv"], "is a directory"),
    ("input missing", ["fit", "{d}/nope.csv", "--out", "{d}/m2.synth"], "does not exist"),
    (
        "fit out missing folder",
        ["fit", "{d}/data.csv", "--out", "{d}/nodir/m.synth"],
        "folder '{d}/nodir' does not exist; create it first",
    ),
    (
        "fit out long missing folder",
        ["fit", "{d}/data.csv", "--out", "{d}/" + LONG + "m.synth"],
        "does not exist; create it first",
    ),
    (
        "fit out under a file",
        ["fit", "{d}/data.csv", "--out", "{d}/notes.txt/m.synth"],
        "is a file, not a folder",
    ),
    ("fit out is a directory", ["fit", "{d}/data.csv", "--out", "{d}/folder"], "is a directory"),
    (
        "sample out missing folder",
        ["sample", "{d}/m.synth", "--out", "{d}/nodir/s.parquet"],
        "does not exist; create it first",
    ),
    (
        "sample out is a directory",
        ["sample", "{d}/m.synth", "--out", "{d}/folder.csv"],
        "is a directory",
    ),
    (
        "sample out bad type",
        ["sample", "{d}/m.synth", "--out", "{d}/s.txt"],
        "unsupported file type",
    ),
    (
        "sample negative rows",
        ["sample", "{d}/m.synth", "-n", "-5", "--out", "{d}/s.csv"],
        "-n -5 must be at least 0",
    ),
    ("sample not a model", ["sample", "{d}/notes.txt", "--out", "{d}/s.csv"], "notes.txt"),
    ("sample a directory", ["sample", "{d}/folder", "--out", "{d}/s.csv"], "is a directory"),
    ("sample missing model", ["sample", "{d}/nope.synth", "--out", "{d}/s.csv"], "does not exist"),
    (
        "sample more than the disk holds",
        ["sample", "{d}/m.synth", "-n", "1000000000000", "--out", "{d}/s.parquet"],
        "free",
    ),
    ("demo out under a file", ["demo", "--out", "{d}/notes.txt/d.csv"], "is a file, not a folder"),
    ("demo out missing folder", ["demo", "--out", "{d}/nodir/d.csv"], "create it first"),
    (
        "demo negative rows",
        ["demo", "--rows", "-5", "--out", "{d}/d.csv"],
        "--rows -5 must be at least 0",
    ),
    ("demo bad integer", ["demo", "--epochs", "many"], "Invalid value for '--epochs'"),
    (
        "augment out missing folder",
        [
            "augment",
            "{d}/data.csv",
            "--model",
            "{d}/m.synth",
            "--target",
            "c",
            "--balance",
            "--out",
            "{d}/nodir/a.csv",
        ],
        "create it first",
    ),
    (
        "evaluate out missing folder",
        [
            "evaluate",
            "--real",
            "{d}/data.csv",
            "--synthetic",
            "{d}/data.csv",
            "--out",
            "{d}/nodir/r.html",
        ],
        "folder '{d}/nodir' does not exist; create it first",
    ),
    (
        "evaluate real is a directory",
        ["evaluate", "--real", "{d}/folder", "--synthetic", "{d}/data.csv", "--out", "{d}/r.html"],
        "is a directory",
    ),
]


@pytest.fixture(scope="module")
def dir_input(work) -> None:
    (work / "folder.csv").mkdir(exist_ok=True)  # a directory with a table's name


@pytest.mark.parametrize(("argv", "expected"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_invocation_is_one_line_exit_2_and_leaves_nothing(
    work, dir_input, argv, expected, monkeypatch
):
    # outputs are checked before work: any training here would be a failure
    def no_training(*args, **kwargs):
        raise AssertionError("fit ran although the command had to be refused first")

    monkeypatch.setattr("synthgen.backends.base.BaseGenerator.fit", no_training)
    before = _listing(work)
    args = [a.replace("{d}", str(work)) for a in argv]
    result = runner.invoke(app, args)
    lines = result.stderr.splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected.replace("{d}", str(work)) in lines[0]
    assert "Traceback" not in result.output
    assert _listing(work) == before  # no output, no temporary file, no new folder


def test_errors_are_one_line_in_a_real_process_without_a_terminal(work):
    """rich wrapped messages at 80 columns when stderr was not a terminal."""
    out = str(work / LONG / "m.synth")
    cases = [
        ["fit", str(work / "data.csv"), "--out", out],
        ["sample", str(work / "m.synth"), "-n", "abc"],
    ]
    env = {**os.environ, "SYNTHGEN_NO_PROGRESS": "1", "COLUMNS": "40"}
    for argv in cases:
        proc = subprocess.run(
            [sys.executable, "-c", "from pipelines.cli import main; main()", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_read_only_out_folder_is_refused_before_training(work, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = runner.invoke(
            app, ["fit", str(work / "data.csv"), "--out", str(locked / "m.synth")]
        )
    finally:
        locked.chmod(0o755)
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "not writable" in result.stderr and not any(locked.iterdir())


def test_help_goes_to_stdout_with_exit_0():
    result = runner.invoke(app, [])
    assert result.exit_code == 0 and "sample" in result.stdout and result.stderr == ""


@pytest.mark.parametrize("name", ["s.parquet", "s.csv", "s.csv.gz"])
def test_large_samples_are_streamed_in_chunks_reproducibly(work, tmp_path, monkeypatch, name):
    monkeypatch.setattr(cli, "SAMPLE_CHUNK_ROWS", 40)
    monkeypatch.setattr(cli, "PROBE_ROWS", 10)
    frames = []
    for run in ("a", "b"):
        folder = tmp_path / run
        folder.mkdir()
        out = folder / name
        result = runner.invoke(
            app, ["sample", str(work / "m.synth"), "-n", "130", "--out", str(out)]
        )
        assert result.exit_code == 0, result.output
        assert os.listdir(folder) == [name]  # no temporary file left next to it
        frames.append(pd.read_parquet(out) if name.endswith(".parquet") else pd.read_csv(out))
    assert len(frames[0]) == 130 and list(frames[0].columns) == ["x", "k", "c"]
    pd.testing.assert_frame_equal(frames[0], frames[1])  # same seed, same rows


def test_a_failing_chunk_leaves_no_partial_file(tmp_path):
    def chunks():
        yield pd.DataFrame({"x": [1.0, 2.0]})
        raise RuntimeError("generator failed half-way")

    for name in ("t.parquet", "t.csv"):
        with pytest.raises(RuntimeError, match="half-way"):
            write_chunks(chunks(), tmp_path / name)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="create it first"):
        write_chunks([pd.DataFrame({"x": [1.0]})], tmp_path / "nodir" / "t.csv")
    assert list(tmp_path.iterdir()) == []

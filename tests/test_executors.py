"""Executors: the same jobs give the same catalog whether they run in this process, in
spawned worker processes (``--jobs 2``) or as Ray tasks (``--executor ray``), including
a sampling request split into partitions that Ray generates on several workers."""

from __future__ import annotations

import importlib.util
import json
import pickle
import socket
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.catalog import Catalog
from pipelines.cli import app
from pipelines.jobs import runner
from pipelines.jobs.executors import run_many
from pipelines.jobs.spec import load_spec, parse_spec
from synthgen.errors import ConfigError

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install ray)")
#: Small enough that the 350-row job is really cut into 4 partitions (100, 100, 100, 50).
PARTITION_ROWS = 100
JOBS = {  # name: (seed, rows); distinct seeds, so no job reuses another's cached model
    "exe_a": (0, 300),
    "exe_b": (1, 350),
    "exe_c": (2, 300),
    "exe_d": (3, 300),
}
cli = CliRunner()


def job_text(csv: Path, name: str, seed: int, rows: int, **overrides: Any) -> str:
    spec = {
        "name": name,
        "seed": seed,
        "source": {"file": str(csv), "name": "adult600"},
        "model": {"backend": "tabular_ar", "params": {"epochs": 1, "batch_size": 256}},
        "produce": {"rows": rows},
        "evaluate": {"sections": ["fidelity"]},
        "gates": {"validation_must_pass": False},
        "export": {"name": f"{name}_out"},
    }
    spec.update(overrides)
    return json.dumps(spec)  # JSON is YAML


@pytest.fixture(scope="module")
def job_files(tmp_path_factory) -> list[Path]:
    import synthgen as sg

    folder = tmp_path_factory.mktemp("jobs")
    csv = folder / "adult600.csv"
    sg.datasets.load("adult").sample(600, random_state=0).to_csv(csv, index=False)
    paths = []
    for name, (seed, rows) in JOBS.items():
        path = folder / f"{name}.yaml"
        path.write_text(job_text(csv, name, seed, rows))
        paths.append(path)
    return paths


def catalog_contents(url: str) -> list[tuple[str, int, int, str]]:
    """What must not depend on the executor: every dataset version and its content."""
    with Catalog(url) as catalog:
        return sorted((d.name, d.version, d.row_count, d.digest) for d in catalog.list())


def run_cli(files: list[Path], url: str, *options: str) -> list[dict[str, Any]]:
    args = ["run", *map(str, files), "--catalog", url, "--json", *options]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def local_run(job_files, tmp_path_factory) -> tuple[list[dict[str, Any]], list[tuple]]:
    """The reference: the four jobs one after another in this process."""
    url = f"sqlite:///{tmp_path_factory.mktemp('local')}/catalog.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "PARTITION_ROWS", PARTITION_ROWS)
        results = run_cli(job_files, url, "--executor", "local")
    return results, catalog_contents(url)


def test_the_partitioned_job_is_really_split(monkeypatch):
    monkeypatch.setattr(runner, "PARTITION_ROWS", PARTITION_ROWS)
    plan = runner.partition_plan(350, JOBS["exe_b"][0])
    assert [rows for rows, _ in plan] == [100, 100, 100, 50]
    assert len({seed for _, seed in plan}) == 4
    assert plan == runner.partition_plan(350, JOBS["exe_b"][0])  # derived, not drawn


def test_local_run_exports_every_job(local_run):
    results, contents = local_run
    assert [r["name"] for r in results] == list(JOBS)
    assert all(r["status"] == "succeeded" for r in results), [r["error"] for r in results]
    rows = {name: row_count for name, _, row_count, _ in contents}
    assert rows == {"adult600": 600} | {f"{n}_out": r for n, (_, r) in JOBS.items()}


def test_local_jobs_in_spawned_processes_give_the_same_datasets(local_run, job_files, tmp_path):
    """--jobs 2: two spawned workers; the parent's partition size travels with each job."""
    url = f"sqlite:///{tmp_path}/spawned.db"
    files = job_files[:2]  # exe_a and the partitioned exe_b
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "PARTITION_ROWS", PARTITION_ROWS)
        results = run_cli(files, url, "--executor", "local", "--jobs", "2")
    assert [r["name"] for r in results] == ["exe_a", "exe_b"]
    assert [r["stages"]["sample"]["rows"] for r in results] == [300, 350]
    expected = [c for c in local_run[1] if c[0] in ("adult600", "exe_a_out", "exe_b_out")]
    assert catalog_contents(url) == expected


@needs_ray
@pytest.mark.slow  # about 40 s on 2 busy cores: Ray's start and its worker processes
def test_ray_executor_gives_the_same_catalog_as_local(local_run, job_files, tmp_path):
    """A local Ray instance started (and stopped) by ``run_on_ray``; exe_b's four
    partitions are sampled by Ray tasks in other processes."""
    import ray

    url = f"sqlite:///{tmp_path}/ray.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "PARTITION_ROWS", PARTITION_ROWS)
        results = run_cli(job_files, url, "--executor", "ray")
    assert not ray.is_initialized()  # it started Ray, so it shut it down
    assert [r["name"] for r in results] == list(JOBS)
    assert all(r["status"] == "succeeded" for r in results), [r["error"] for r in results]
    assert catalog_contents(url) == local_run[1]
    local_digests = [r["dataset"]["digest"] for r in local_run[0]]
    assert [r["dataset"]["digest"] for r in results] == local_digests


@pytest.fixture(scope="class")
def running_ray():
    """A Ray instance started by the caller, not by ``run_on_ray``."""
    from pipelines.jobs.ray_executor import WORKER_ENV, _import_ray

    ray = _import_ray()  # sets WORKER_ENV here too: no usage reporting
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": dict(WORKER_ENV)},
    )
    yield ray
    ray.shutdown()


@needs_ray
@pytest.mark.usefixtures("running_ray")
class TestOnRunningRay:
    """``run_on_ray`` uses a Ray the caller started as it is, and leaves it running."""

    def test_ray_partition_map_gives_the_frames_of_the_local_map(self, adult_small):
        import synthgen as sg
        from pipelines.jobs.ray_executor import RayPartitionMap

        model = sg.TabularAR(epochs=1, batch_size=256, seed=0).fit(adult_small.head(500))
        plan = [(120, 11), (80, 12), (100, 13)]
        local = runner.sample_partitions_locally(model, plan)
        remote = RayPartitionMap(cpus=1)(model, plan)
        assert len(remote) == len(plan)
        for mine, theirs in zip(local, remote, strict=True):
            pd.testing.assert_frame_equal(mine, theirs)
        assert not local[1].equals(local[2].head(80))  # the seeds really differ

    def test_a_job_no_node_can_hold_is_refused(self, job_files, tmp_path, running_ray):
        from pipelines.jobs.ray_executor import run_on_ray

        data = json.loads(job_files[0].read_text()) | {"resources": {"cpus": 64}}
        spec = parse_spec(json.dumps(data))
        with pytest.raises(ConfigError, match=r"cpus=64.*largest Ray node has 2 CPU"):
            run_on_ray([spec], catalog_url=f"sqlite:///{tmp_path}/c.db")
        assert running_ray.is_initialized()  # not ours to shut down


def test_without_ray_installed_the_error_says_how_to_install_it(job_files, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    with pytest.raises(ConfigError, match=r"pip install ray"):
        run_many([load_spec(job_files[0])], catalog_url=f"sqlite:///{tmp_path}/c.db",
                 executor="ray")  # fmt: skip


@needs_ray
def test_an_unreachable_address_names_it_and_what_to_check(job_files, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"sqlite:///{tmp_path}/c.db"
    args = ["run", str(job_files[0]), "--catalog", url, "--executor", "ray"]
    result = cli.invoke(app, [*args, "--address", f"127.0.0.1:{port}"])
    assert result.exit_code == 2, result.output  # one line, no traceback, within seconds
    assert f"127.0.0.1:{port}" in result.output and "ray start --head" in result.output
    spec = load_spec(job_files[0])
    with pytest.raises(ConfigError, match=r"'head-node' is not a Ray address.*HOST:PORT"):
        run_many([spec], catalog_url=url, executor="ray", address="head-node")


def test_address_is_only_for_ray_and_jobs_only_for_local(job_files, tmp_path):
    specs, url = [load_spec(job_files[0])], f"sqlite:///{tmp_path}/c.db"
    with pytest.raises(ConfigError, match=r"--address is for the ray executor"):
        run_many(specs, catalog_url=url, address="auto")
    with pytest.raises(ConfigError, match=r"--jobs is for the local executor.*resources"):
        run_many(specs, catalog_url=url, executor="ray", jobs=4)


def test_specs_and_results_survive_pickling(job_files, local_run, tmp_path):
    """Both executors ship specs to workers and results back by pickle."""
    spec = load_spec(job_files[0])
    assert pickle.loads(pickle.dumps(spec)) == spec
    url = f"sqlite:///{tmp_path}/c.db"
    from pipelines.jobs.runner import run_job

    result = run_job(spec, catalog_url=url)
    back = pickle.loads(pickle.dumps(result))
    assert back.to_dict() == result.to_dict() and back.dataset == result.dataset

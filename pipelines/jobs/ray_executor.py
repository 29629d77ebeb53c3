"""The ``ray`` executor: every job is a Ray task, and a large sampling request is spread
over several Ray tasks, one per partition.

Why it gives the same datasets as the local executor: the runner cuts a request into
the partitions of ``runner.partition_plan`` (rows and a seed per partition, derived from
the job seed), and ``model.sample(rows, seed=...)`` is reproducible on one kind of
device. Here each partition task loads the fitted model from its file bytes (the safe
model format: no pickle) and samples its (rows, seed); the frames come back in plan
order and the runner concatenates and exports them exactly as it does locally.

Where things run: a job task reserves ``spec.resources`` (cpus, gpus). While it waits
for its partitions Ray lends its CPUs to them, so CPU jobs cannot deadlock on their own
partitions. A GPU is not lent while a task waits, so a job that holds a GPU samples its
partitions itself, in order, on that GPU (the same rows; the fan-out is for CPU work).
"""

from __future__ import annotations

import os
import socket
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.jobs import runner
from pipelines.jobs.runner import JobResult, run_job, sample_partitions_locally
from pipelines.jobs.spec import JobSpec
from synthgen.errors import ConfigError

#: Set in the driver before Ray starts and in every worker: no usage reporting (no
#: network), no great-expectations analytics, no progress bars in worker logs.
WORKER_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "GX_ANALYTICS_ENABLED": "false",
    "SYNTHGEN_NO_PROGRESS": "1",
}
#: Seconds to wait for a TCP answer from ``--address`` before giving up (Ray itself
#: retries an unreachable address for minutes).
CONNECT_TIMEOUT_S = 5.0
#: Port of a Ray Client server (``ray://host``) when the address names none.
RAY_CLIENT_PORT = 10001


# ---------------------------------------------------------------------- tasks
def _load_model_bytes(blob: bytes, device: str) -> Any:
    """A model from the bytes of its file (``synthgen.load_model`` reads files only)."""
    import synthgen

    with tempfile.TemporaryDirectory(prefix="synthgen-ray-") as folder:
        path = Path(folder) / "model.synth"
        path.write_bytes(blob)
        return synthgen.load_model(path, device=device)


def _model_bytes(model: Any) -> bytes:
    with tempfile.TemporaryDirectory(prefix="synthgen-ray-") as folder:
        path = Path(folder) / "model.synth"
        model.save(str(path))
        return path.read_bytes()


def _sample_partition(blob: bytes, device: str, rows: int, seed: int) -> pd.DataFrame:
    """One partition of a sampling request, in a Ray worker."""
    return _load_model_bytes(blob, device).sample(rows, seed=seed)


def _device_of(model: Any) -> str:
    """The kind of device the fitted model samples on ("cpu", "cuda"): the same rows
    need the same kind of device in every partition."""
    device = getattr(model, "device_", None)
    return getattr(device, "type", None) or "cpu"


class RayPartitionMap:
    """A ``runner.PartitionMap`` that samples each partition in its own Ray task.

    Each task reserves what the job reserves (``cpus``, ``gpus``), so a partition
    samples on the kind of device the job fitted on. One partition, or a job holding a
    GPU (see the module docstring), is sampled here, in order.
    """

    def __init__(self, cpus: float = 1.0, gpus: float = 0.0) -> None:
        self.cpus = cpus
        self.gpus = gpus

    def __call__(self, model: Any, plan: list[tuple[int, int]]) -> list[pd.DataFrame]:
        import ray

        if len(plan) <= 1 or self.gpus > 0:
            return sample_partitions_locally(model, plan)
        blob = ray.put(_model_bytes(model))
        task = ray.remote(_sample_partition).options(num_cpus=self.cpus, num_gpus=self.gpus)
        device = _device_of(model)
        return ray.get([task.remote(blob, device, rows, seed) for rows, seed in plan])


def _run_job_task(spec: JobSpec, catalog_url: str, partition_rows: int) -> JobResult:
    """One job, in a Ray worker. ``partition_rows`` is the driver's
    ``runner.PARTITION_ROWS``, so the plan here is the plan there."""
    runner.PARTITION_ROWS = partition_rows
    partition_map = RayPartitionMap(spec.resources.cpus, spec.resources.gpus)
    return run_job(spec, catalog_url=catalog_url, partition_map=partition_map)


# ---------------------------------------------------------------------- the driver
def _import_ray() -> Any:
    for key, value in WORKER_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray, which is not installed here; install it with "
            "`pip install ray` (or use --executor local)"
        ) from None
    return ray


def _probe_target(ray: Any, address: str) -> tuple[str, int] | None:
    """(host, port) that must answer for ``address``; None when it cannot be told."""
    if address.startswith("ray://"):
        host, _, port = address.removeprefix("ray://").partition(":")
        return host, int(port) if port.isdigit() else RAY_CLIENT_PORT
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address_or_die
        except ImportError:  # private API moved: let ray.init find the cluster
            return None
        try:
            address = canonicalize_bootstrap_address_or_die("auto")
        except ConnectionError as exc:
            raise ConfigError(
                f"--address auto: no single running Ray cluster was found on this machine "
                f"({' '.join(str(exc).split())[:200]}); start one with `ray start --head` "
                "(and `ray start --address=HEAD:6379` on the other nodes), run synthgen on a "
                "node of it, or give --address HOST:PORT"
            ) from None
        except Exception:
            return None
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(
            f"--address {address!r} is not a Ray address; give HOST:PORT of the head node "
            "(the GCS port, 6379 by default), ray://HOST:10001, or auto"
        )
    return host.strip("[]"), int(port)


def _connect(ray: Any, address: str | None) -> bool:
    """Connect to ``address`` or start a local instance. True when this call initialised
    Ray here, so ``ray.shutdown()`` is ours to call (it stops a local instance and only
    disconnects from a cluster). A Ray the caller initialised is used as it is."""
    if ray.is_initialized():
        return False
    env = WORKER_ENV | {k: v for k, v in os.environ.items() if k.startswith("SYNTHGEN_")}
    runtime_env = {"env_vars": env}
    if address is None:
        ray.init(
            num_cpus=os.cpu_count() or 2,
            include_dashboard=False,
            ignore_reinit_error=True,
            log_to_driver=False,
            runtime_env=runtime_env,
        )
        return True
    target = _probe_target(ray, address)
    if target is not None:
        try:
            socket.create_connection(target, timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            raise ConfigError(
                f"--address {address!r}: cannot reach {target[0]}:{target[1]} ({exc}); check "
                "that `ray start --head` runs there, that the port is the one it printed "
                "(6379 by default) and that no firewall blocks it"
            ) from None
    try:
        ray.init(address=address, log_to_driver=False, runtime_env=runtime_env)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"--address {address!r}: could not connect to the Ray cluster "
            f"({' '.join(str(exc).split())[:300]}); check that the cluster runs the same Ray "
            "and Python versions as this machine"
        ) from None
    return True


def _absolute_catalog_url(url: str) -> str:
    """Workers run in other folders: a relative SQLite path is made absolute here."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        path = Path(parsed.database).expanduser()
        if not path.is_absolute():
            return parsed.set(database=str(path.resolve())).render_as_string(hide_password=False)
    return url


def _check_resources(ray: Any, specs: Sequence[JobSpec], cluster: bool, url: str) -> None:
    """A task no node can hold waits forever: refuse it on a local instance (nothing can
    be added), warn on a cluster (an autoscaler may add the node)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive", True)]
    most_cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    most_gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    for spec in specs:
        need = spec.resources
        if need.cpus <= most_cpus and need.gpus <= most_gpus:
            continue
        message = (
            f"job {spec.name!r} asks for resources cpus={need.cpus:g}, gpus={need.gpus:g} but "
            f"the largest Ray node has {most_cpus:g} CPU(s) and {most_gpus:g} GPU(s); lower "
            "resources in the spec or add a node that has them"
        )
        if not cluster:
            raise ConfigError(message)
        warnings.warn(message + " (the job waits until one joins)", stacklevel=3)
    if len(nodes) > 1 and url.startswith("sqlite"):
        warnings.warn(
            f"the catalog {url} is a SQLite file, but the Ray cluster has {len(nodes)} nodes: "
            "workers on other nodes cannot reach it; use a PostgreSQL catalog (--catalog "
            "postgresql+psycopg://...) and an fsspec storage root (SYNTHGEN_STORAGE=s3://...)",
            stacklevel=3,
        )


def _failed(spec: JobSpec, exc: BaseException) -> JobResult:
    """A job whose Ray task died (the runner records its own failures as results)."""
    text = " ".join(str(exc).split())[:500]
    if "ModuleNotFoundError" in text or "No module named" in text:
        text += "; install the same synthgen (and its dependencies) on every node of the cluster"
    return JobResult(name=spec.name, run_id=None, status="failed", error=f"ray task: {text}")


def run_on_ray(
    specs: Sequence[JobSpec], *, catalog_url: str, address: str | None = None
) -> list[JobResult]:
    """Run each job as a Ray task and return the results in the order of ``specs``.

    ``address`` None starts a local Ray instance (all this machine's CPUs) and shuts it
    down afterwards; ``"auto"``, ``HOST:PORT`` or ``ray://HOST:PORT`` connects to a
    running cluster (left running). The catalog database and its storage root must be
    reachable from every worker (docs/executors.md).
    """
    from pipelines.catalog import Catalog

    ray = _import_ray()
    url = _absolute_catalog_url(catalog_url)
    with Catalog(url):  # created and migrated once, its storage root fixed from here
        pass
    specs = [s.model_copy(update={"base_dir": str(Path(s.base_dir).resolve())}) for s in specs]
    started = _connect(ray, address)
    try:
        _check_resources(ray, specs, address is not None, url)
        task = ray.remote(_run_job_task)
        refs = [
            task.options(
                num_cpus=s.resources.cpus,
                num_gpus=s.resources.gpus,
                name=f"synthgen:{s.name}",
                max_retries=0,  # a rerun resumes from the cached model; Ray must not guess
            ).remote(s, url, runner.PARTITION_ROWS)
            for s in specs
        ]
        results = []
        for spec, ref in zip(specs, refs, strict=True):
            try:
                results.append(ray.get(ref))
            except ray.exceptions.RayError as exc:
                results.append(_failed(spec, exc))
        return results
    finally:
        if started:
            ray.shutdown()

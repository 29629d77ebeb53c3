"""Where jobs run: ``local`` (this process, or N worker processes) and ``ray``.

Each job opens its own catalog connection: the catalog serialises what must be serial
(versions, the ledger), so jobs can run side by side on one database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from pipelines.jobs import runner
from pipelines.jobs.runner import JobResult, run_job
from pipelines.jobs.spec import JobSpec
from synthgen.errors import ConfigError

EXECUTORS = ("local", "ray")


def _run_one(spec: JobSpec, catalog_url: str | None, partition_rows: int) -> JobResult:
    """One job in a spawned worker process. ``partition_rows`` is the parent's
    ``runner.PARTITION_ROWS``: a fresh interpreter would otherwise plan with the default."""
    runner.PARTITION_ROWS = partition_rows
    return run_job(spec, catalog_url=catalog_url)


def run_many(
    specs: Sequence[JobSpec],
    *,
    catalog_url: str | None = None,
    executor: str = "local",
    jobs: int = 1,
    address: str | None = None,
    reporter: Callable[[str], Any] | None = None,
) -> list[JobResult]:
    """Run the jobs and return their results in the order given."""
    from pipelines.catalog.database import resolve_url

    if executor not in EXECUTORS:
        raise ConfigError(f"--executor {executor!r} is not one of {', '.join(EXECUTORS)}")
    if address is not None and executor != "ray":
        raise ConfigError("--address is for the ray executor (--executor ray)")
    if jobs != 1 and executor == "ray":
        raise ConfigError(
            "--jobs is for the local executor; Ray runs as many jobs at once as the cluster "
            "has room for, from each spec's resources: {cpus, gpus}"
        )
    url = resolve_url(catalog_url)
    if executor == "ray":
        from pipelines.jobs.ray_executor import run_on_ray

        return run_on_ray(specs, catalog_url=url, address=address)
    if jobs == 1 or len(specs) == 1:
        return [
            run_job(s, catalog_url=url, reporter=reporter(s.name) if reporter else None)
            for s in specs
        ]
    import multiprocessing

    from pipelines.catalog import Catalog

    with Catalog(url):  # created and migrated once, before the workers race to do it
        pass
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(specs)), mp_context=context) as pool:
        futures = [pool.submit(_run_one, s, url, runner.PARTITION_ROWS) for s in specs]
        return [_result(s, f) for s, f in zip(specs, futures, strict=True)]


def _result(spec: JobSpec, future: Future[JobResult]) -> JobResult:
    """The worker's result; a worker that died (killed, out of memory) fails its job only
    (the runner records every other failure in the result itself)."""
    try:
        return future.result()
    except Exception as exc:
        error = f"worker process: {type(exc).__name__}: {' '.join(str(exc).split())[:400]}"
        return JobResult(name=spec.name, run_id=None, status="failed", error=error)

"""Thread limits for the scikit-learn models of the evaluation.

HistGradientBoosting parallelises with OpenMP, whose barriers degrade badly when the
cores are shared with other work: on a busy 2-core machine a 100-iteration fit on
Adult took 36-78 s with 2 threads and 2 s with one. The models' results do not depend
on the thread count, so the evaluation defaults to one thread (``n_jobs=1``) and lets
callers on a dedicated machine ask for more (``n_jobs=None`` = all cores).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from threadpoolctl import threadpool_limits


def model_threads(n_jobs: int | None) -> AbstractContextManager:
    """Context that caps OpenMP/BLAS threads at ``n_jobs`` (None = no cap)."""
    if n_jobs is None:
        return nullcontext()
    return threadpool_limits(limits=max(1, int(n_jobs)))

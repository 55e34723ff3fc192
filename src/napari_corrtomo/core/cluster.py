"""Where dask work runs: the local threaded scheduler, a local cluster, or an existing one.

``dask_client(scheduler=..., workers=...)`` is the one entry point the CLI and the
pipelines use; core functions stay scheduler-agnostic (they build lazy dask arrays,
and :func:`napari_corrtomo.core.backend.compute` or the resumable writer runs them).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from ._errors import SettingError
from .backend import ENV_MEMORY, format_bytes, parse_bytes

#: Share of a worker's memory limit that one block may plan to use (the rest: dask's own
#: bookkeeping, the block's output waiting to be written, the Python heap).
BUDGET_FRACTION = 0.6


#: Least memory a worker process may be given: below it a dask worker cannot hold its own
#: interpreter and one block, and the nanny restarts it over and over (a run never ends).
MIN_WORKER_MEMORY = 256_000_000


def check_memory_limit(memory_limit: str | int | None) -> int | None:
    """The per-worker limit in bytes (None: none given), refused with
    :class:`~._errors.SettingError` (``$memory_limit``) when it is not positive or below
    :data:`MIN_WORKER_MEMORY`."""
    if memory_limit is None:
        return None
    limit = parse_bytes(memory_limit)
    if limit <= 0:
        raise SettingError(f"$memory_limit must be positive, got {memory_limit!r}",
                           memory_limit="memory_limit")
    if limit < MIN_WORKER_MEMORY:
        raise SettingError(
            f"$memory_limit {memory_limit} per worker is too small ({format_bytes(limit)}): a "
            f"dask worker process needs at least {MIN_WORKER_MEMORY // 1_000_000} MB for itself "
            f"and one block (below that it is restarted over and over); give e.g. 2GB",
            memory_limit="memory_limit")
    return limit


@contextlib.contextmanager
def dask_client(
    scheduler: str | None = None,
    workers: int | None = None,
    memory_limit: str | int | None = None,
    timeout_s: float = 10.0,
    processes: bool = True,
) -> Iterator[Any]:
    """A ``dask.distributed.Client`` for the duration of a run, or ``None`` for plain dask.

    While the block runs the client is dask's scheduler (``dask.config``), so every
    lazy computation of the core (``compute``, ``store_resumable``, labelling,
    tables) runs on the cluster.

    Parameters
    ----------
    scheduler
        Address of a running ``dask.distributed`` scheduler (``tcp://host:8786``).
    workers
        Start a local cluster of this many single-threaded worker processes instead.
    memory_limit
        Per-worker memory limit (``"4GB"``): the limit of a local cluster's workers,
        and, for a local cluster or an existing scheduler, what blocks are sized for
        (``CORRTOMO_MEMORY_BUDGET`` = 60 % of it, in the workers and in this process,
        which plans the blocks).
    timeout_s
        How long to try to reach ``scheduler`` before giving up with a clear error.
    processes
        Local cluster only: worker processes (the default; true parallelism, one memory
        limit each) or threads of this process (starts faster; for tests and notebooks;
        ``memory_limit`` then only sizes the blocks).
    """
    if scheduler and workers:
        raise ValueError("give either a scheduler address or a number of workers, not both")
    if workers is not None and int(workers) < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if not scheduler and not workers:
        yield None
        return
    import dask

    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - the 'distributed' extra is missing
        raise ValueError("dask.distributed is not installed; install the 'distributed' extra "
                         "(pip install 'napari-corrtomo[distributed]')") from exc
    if processes or scheduler:  # worker processes (thread workers: it only sizes blocks)
        limit = check_memory_limit(memory_limit)
    else:
        limit = parse_bytes(memory_limit) if memory_limit is not None else None
        if limit is not None and limit <= 0:
            raise ValueError(f"memory_limit must be positive, got {memory_limit!r}")
    budget = {ENV_MEMORY: str(int(limit * BUDGET_FRACTION))} if limit else {}
    if scheduler:
        try:
            client = Client(scheduler, timeout=f"{timeout_s}s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ValueError(
                f"cannot reach the dask scheduler at {scheduler!r} within {timeout_s:g} s "
                f"({type(exc).__name__}); check the address (tcp://host:port) and that "
                "`dask scheduler` is running there"
            ) from exc
        # Blocks are planned in this process: size them for the workers' limit.
        with client, _environ(budget), dask.config.set(scheduler=client):
            yield client
        return
    # One core per worker: the compiled kernels and filter threads of a worker use one
    # thread, so N workers use N cores (and their memory budget is per worker).
    env = {**budget, "CORRTOMO_THREADS": "1", "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cluster = LocalCluster(
        n_workers=int(workers),
        threads_per_worker=1,
        processes=bool(processes),
        # thread workers share this process, whose memory a per-worker limit would wrongly
        # count (pausing them): they get only the block budget
        memory_limit=(limit if limit else "auto") if processes else 0,
        dashboard_address=None,
        **({"env": env} if processes else {}),  # threads share this process's environment
    )
    # Worker processes inherit the budget; so does this process for the graph it builds.
    with (cluster, Client(cluster, set_as_default=False) as client, _environ(budget),
          dask.config.set(scheduler=client)):
        yield client


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block, then restore them."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

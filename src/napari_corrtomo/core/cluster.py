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

from .backend import ENV_MEMORY, parse_bytes


@contextlib.contextmanager
def dask_client(
    scheduler: str | None = None,
    workers: int | None = None,
    memory_limit: str | int | None = None,
    timeout_s: float = 10.0,
) -> Iterator[Any]:
    """A ``dask.distributed.Client`` for the duration of a run, or ``None`` for plain dask.

    Parameters
    ----------
    scheduler
        Address of a running ``dask.distributed`` scheduler (``tcp://host:8786``).
    workers
        Start a local cluster of this many single-threaded worker processes instead.
    memory_limit
        Per-worker memory limit of a local cluster (``"4GB"``); it is also the memory
        budget each worker plans its blocks with (``CORRTOMO_MEMORY_BUDGET``), so
        blocks are sized to fit it.
    timeout_s
        How long to try to reach ``scheduler`` before giving up with a clear error.
    """
    if scheduler and workers:
        raise ValueError("give either a scheduler address or a number of workers, not both")
    if workers is not None and int(workers) < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if not scheduler and not workers:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - the 'distributed' extra is missing
        raise ValueError("dask.distributed is not installed; install the 'distributed' extra "
                         "(pip install 'napari-corrtomo[distributed]')") from exc
    if scheduler:
        try:
            client = Client(scheduler, timeout=f"{timeout_s}s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ValueError(
                f"cannot reach the dask scheduler at {scheduler!r} within {timeout_s:g} s "
                f"({type(exc).__name__}); check the address (tcp://host:port) and that "
                "`dask scheduler` is running there"
            ) from exc
        with client:
            yield client
        return
    limit = parse_bytes(memory_limit) if memory_limit is not None else None
    env = {ENV_MEMORY: str(int(limit * 0.6))} if limit else {}
    cluster = LocalCluster(
        n_workers=int(workers),
        threads_per_worker=1,
        processes=True,
        memory_limit=limit if limit else "auto",
        dashboard_address=None,
        env=env,
    )
    # Worker processes inherit the budget; so does this process for the graph it builds.
    old = os.environ.get(ENV_MEMORY)
    if limit:
        os.environ[ENV_MEMORY] = env[ENV_MEMORY]
    try:
        with cluster, Client(cluster, set_as_default=False) as client:
            yield client
    finally:
        if limit:
            if old is None:
                os.environ.pop(ENV_MEMORY, None)
            else:
                os.environ[ENV_MEMORY] = old

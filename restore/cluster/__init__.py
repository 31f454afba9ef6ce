"""The Ray engine (``--engine ray``): the same jobs as the local engine, spread over the
workers of a Ray cluster. Photos go to workers file by file (:mod:`restore.cluster.photos`),
films segment by segment (:mod:`restore.cluster.video`).

Ray is an optional extra (``pip install 'restore[ray]'``); nothing outside this package
imports it, and this package imports it only when a job starts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from restore.errors import RestoreError

INSTALL_HINT = "the Ray engine needs Ray: pip install 'restore[ray]'"


class ClusterError(RestoreError):
    """Ray is missing, or the cluster cannot be joined or has no room for a worker."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a job runs on Ray. Built once by the CLI."""

    address: str | None = None  # None: RAY_ADDRESS if set, else a local cluster in-process
    workers: int | None = None  # None: as many as the cluster's free CPUs (or GPUs) allow
    cpus_per_worker: float = 2.0
    gpus_per_worker: float = 0.0
    retries: int = 2  # tries more for work whose worker died
    queued_per_worker: int = 2  # work units sent ahead to each worker (bounds memory)


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


@contextlib.contextmanager
def connected(options: RayOptions) -> Iterator[Any]:
    """Yield the ``ray`` module, joined to the cluster the options name.

    A cluster this process already joined (``ray.init`` by the caller) is used as it is
    and left running; one started here is shut down on exit.

    Raises:
        ClusterError: Ray is not installed or the cluster cannot be joined.
    """
    if not ray_available():
        raise ClusterError(INSTALL_HINT)
    import ray

    if ray.is_initialized():
        yield ray
        return
    address = options.address or os.environ.get("RAY_ADDRESS") or None
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            configure_logging=False,
            log_to_driver=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ClusterError(f"cannot join the Ray cluster at {address}: {e}") from e
    try:
        yield ray
    finally:
        ray.shutdown()


def worker_count(ray: Any, options: RayOptions) -> int:
    """The workers to start: ``options.workers``, else what the cluster's resources hold."""
    if options.workers is not None:
        return options.workers
    total = ray.cluster_resources()
    fits = [int(total.get("CPU", 0) // options.cpus_per_worker)] if options.cpus_per_worker else []
    if options.gpus_per_worker:
        fits.append(int(total.get("GPU", 0) // options.gpus_per_worker))
    n = min(fits) if fits else 1
    if n < 1:
        raise ClusterError(
            f"no node has room for a worker of {options.cpus_per_worker:g} CPU(s) and "
            f"{options.gpus_per_worker:g} GPU(s) (cluster: {dict(total)}); lower "
            "--ray-cpus-per-worker / --ray-gpus-per-worker"
        )
    return n


def worker_threads(options: RayOptions) -> int:
    """Torch/OpenVINO threads inside one worker: its CPU share, at least one."""
    return max(1, int(options.cpus_per_worker))

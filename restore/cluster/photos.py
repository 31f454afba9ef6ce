"""`restore photos --engine ray`: the local plan, its files colorized by a pool of Ray actors.

Why actors fed by the driver and not Ray Data ``map_batches``: the driver already holds the
plan (the same walk, skip and resume rules as the local engine), every file's result must
come back once for the progress display and the report, and a dead worker's files must be
retried with its partial outputs removed. A small loop over ``ray.wait`` does all three with
a bounded number of files in flight, and keeps no dataset state that grows with the job.

Each worker loads the colorizer once and runs the local engine (:func:`restore.photos.run`)
on a few files at a time, writing atomically into the output tree, which every worker must
see at the same path (shared storage on a multi-machine cluster).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from restore import photos
from restore.cluster import RayOptions
from restore.cluster.pool import ColorizerWorker, WorkerPool
from restore.jobs import FileResult, Status, remove_partial
from restore.plan import Task
from restore.repair import PhotoRepairer
from restore.startup import EngineOptions

#: Files per call to a worker: the local engine's generator batch, so a worker's batches
#: are as full as locally.
FILES_PER_CALL = 4


class PhotoWorker(ColorizerWorker):
    """One Ray actor: a loaded colorizer that colorizes the files it is sent."""

    def __init__(self, engine: EngineOptions, config: photos.PhotosConfig) -> None:
        super().__init__(engine)
        self.config = config
        self.repairer = PhotoRepairer(config.repair) if config.repair is not None else None

    def run(self, tasks: list[Task]) -> list[FileResult]:
        """Colorize ``tasks`` (as the local engine does); one result per task."""
        results: list[FileResult] = []
        marking = photos.MARKING if self.config.colorize else photos.REPAIR_MARKING
        photos.run(tasks, self.colorizer, self.config, results.append, marking, self.repairer)
        return results


def run(
    tasks: Sequence[Task],
    engine: EngineOptions,
    config: photos.PhotosConfig,
    options: RayOptions,
    ray: Any,
    on_result: Callable[[FileResult], None],
    worker_class: type[PhotoWorker] = PhotoWorker,
) -> dict[str, Any] | None:
    """Colorize ``tasks`` on the workers of the joined cluster ``ray``; ``on_result`` is
    called once per task, on this thread, as results come back (not in input order).

    A worker that dies mid-call (killed, out of memory, its machine lost) is replaced; its
    files' partial outputs are deleted and the files are sent again, at most
    ``options.retries`` more times. KeyboardInterrupt stops the workers and removes the
    partial outputs of the files in hand before it propagates.

    Returns:
        The weights' identity, as the workers loaded them.

    Raises:
        StartupProblem: a worker cannot load the colorizer.
        ClusterError: the cluster has no room for a worker.
    """
    runnable = []
    for task in tasks:
        if task.problem is not None or task.output is None:
            on_result(FileResult(task.input, None, Status.FAILED, task.problem))
        else:
            runnable.append(task)
    chunks = [runnable[i : i + FILES_PER_CALL] for i in range(0, len(runnable), FILES_PER_CALL)]
    if not chunks:
        return None
    pool = WorkerPool.for_job(ray, worker_class, engine, config, options, len(chunks))
    try:
        for outcome in pool.map(chunks, "run", lambda chunk: (chunk,), _remove_partials):
            if outcome.error is not None:
                for t in outcome.unit:
                    on_result(FileResult(t.input, None, Status.FAILED, outcome.error))
            else:
                for r in outcome.value:
                    on_result(r)
    finally:
        pool.close()
    identity: dict[str, Any] | None = pool.info
    return identity


def _remove_partials(chunk: list[Task], pid: int) -> None:
    """Delete what a dead worker (process ``pid``) left half-written for ``chunk``."""
    for t in chunk:
        if t.output is not None:
            remove_partial(t.output, pid)

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

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from restore import photos
from restore.cluster import ClusterError, RayOptions, worker_count, worker_threads
from restore.jobs import FileResult, Status, lock_path_for, remove_stale_temps, temp_path_for
from restore.startup import EngineOptions, StartupProblem, load_colorizer

#: Files per call to a worker: the local engine's generator batch, so a worker's batches
#: are as full as locally.
FILES_PER_CALL = 4


class PhotoWorker:
    """One Ray actor: a loaded colorizer that colorizes the files it is sent."""

    def __init__(self, engine: EngineOptions, config: photos.PhotosConfig) -> None:
        self.colorizer = load_colorizer(engine)
        self.config = config

    def ready(self) -> tuple[int, dict[str, Any] | None]:
        """(this worker's process id, the weights' identity) once the model is loaded."""
        info = self.colorizer.info
        return os.getpid(), info.identity if info else None

    def run(self, tasks: list[photos.PhotoTask]) -> list[FileResult]:
        """Colorize ``tasks`` (as the local engine does); one result per task."""
        results: list[FileResult] = []
        photos.run(tasks, self.colorizer, self.config, results.append)
        return results


@dataclass
class _Worker:
    handle: Any
    pid: int
    busy: int = 0  # calls in flight


def run(
    tasks: Sequence[photos.PhotoTask],
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
    todo: deque[tuple[list[photos.PhotoTask], int]] = deque()
    for task in tasks:
        if task.problem is not None or task.output is None:
            on_result(FileResult(task.input, None, Status.FAILED, task.problem))
    runnable = [t for t in tasks if t.problem is None and t.output is not None]
    for i in range(0, len(runnable), FILES_PER_CALL):
        todo.append((runnable[i : i + FILES_PER_CALL], 0))
    if not todo:
        return None

    wanted = min(worker_count(ray, options), len(todo))
    actor = ray.remote(num_cpus=options.cpus_per_worker, num_gpus=options.gpus_per_worker)(
        worker_class
    )
    worker_engine = replace(engine, threads=worker_threads(options))
    workers, identity = _start(ray, actor, worker_engine, config, wanted)
    replacements = wanted * (options.retries + 1)
    in_flight: dict[Any, tuple[_Worker, list[photos.PhotoTask], int]] = {}
    try:
        while todo or in_flight:
            for w in workers:
                while todo and w.busy < options.queued_per_worker:
                    chunk, attempt = todo.popleft()
                    in_flight[w.handle.run.remote(chunk)] = (w, chunk, attempt)
                    w.busy += 1
            if not in_flight:  # every worker died and none could be replaced
                for chunk, _ in todo:
                    for t in chunk:
                        on_result(_died(t, options.retries))
                todo.clear()
                break
            (ref,), _ = ray.wait(list(in_flight), num_returns=1)
            w, chunk, attempt = in_flight.pop(ref)
            w.busy -= 1
            try:
                results: list[FileResult] = ray.get(ref)
            except ray.exceptions.RayActorError:
                _remove_partials(chunk, w.pid)
                if w in workers:
                    workers.remove(w)
                    if replacements > 0:
                        replacements -= 1
                        workers += _start(ray, actor, worker_engine, config, 1)[0]
                if attempt < options.retries:
                    todo.appendleft((chunk, attempt + 1))
                else:
                    for t in chunk:
                        on_result(_died(t, options.retries))
                continue
            except ray.exceptions.RayTaskError as e:  # a bug in the worker: report, go on
                for t in chunk:
                    on_result(FileResult(t.input, None, Status.FAILED, str(e.cause or e)))
                continue
            for r in results:
                on_result(r)
    except BaseException:
        for w in workers:
            ray.kill(w.handle)
        _wait_gone([w.pid for w in workers])
        for w, chunk, _ in in_flight.values():
            _remove_partials(chunk, w.pid)
        raise
    finally:
        for w in workers:
            with contextlib.suppress(Exception):
                ray.kill(w.handle)
    return identity


def _start(
    ray: Any, actor: Any, engine: EngineOptions, config: photos.PhotosConfig, n: int
) -> tuple[list[_Worker], dict[str, Any] | None]:
    """Start ``n`` workers and wait until each has loaded the model."""
    handles = [actor.remote(engine, config) for _ in range(n)]
    try:
        ready = ray.get([h.ready.remote() for h in handles])
    except ray.exceptions.RayActorError as e:
        cause = getattr(e, "cause", None) or e
        for h in handles:
            ray.kill(h)
        if isinstance(cause, StartupProblem):
            raise StartupProblem(str(cause)) from None
        raise ClusterError(f"a Ray worker failed to start: {cause}") from None
    identity = ready[0][1] if ready else None
    return [_Worker(h, pid) for h, (pid, _) in zip(handles, ready, strict=True)], identity


def _remove_partials(chunk: list[photos.PhotoTask], pid: int) -> None:
    """Delete what a dead worker (process ``pid``) left half-written for ``chunk``: its
    temporary files, and claim lock files no live process holds."""
    for t in chunk:
        if t.output is not None:
            with contextlib.suppress(FileNotFoundError):
                temp_path_for(t.output, pid).unlink()
            remove_stale_temps([lock_path_for(t.output)])


def _wait_gone(pids: list[int], seconds: float = 5.0) -> None:
    """Wait until the killed workers' processes have exited (those on this machine)."""
    deadline = time.monotonic() + seconds
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            except OSError:
                break  # not ours to signal: another machine's process id
            time.sleep(0.05)


def _died(task: photos.PhotoTask, retries: int) -> FileResult:
    return FileResult(
        task.input,
        None,
        Status.FAILED,
        f"its Ray worker died {retries + 1} time(s) on it (out of memory or killed?)",
    )

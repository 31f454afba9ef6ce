"""A pool of Ray actors fed by the driver: bounded work in flight, dead workers replaced,
their work sent again a bounded number of times."""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from restore.cluster import ClusterError, RayOptions, worker_count, worker_threads
from restore.startup import EngineOptions, StartupProblem, load_colorizer

U = TypeVar("U")


class ColorizerWorker:
    """Base of the Ray actors: the colorizer loaded once per worker process."""

    def __init__(self, engine: EngineOptions) -> None:
        self.colorizer = load_colorizer(engine)

    def ready(self) -> tuple[int, dict[str, Any] | None]:
        """(this worker's process id, the weights' identity) once the model is loaded."""
        info = self.colorizer.info
        return os.getpid(), info.identity if info else None


@dataclass
class _Worker:
    handle: Any
    pid: int
    busy: int = 0  # calls in flight


@dataclass(frozen=True)
class Outcome(Generic[U]):
    """What became of one unit of work: the call's return value, or why there is none."""

    unit: U
    value: Any = None
    error: str | None = None


class WorkerPool:
    """``count`` actors of ``worker_class`` (constructed with ``args``), each of which has
    loaded the model once; ``worker_class.ready()`` returns (process id, info)."""

    def __init__(
        self, ray: Any, worker_class: type, args: tuple[Any, ...], count: int, options: RayOptions
    ) -> None:
        self.ray = ray
        self.options = options
        self.args = args
        self.actor = ray.remote(num_cpus=options.cpus_per_worker, num_gpus=options.gpus_per_worker)(
            worker_class
        )
        self.workers: list[_Worker] = []
        self.info: Any = None
        self.replacements = count * (options.retries + 1)
        self._start(count)

    @classmethod
    def for_job(
        cls,
        ray: Any,
        worker_class: type,
        engine: EngineOptions,
        config: Any,
        options: RayOptions,
        units: int,
    ) -> WorkerPool:
        """Workers for ``units`` calls: as many as the cluster holds, no more than the
        calls, each running ``options.cpus_per_worker`` threads."""
        count = min(worker_count(ray, options), units)
        args = (replace(engine, threads=worker_threads(options)), config)
        return cls(ray, worker_class, args, count, options)

    def map(
        self,
        units: Iterable[U],
        method: str,
        call_args: Callable[[U], tuple[Any, ...]],
        on_death: Callable[[U, int], None],
    ) -> Iterator[Outcome[U]]:
        """Call ``method(*call_args(unit))`` on some worker for every unit; yield each outcome
        as it arrives (not in order). At most ``options.queued_per_worker`` calls wait at each
        worker. When a worker dies mid-call, ``on_death(unit, its pid)`` cleans up after it
        and the unit is sent again, at most ``options.retries`` more times.

        Closing the iterator early (or an exception in the caller) kills the workers and
        calls ``on_death`` for every unit in flight.
        """
        ray = self.ray
        todo: deque[tuple[U, int]] = deque((u, 0) for u in units)
        in_flight: dict[Any, tuple[_Worker, U, int]] = {}
        try:
            while todo or in_flight:
                for w in self.workers:
                    while todo and w.busy < self.options.queued_per_worker:
                        unit, attempt = todo.popleft()
                        ref = getattr(w.handle, method).remote(*call_args(unit))
                        in_flight[ref] = (w, unit, attempt)
                        w.busy += 1
                if not in_flight:  # every worker died and none could be replaced
                    while todo:
                        yield Outcome(todo.popleft()[0], error=self._died_message())
                    return
                (ref,), _ = ray.wait(list(in_flight), num_returns=1)
                w, unit, attempt = in_flight.pop(ref)
                w.busy -= 1
                try:
                    value = ray.get(ref)
                except ray.exceptions.RayActorError:
                    on_death(unit, w.pid)
                    self._replace(w)
                    if attempt < self.options.retries:
                        todo.appendleft((unit, attempt + 1))
                    else:
                        yield Outcome(unit, error=self._died_message())
                    continue
                except ray.exceptions.RayTaskError as e:  # a bug in the worker: report, go on
                    yield Outcome(unit, error=str(e.cause or e))
                    continue
                yield Outcome(unit, value)
        except BaseException:
            self.close()
            for w, unit, _ in in_flight.values():
                on_death(unit, w.pid)
            raise

    def close(self) -> None:
        """Kill the workers and wait (up to a few seconds) until those on this machine exit."""
        for w in self.workers:
            with contextlib.suppress(Exception):
                self.ray.kill(w.handle)
        _wait_gone([w.pid for w in self.workers])
        self.workers = []

    def _died_message(self) -> str:
        return (
            f"its Ray worker died {self.options.retries + 1} time(s) on it "
            "(out of memory, or killed?)"
        )

    def _replace(self, dead: _Worker) -> None:
        if dead not in self.workers:
            return  # already replaced after another of its calls failed
        self.workers.remove(dead)
        if self.replacements > 0:
            self.replacements -= 1
            self._start(1)

    def _start(self, n: int) -> None:
        ray = self.ray
        handles = [self.actor.remote(*self.args) for _ in range(n)]
        try:
            ready = ray.get([h.ready.remote() for h in handles])
        except ray.exceptions.RayActorError as e:
            cause = getattr(e, "cause", None) or e
            for h in handles:
                ray.kill(h)
            if isinstance(cause, StartupProblem):
                raise StartupProblem(str(cause)) from None
            raise ClusterError(f"a Ray worker failed to start: {cause}") from None
        for h, (pid, info) in zip(handles, ready, strict=True):
            self.workers.append(_Worker(h, pid))
            self.info = info if self.info is None else self.info


def _wait_gone(pids: list[int], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                break  # exited, or not ours to signal (another machine's process id)
            time.sleep(0.05)

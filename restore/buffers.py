"""Recycled numpy buffers, so a long film allocates nothing per frame once it is under way.

Why: the video pipeline hands each frame's arrays (full-resolution L, ab and L at render
size) from the thread that makes them to the thread that frees them, at times that depend
on how the queues fill. With glibc, a block freed by another thread at a random moment
leaves holes in the arena it came from; the next generator call's activations then no
longer fit, the arena grows, and peak memory creeps up over a long film (benchmarks/RESULTS.md).
Taking those arrays from a pool keyed by shape means that, once the queues have
filled, they are no longer allocated or freed at all.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

#: Idle buffers kept per (shape, dtype); more are handed back to the allocator.
MAX_IDLE = 64


class ArrayPool:
    """Hands out uninitialised arrays; each one's memory returns to the pool when the last
    reference to the array (or to any view of it) is dropped, in whatever thread.

    The number of buffers a pool owns is the largest number in use at once (plus at most
    :data:`MAX_IDLE` idle ones per shape): bounded by the pipeline, not by the film's length.
    Thread-safe.
    """

    def __init__(self, max_idle: int = MAX_IDLE) -> None:
        self.max_idle = max_idle
        self.allocated = 0  # buffers ever allocated (a figure for tests and benchmarks)
        self._idle: dict[tuple[tuple[int, ...], str], list[np.ndarray]] = {}
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...], dtype: np.dtype | type = np.float32) -> np.ndarray:
        """An array of ``shape`` and ``dtype`` with undefined contents (like ``np.empty``)."""
        key = (tuple(int(n) for n in shape), np.dtype(dtype).str)
        with self._lock:
            idle = self._idle.get(key)
            base = idle.pop() if idle else None
            if base is None:
                self.allocated += 1
        if base is None:
            base = np.empty(key[0], key[1])
        # Through a memoryview: numpy collapses a view's base to the first array that owns
        # its data or whose base is not an array, so views of ``array`` keep ``array`` (not
        # ``base``) alive, and ``base`` comes back only when none of them is left.
        array = np.asarray(base.data)  # base.data is memoryview(base)
        weakref.finalize(array, self._give, key, base)
        return array

    def idle(self) -> int:
        """Buffers waiting in the pool."""
        with self._lock:
            return sum(len(v) for v in self._idle.values())

    def _give(self, key: tuple[tuple[int, ...], str], base: np.ndarray) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.max_idle:
                idle.append(base)

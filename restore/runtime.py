"""Process-level tuning done once at start-up by the CLI."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import sys
from dataclasses import dataclass

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

#: Set by :func:`tune_allocator`; :func:`release_free_memory` only acts when it is.
_tuned = False


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def tune_allocator(one_arena: bool = True) -> bool:
    """Set glibc malloc up for a long-running colorizer. No-op outside glibc; returns True
    if applied. Call it at start-up, before any worker thread exists.

    - Large activation buffers stay in the heap instead of being unmapped after every
      forward pass and faulted in again (the whole process runs about 30 % faster).
    - ``one_arena``: every thread allocates from one heap. With one arena per thread, a
      generator call needs just under two of glibc's 64 MiB per-thread heaps; a few stray
      blocks push it into a third one from time to time, so peak memory crept up with the
      length of a film (benchmarks/RESULTS.md). One contiguous heap has
      no such boundaries.

    Memory then only comes back to the system through :func:`release_free_memory`.
    """
    global _tuned
    libc = _libc()
    if libc is None:
        return False
    try:
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1
        ok &= libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1
        if one_arena:
            ok &= libc.mallopt(_M_ARENA_MAX, 1) == 1
    except AttributeError:
        return False
    _tuned = bool(ok)
    return _tuned


def release_free_memory() -> None:
    """Give the free pages inside the heap back to the system (``malloc_trim``).

    Only after :func:`tune_allocator` (glibc's own defaults trim by themselves). Called
    every few dozen frames by the video pipeline: resident memory then follows what is in
    use instead of every page ever touched (a 10-minute 720p film peaked 2-4 % above a
    10-second one, benchmarks/RESULTS.md).
    Costs ~10 ms, plus faulting in again what the next generator call needs.
    """
    if not _tuned:
        return
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@dataclass(frozen=True)
class ThreadPlan:
    """How the cores are shared: ``workers`` generator calls at once, each over
    ``intra_op`` torch threads; OpenCV single-threaded (the pipelines' threads overlap it)."""

    workers: int
    intra_op: int


#: More concurrent calls than this only adds memory (one batch each).
MAX_WORKERS = 4


def plan_threads(cores: int | None = None, cuda: bool = False) -> ThreadPlan:
    """The thread split for ``cores`` cores (default: all).

    Measured on 2 cores (benchmarks/): one torch call over both cores stalls at every
    operator's barrier whenever the decoder, encoder or another process takes a core
    (4x slower under load); two single-threaded calls in flight do not. On a GPU one
    call at a time feeds the device.
    """
    cores = max(1, cores or os.cpu_count() or 1)
    if cuda:
        return ThreadPlan(workers=1, intra_op=cores)
    workers = min(cores, MAX_WORKERS)
    return ThreadPlan(workers=workers, intra_op=max(1, cores // workers))


def apply_threads(plan: ThreadPlan) -> None:
    """Set torch's and OpenCV's thread counts for ``plan`` (process-wide)."""
    import cv2
    import torch

    torch.set_num_threads(plan.intra_op)
    cv2.setNumThreads(1)

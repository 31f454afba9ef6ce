"""Process-level tuning done once at start-up by the CLI."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from dataclasses import dataclass

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def tune_allocator() -> bool:
    """Keep glibc from returning large activation buffers to the OS after every forward pass.

    Without this, each pass unmaps and re-faults tens of MB (measured: whole-process time
    0.69x with it). No-op outside glibc. Returns True if applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1
        ok &= libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1
        return bool(ok)
    except (OSError, AttributeError):
        return False


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

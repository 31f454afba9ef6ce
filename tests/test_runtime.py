"""Process-level tuning: the allocator keeps its pages until asked, then gives them back."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

_CHILD = textwrap.dedent(
    """
    import ctypes, sys
    from restore import runtime

    def rss_mib():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024

    runtime.release_free_memory()  # before tuning: a no-op, must not fail
    assert runtime.tune_allocator() is True
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    base = rss_mib()
    blocks = [libc.malloc(8 << 20) for _ in range(40)]  # 320 MiB, touched
    for b in blocks:
        ctypes.memset(b, 1, 8 << 20)
    keep = libc.malloc(64)  # above them: the heap's top cannot shrink past it
    for b in blocks:
        libc.free(b)
    held = rss_mib() - base
    runtime.release_free_memory()
    print(held, rss_mib() - base)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_freed_memory_stays_until_released() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], check=True, capture_output=True, text=True
    ).stdout.split()
    held, after = int(out[0]), int(out[1])
    assert held > 250  # tuned: large freed blocks are kept (no unmapping, no trimming)
    assert after < 50  # released: their pages went back to the system

"""Resident memory of `colorize_video` sampled every 250 frames (streaming check).

``python -m benchmarks.rss_trace [SECONDS] [--weights FILE]`` (default 120 s of synthetic
720p). Without ``--weights`` a tiny random generator at render size 64 runs, so a long clip
finishes quickly and the pipeline's own buffers (decoded frames, L maps, queues, encoder) are
what is measured; with it, the real generator at the default render size, as `restore video`
runs. Each row also gives glibc's heap figures (``mallinfo2``): ``heap`` obtained from the OS,
``in use`` by live allocations, ``free`` inside the heap; RSS above ``in use`` plus the
libraries is free heap space that has been touched.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import resource
import tempfile
from pathlib import Path

from restore.models import GeneratorConfig, UNetGenerator

from benchmarks.inputs import write_clip
from benchmarks.memory import status_mib
from restore.engine import Colorizer, EngineConfig
from restore.runtime import apply_threads, plan_threads, tune_allocator
from restore.video.pipeline import colorize_video
from restore.video.temporal import StabilizeConfig, stabilizer


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_size_t)
        for n in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _heap_mib() -> tuple[int, int, int]:
    """(heap from the OS, in use, free) in MiB, or -1s outside glibc >= 2.33."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        m = libc.mallinfo2()
        return (m.arena + m.hblkhd) >> 20, (m.uordblks + m.hblkhd) >> 20, m.fordblks >> 20
    except (OSError, AttributeError):
        return -1, -1, -1


class _Trace:
    def __init__(self) -> None:
        self.frames = 0

    def start(self, total_frames: int | None) -> None:
        print(
            f"| frames (of {total_frames}) | RSS MiB | heap MiB | in use MiB | free MiB |\n"
            "|---|---|---|---|---|"
        )

    def advance(self, frames: int) -> None:
        self.frames += frames
        if self.frames % 250 < frames:
            heap, used, free = _heap_mib()
            rss = status_mib("VmRSS").get("VmRSS", -1.0)
            print(f"| {self.frames} | {rss:.0f} | {heap} | {used} | {free} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.rss_trace", description=__doc__)
    ap.add_argument("seconds", type=float, nargs="?", default=120.0)
    ap.add_argument("--weights", type=Path, help="real generator (default: a tiny random one)")
    args = ap.parse_args(argv)
    tune_allocator()  # as `restore video` does
    plan = plan_threads()
    apply_threads(plan)
    with tempfile.TemporaryDirectory(prefix="restore-rss-") as tmp:
        # The clip is synthesised in this process before the model loads; its freed buffers
        # stay in the heap as free space.
        src = write_clip(Path(tmp) / "clip.mp4", 1280, 720, args.seconds)
        if args.weights:
            col = Colorizer.from_weights(args.weights, EngineConfig(workers=plan.workers))
        else:
            tiny = UNetGenerator(GeneratorConfig(decoder_channels=(16, 16, 8, 8, 8)))
            col = Colorizer(tiny, EngineConfig(device="cpu", workers=plan.workers, render_size=64))
        stage = stabilizer(StabilizeConfig())  # `restore video`'s default
        colorize_video(src, Path(tmp) / "out.mp4", col, progress=_Trace(), stage=stage)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"\npeak RSS {peak} MiB over {args.seconds:g} s of 1280x720")


if __name__ == "__main__":
    main()

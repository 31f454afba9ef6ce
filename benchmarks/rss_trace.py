"""Resident memory of `colorize_video` sampled every 250 frames (streaming check).

Uses a tiny random generator at render size 64 so that a long clip finishes quickly: the
pipeline's buffers (decoded frames, L maps, queues, encoder) are what is measured, not the
model. ``python -m benchmarks.rss_trace [SECONDS]`` (default 120 s of synthetic 720p).
"""

from __future__ import annotations

import resource
import sys
import tempfile
from pathlib import Path

from restore.models import GeneratorConfig, UNetGenerator

from benchmarks.inputs import write_clip
from restore.engine import Colorizer, EngineConfig
from restore.runtime import apply_threads, plan_threads, tune_allocator
from restore.video.pipeline import colorize_video


def _rss_mib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return -1


class _Trace:
    def __init__(self) -> None:
        self.frames = 0

    def start(self, total_frames: int | None) -> None:
        print(f"| frames | RSS MiB |  (of {total_frames})\n|---|---|")

    def advance(self, frames: int) -> None:
        self.frames += frames
        if self.frames % 250 < frames:
            print(f"| {self.frames} | {_rss_mib()} |", flush=True)


def main(seconds: float = 120.0) -> None:
    tune_allocator()  # as `restore video` does
    plan = plan_threads()
    apply_threads(plan)
    tiny = UNetGenerator(GeneratorConfig(decoder_channels=(16, 16, 8, 8, 8)))
    col = Colorizer(tiny, EngineConfig(device="cpu", workers=plan.workers, render_size=64))
    with tempfile.TemporaryDirectory(prefix="restore-rss-") as tmp:
        src = write_clip(Path(tmp) / "clip.mp4", 1280, 720, seconds)
        colorize_video(src, Path(tmp) / "out.mp4", col, progress=_Trace())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"\npeak RSS {peak} MiB over {seconds:g} s of 1280x720")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 120.0)

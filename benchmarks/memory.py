"""Peak resident memory of `restore video` on a short and a long clip (streaming check).

Each clip runs in a fresh process (``python -m benchmarks.memory SRC DST WEIGHTS``) that
prints its own peak RSS, so the two figures do not mix.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def peak_rss(src: Path, dst: Path, weights: Path) -> tuple[float, float, int]:
    """(peak RSS in MiB, seconds, frames) of colorize_video in a child process."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", str(src), str(dst), str(weights)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["rss_mib"], time.perf_counter() - t0, result["frames"]


def _child(src: str, dst: str, weights: str) -> None:
    from restore.engine import Colorizer, EngineConfig
    from restore.runtime import apply_threads, plan_threads, tune_allocator
    from restore.video.pipeline import colorize_video

    tune_allocator()  # set up as `restore video` does
    plan = plan_threads()
    apply_threads(plan)
    colorizer = Colorizer.from_weights(weights, EngineConfig(workers=plan.workers))
    frames = colorize_video(Path(src), Path(dst), colorizer).frames
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"rss_mib": rss_kib / 1024, "frames": frames}))


if __name__ == "__main__":
    _child(*sys.argv[1:4])

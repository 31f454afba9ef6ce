"""Line scratch repair on real clips with synthetic scratches:
``python -m benchmarks.film_scratches CLIP... [--frames 60] [--scratches 2]``.

Each clip's frames (lightness, at most 720 lines) get ``--scratches`` vertical lines, 1-3
pixels wide, 15-30 L brighter or darker, wandering a pixel at a time as film scratches do
(a fixed seed per clip). Printed per clip: lightness PSNR against the clean frames after one
gain and offset fitted over the clip, for the scratched input and the repair; the frames
where the clean clip had columns repaired (false alarms); ms per frame.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.film_grain import lightness_frames, row
from restore.video.scratches import ScratchConfig, remove_line_scratches


def scratch(frames: list[np.ndarray], count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    h, w = frames[0].shape
    lines = [
        [int(rng.integers(w // 10, w - w // 10)), int(rng.integers(1, 4)), float(rng.choice([-1, 1]) * rng.uniform(15, 30))]
        for _ in range(count)
    ]  # fmt: skip
    out = []
    for f in frames:
        g = f.copy()
        for line in lines:
            line[0] = int(np.clip(line[0] + rng.integers(-1, 2), 8, w - 12))
            x, width, amp = line
            g[:, x : x + width] = np.clip(g[:, x : x + width] + amp, 0, 100)
        out.append(g)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.film_scratches", description=__doc__)
    ap.add_argument("clips", nargs="+", type=Path)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--scratches", type=int, default=2)
    a = ap.parse_args(argv)
    config = ScratchConfig()
    print(f"{a.scratches} scratches per clip, {a.frames} frames per clip")
    print("| clip | size | scratched dB | repaired dB | gain | clean frames touched | ms/frame |")
    print("|---|---|---|---|---|---|---|")
    for n, clip in enumerate(a.clips):
        clean = lightness_frames(clip, a.frames)
        damaged = scratch(clean, a.scratches, n)
        repaired = [d.copy() for d in damaged]
        t0 = time.perf_counter()
        for r in repaired:
            remove_line_scratches(r, config)
        ms = 1000 * (time.perf_counter() - t0) / len(clean)
        touched = sum(remove_line_scratches(c.copy(), config) > 0 for c in clean)
        print(row(clip, clean, damaged, repaired, f"{touched}/{len(clean)}", f"{ms:.0f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

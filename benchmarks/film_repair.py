"""`restore video --repair` on real clips with synthetic old-film damage:
``python -m benchmarks.film_repair CLIP... [--frames 60] [--grain 1]``.

Each clip's frames (lightness, at most 720 lines) get, with a fixed seed per clip: brightness
flicker (gain 0.85-1.15, varying over a few frames), dust specks on a third of the frames, a
wandering line scratch and clumped grain of 3 L units. The repair stages run in the order of
the film pipeline (deflicker, then dirt, scratches and grain). Printed per clip: lightness
PSNR against the clean frames after ONE gain and offset fitted over the whole clip (the
repair issue's measure: flicker left in costs), for the damaged input and the repair.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from benchmarks.film_grain import grain, lightness_frames, row, timed_repair
from benchmarks.film_scratches import scratch
from restore.video.deflicker import Deflicker, DeflickerConfig
from restore.video.dirt import DirtConfig, DirtRemover
from restore.video.pipeline import Repair
from restore.video.scratches import ScratchConfig


def damage(frames: list[np.ndarray], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    gains = np.convolve(rng.normal(0, 0.12, len(frames) + 4), np.ones(3) / 3, "same")[2:-2]
    out = []
    for i, f in enumerate(scratch(frames, 1, seed)):
        g = f * np.float32(1.0 + np.clip(gains[i], -0.15, 0.15))
        if rng.random() < 1 / 3:
            h, w = g.shape
            for _ in range(3):
                c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
                cv2.circle(g, c, int(rng.integers(2, 6)), float(rng.choice([3.0, 97.0])), -1)
        out.append(np.clip(g + grain(g.shape, 3.0, 1000 * seed + i), 0, 100).astype(np.float32))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.film_repair", description=__doc__)
    ap.add_argument("clips", nargs="+", type=Path)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--grain", type=float, default=1.0, help="--repair-grain strength")
    a = ap.parse_args(argv)
    print(f"{a.frames} frames per clip, grain strength {a.grain}")
    print("| clip | size | damaged dB | repaired dB | gain | ms/frame |")
    print("|---|---|---|---|---|---|")
    for n, clip in enumerate(a.clips):
        clean = lightness_frames(clip, a.frames)
        damaged = damage(clean, n)
        stages: list[Repair[np.ndarray]] = [
            Deflicker(DeflickerConfig(), lambda x: x),
            DirtRemover(DirtConfig(scratches=ScratchConfig(), grain=a.grain), lambda x: x),
        ]
        repaired, ms = timed_repair(stages, damaged)
        print(row(clip, clean, damaged, repaired, f"{ms:.0f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

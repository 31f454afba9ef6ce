"""Temporal grain reduction on real clips with synthetic film grain:
``python -m benchmarks.film_grain CLIP... [--frames 90] [--sigma 4] [--strength 1]``.

Each clip's frames (lightness, at most 720 lines) get clumped grain of ``--sigma`` L units
(a fixed seed per frame) and pass the film repair stage with grain reduction only
(``restore video --repair-grain``). Printed per clip: lightness PSNR against the clean frames
after one gain and offset fitted over the whole clip, for the grainy input and the output;
the grain the stage measured; ms per frame.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.flicker import frames
from benchmarks.repair import fitted_psnr
from restore import color
from restore.video.dirt import DirtConfig, DirtRemover
from restore.video.pipeline import Repair, through_repairs


def lightness_frames(path: Path, limit: int) -> list[np.ndarray]:
    out = []
    for rgb in frames(path, limit):
        h, w = rgb.shape[:2]
        if h > 720:
            rgb = cv2.resize(rgb, (round(w * 720 / h), 720), interpolation=cv2.INTER_AREA)
        out.append(color.rgb_to_l(rgb.astype(np.float32) / 255))
    return out


def grain(shape: tuple[int, ...], sigma: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 0.7)  # clumped, as film grain is
    return noise * np.float32(sigma / max(float(noise.std()), 1e-6))


def timed_repair(
    stages: list[Repair[np.ndarray]], damaged: list[np.ndarray]
) -> tuple[list[np.ndarray], float]:
    """Copies of ``damaged`` through the repair stages as the film pipeline runs them, and
    the ms per frame that took."""
    t0 = time.perf_counter()
    out = through_repairs(stages, [d.copy() for d in damaged], flush=True)
    return out, 1000 * (time.perf_counter() - t0) / len(damaged)


def row(clip: Path, clean: list[np.ndarray], damaged: list[np.ndarray],
        repaired: list[np.ndarray], *extra: str) -> str:  # fmt: skip
    """A markdown row: clip, size, damaged and repaired dB (one gain and offset per clip),
    the gain, then ``extra`` cells."""
    ref = np.stack(clean)
    before, after = fitted_psnr(np.stack(damaged), ref), fitted_psnr(np.stack(repaired), ref)
    h, w = clean[0].shape
    cells = [clip.name, f"{w}x{h}", f"{before:.2f}", f"{after:.2f}", f"{after - before:+.2f}"]
    return "| " + " | ".join([*cells, *extra]) + " |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.film_grain", description=__doc__)
    ap.add_argument("clips", nargs="+", type=Path)
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--sigma", type=float, default=4.0)
    ap.add_argument("--strength", type=float, default=1.0)
    a = ap.parse_args(argv)
    print(f"grain sigma {a.sigma}, strength {a.strength}, {a.frames} frames per clip")
    print("| clip | size | grainy dB | repaired dB | gain | grain measured | ms/frame |")
    print("|---|---|---|---|---|---|---|")
    for clip in a.clips:
        clean = lightness_frames(clip, a.frames)
        noisy = [
            np.clip(f + grain(f.shape, a.sigma, i), 0, 100).astype(np.float32)
            for i, f in enumerate(clean)
        ]
        stage: DirtRemover[np.ndarray] = DirtRemover(
            DirtConfig(remove_dirt=False, grain=a.strength), lambda x: x
        )
        out, ms = timed_repair([stage], noisy)
        print(row(clip, clean, noisy, out, f"{stage.stats.grain:.2f}", f"{ms:.0f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

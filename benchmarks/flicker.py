"""Colour flicker and accuracy of `restore video` with and without temporal stabilisation.

``python -m benchmarks.flicker CLIP... [--frames 300] [--weights FILE]`` on colour clips: each
frame is turned gray (its CIE L), colorized at render size, and stabilised or not, exactly as
the pipeline does before encoding (the encode, the same for every variant, is left out);
outputs are compared with the original colour frames. Prints markdown, per clip and the mean
over clips:

- flicker, still: mean |Δab| between consecutive output frames over the pixels whose true L
  changed by less than 1 (the truth's own figure beside it: compressed colour video flickers
  a little too);
- flicker, along motion: the same after aligning the previous frame to the current one by
  optical flow computed on the true frames (DIS, medium preset, full size), over pixels whose
  aligned true L agrees within 1;
- accuracy against the colour originals: PSNR of the 8-bit RGB, mean CIEDE2000, mean |ab error|;
- ms per frame the stabiliser adds in the caller's thread (L to render size + the filter),
  on the clip's own frames and on them rescaled to 1280x720.

One thread (torch and OpenCV), streaming: one frame per variant is held, whatever the length.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from skimage.color import deltaE_ciede2000

from benchmarks.common import SHIPPED, Table
from restore import color
from restore.engine import REFINE_RADIUS, Colorizer, EngineConfig, render_shape
from restore.video.temporal import ColourStabilizer, StabilizeConfig, render_lightness

#: L change below which a pixel counts as unchanged (still, or matched along the motion).
STILL = 1.0
HD = (720, 1280)

VARIANTS: dict[str, StabilizeConfig | None] = {
    "off (--no-stabilize)": None,
    "stabilised, no flow": StabilizeConfig(flow=False),
    "stabilised (default)": StabilizeConfig(),
}


@dataclass
class Tally:
    """Running sums of one variant's figures over one clip."""

    still: list[float] = field(default_factory=list)
    moving: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    de: list[float] = field(default_factory=list)
    ab_err: list[float] = field(default_factory=list)
    seconds: float = 0.0
    seconds_hd: float = 0.0
    frames: int = 0
    cuts: int = 0
    prev_ab: np.ndarray | None = None  # (H, W, 2) float32 ab of the previous output


def frames(path: Path, limit: int) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 RGB frames of the first video stream, at most ``limit``."""
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i >= limit:
                return
            yield f.to_ndarray(format="rgb24")


def predicted(
    path: Path, colorizer: Colorizer, limit: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(truth RGB uint8, L (H, W) float32, ab at render size (h, w, 2) float32) per frame."""
    batch: list[np.ndarray] = []
    bs = max(1, colorizer.config.batch_size)

    def flush() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        lights = [color.rgb8_to_l(rgb) for rgb in batch]
        yield from zip(batch, lights, colorizer.ab_small(lights), strict=True)
        batch.clear()

    for rgb in frames(path, limit):
        batch.append(rgb)
        if len(batch) >= bs:
            yield from flush()
    if batch:
        yield from flush()


def warp(image: np.ndarray, flow: np.ndarray, grid: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``image`` of the previous frame sampled where each current pixel came from."""
    mx, my = grid[0] + flow[..., 0], grid[1] + flow[..., 1]
    return cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def measure(path: Path, colorizer: Colorizer, limit: int) -> tuple[dict[str, Tally], Tally, str]:
    """Figures per variant, the truth's own flicker, and the clip's size."""
    tallies = {name: Tally() for name in VARIANTS}
    filters = {name: ColourStabilizer(cfg) for name, cfg in VARIANTS.items() if cfg}
    filters_hd = {name: ColourStabilizer(cfg) for name, cfg in VARIANTS.items() if cfg}
    hd_render = render_shape(*HD, colorizer.config.render_size)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    truth = Tally()
    prev_lab: np.ndarray | None = None
    prev_gray: np.ndarray | None = None
    grid: tuple[np.ndarray, np.ndarray] | None = None
    size = ""
    for rgb, lightness, ab in predicted(path, colorizer, limit):
        h, w = lightness.shape
        size = f"{w}x{h}"
        lab = color.rgb_to_lab(rgb.astype(np.float32) / 255)  # (H, W, 3)
        gray = np.clip(lab[..., 0] * 2.55 + 0.5, 0, 255).astype(np.uint8)
        still = flow = aligned = None
        if prev_lab is not None and prev_gray is not None:
            if grid is None or grid[0].shape != (h, w):
                xs, ys = np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)
                grid = tuple(np.meshgrid(xs, ys))  # type: ignore[assignment]
            assert grid is not None
            still = np.abs(lab[..., 0] - prev_lab[..., 0]) < STILL
            flow = dis.calc(gray, prev_gray, None)
            warped_truth = warp(prev_lab, flow, grid)
            aligned = np.abs(lab[..., 0] - warped_truth[..., 0]) < STILL
            _add_flicker(truth, lab[..., 1:], prev_lab[..., 1:], still, aligned, flow, grid)
        # the clip's frames rescaled to 720p, for the cost at that size
        l_hd = cv2.resize(lightness, HD[::-1], interpolation=cv2.INTER_LINEAR)
        ab_hd = cv2.resize(ab, hd_render[::-1], interpolation=cv2.INTER_LINEAR)
        for name, tally in tallies.items():
            out_ab = ab
            if name in filters:
                t0 = time.perf_counter()
                out_ab = filters[name].step(render_lightness(lightness, ab.shape[:2]), ab)
                tally.seconds += time.perf_counter() - t0
                t0 = time.perf_counter()
                filters_hd[name].step(render_lightness(l_hd, hd_render), ab_hd)
                tally.seconds_hd += time.perf_counter() - t0
                tally.cuts = filters[name].cuts
            out = color.merge_l_ab_u8(lightness, out_ab)  # (H, W, 3) uint8, what is encoded
            out_lab = color.rgb_to_lab(out.astype(np.float32) / 255)
            mse = float(np.mean((out.astype(np.float64) - rgb) ** 2))
            tally.psnr.append(10 * math.log10(255.0**2 / mse) if mse > 0 else 100.0)
            tally.de.append(float(deltaE_ciede2000(lab, out_lab).mean()))
            tally.ab_err.append(float(np.abs(out_lab[..., 1:] - lab[..., 1:]).mean()))
            if tally.prev_ab is not None and still is not None:
                assert flow is not None and aligned is not None and grid is not None
                _add_flicker(tally, out_lab[..., 1:], tally.prev_ab, still, aligned, flow, grid)
            tally.prev_ab = np.ascontiguousarray(out_lab[..., 1:])
            tally.frames += 1
        prev_lab, prev_gray = lab, gray
    return tallies, truth, size


def _add_flicker(
    tally: Tally,
    ab: np.ndarray,
    prev_ab: np.ndarray,
    still: np.ndarray,
    aligned: np.ndarray,
    flow: np.ndarray,
    grid: tuple[np.ndarray, np.ndarray],
) -> None:
    if still.any():
        tally.still.append(float(np.abs(ab - prev_ab)[still].mean()))
    if aligned.any():
        moved = warp(np.ascontiguousarray(prev_ab), flow, grid)
        tally.moving.append(float(np.abs(ab - moved)[aligned].mean()))


def _mean(x: list[float]) -> float:
    return float(np.mean(x)) if x else math.nan


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.flicker", description=__doc__)
    ap.add_argument("clips", nargs="+", type=Path, help="colour video files")
    ap.add_argument("--frames", type=int, default=300, help="frames per clip (from the start)")
    ap.add_argument("--weights", type=Path, default=SHIPPED, help="generator weights")
    ap.add_argument("--render-size", type=int, default=256)
    ap.add_argument("--saturation", type=float, default=1.0, help="as restore video --saturation")
    ap.add_argument("--refine", action="store_true", help="as restore video --refine")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    colorizer = Colorizer.from_weights(
        args.weights,
        EngineConfig(
            device="cpu",
            render_size=args.render_size,
            batch_size=4,
            saturation=args.saturation,
            refine_radius=REFINE_RADIUS if args.refine else 0,
        ),
    )
    given = " ".join(sys.argv[1:] if argv is None else argv)
    print(f"- command: `python -m benchmarks.flicker {given}`")
    print(f"- weights: {args.weights}; render size {args.render_size}; one thread\n")
    header = ["variant", "flicker still (truth)", "flicker along motion (truth)", "still / off",
              "motion / off", "PSNR dB", "ΔE2000", "ab error", "ms/frame", "ms/frame 720p", "cuts"]  # fmt: skip
    summary: dict[str, list[list[float]]] = {name: [] for name in VARIANTS}
    for clip in args.clips:
        tallies, truth, size = measure(clip, colorizer, args.frames)
        n = tallies[next(iter(VARIANTS))].frames
        table = Table(f"{clip.name} ({size}, {n} frames)", header)
        off = tallies[next(iter(VARIANTS))]
        for name, t in tallies.items():
            ratios = [_mean(t.still) / _mean(off.still), _mean(t.moving) / _mean(off.moving)]
            row = [*ratios, _mean(t.psnr), _mean(t.de), _mean(t.ab_err)]
            summary[name].append(row + [1000 * t.seconds_hd / max(1, t.frames)])
            ms = [1000 * t.seconds / max(1, t.frames), 1000 * t.seconds_hd / max(1, t.frames)]
            table.add(
                name,
                f"{_mean(t.still):.3f} ({_mean(truth.still):.3f})",
                f"{_mean(t.moving):.3f} ({_mean(truth.moving):.3f})",
                *[f"{x:.3f}" for x in row],
                *[f"{x:.2f}" for x in ms],
                t.cuts,
            )
        print(table.render(), flush=True)
    table = Table(
        f"mean over {len(args.clips)} clip(s)",
        [
            "variant",
            "still / off",
            "motion / off",
            "PSNR dB",
            "ΔE2000",
            "ab error",
            "ms/frame 720p",
        ],
    )
    for name, rows in summary.items():
        mean = np.mean(np.array(rows), axis=0).tolist()
        table.add(name, *[f"{x:.3f}" for x in mean[:-1]], f"{mean[-1]:.2f}")
    print(table.render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

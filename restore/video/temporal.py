"""Temporal colour stabilisation: less frame-to-frame colour flicker in colorized films.

The generator colours every frame on its own, so the ab of a still object wanders from frame
to frame. :class:`ColourStabilizer` runs a per-pixel recursive filter on ab at render size:

    out_t = out_{t-1} + w_t * (ab_t - out_{t-1})

with ``w_t`` close to 1 (follow the new prediction) where L changed at that pixel since the
previous frame (motion, new content) and ``1 - strength`` where L is unchanged, so the colours
of still content settle while moving objects keep their own. With ``flow`` the previous frame
is also aligned to the current one by optical flow (DIS at render size); each pixel compares
with whichever of the aligned and the unaligned previous frame matches its L better, so panned
and moving content is smoothed too while still content is not resampled. The state (L and ab
of one frame at render size) is reset at the first frame, at scene cuts and when the render
size changes.

:func:`stabilizer` wraps it as a :data:`restore.video.items.TemporalStage`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from restore.buffers import ArrayPool
from restore.video.items import Batch, TemporalStage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StabilizeConfig:
    """How strongly colours are held still. Built once by the CLI.

    Defaults chosen on five colour clips turned gray (``python -m benchmarks.flicker``,
    README, Video).
    """

    # Share of the previous output colour that a pixel whose L did not change keeps each
    # frame, in [0, 1): 0 is off; 0.9 averages still content over about 1 / (1 - 0.9) = 10
    # frames.
    strength: float = 0.9
    # Change of L (CIE L units, after a light blur) at which a pixel keeps half of
    # ``strength``: grain and compression noise sit below it, motion above.
    motion: float = 4.0
    # Radius (render-size pixels) around a change that also follows the new prediction:
    # the predicted colours of a moving edge reach a little beyond its L edge.
    spread: int = 1
    # Mean |change of L| over the frame (after alignment, with ``flow``) above which the frame
    # starts a new shot: the state is reset and the frame keeps its own prediction. Measured
    # with flow: cuts 13-17 (reverse shots of one room included), camera whips and a damaged
    # frame at most 9. Without flow, shaky or panning frames pass 10 too: harmless, they only
    # restart the averaging.
    cut: float = 10.0
    # Align the previous frame to the current one by optical flow before comparing.
    flow: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength < 1.0:
            raise ValueError(f"strength must be in [0, 1), got {self.strength}")
        if self.motion <= 0 or self.cut <= 0 or self.spread < 0:
            raise ValueError("motion and cut must be positive and spread not negative")


class ColourStabilizer:
    """The filter's state over the consecutive frames of one film.

    Memory: L (float32 and uint8) and ab of one frame at render size, whatever the length.
    """

    def __init__(self, config: StabilizeConfig = StabilizeConfig()) -> None:
        self.config = config
        self.frames = 0  # frames seen
        self.cuts = 0  # scene cuts detected (resets after the first frame)
        self._l: np.ndarray | None = None  # (h, w) float32 blurred L of the previous frame
        self._gray: np.ndarray | None = None  # (h, w) uint8 L of the previous frame (flow)
        self._ab: np.ndarray | None = None  # (h, w, 2) float32 previous output
        self._grid: tuple[np.ndarray, np.ndarray] | None = None  # pixel coordinates (flow)
        self._dis = (
            cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_FAST) if config.flow else None
        )
        k = 2 * config.spread + 1
        self._disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))

    def reset(self) -> None:
        """Forget the previous frame: the next one keeps its own prediction."""
        self._l = self._gray = self._ab = None

    def step(
        self, l_small: np.ndarray, ab: np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Stabilised colours of the next frame.

        Args:
            l_small: (h, w) float32 L in [0, 100] at render size.
            ab: (h, w, 2) float32 ab predicted for this frame, same size.
            out: optional (h, w, 2) float32 array to write the result into; it must not be
                ``ab`` or an earlier output.
        Returns:
            (h, w, 2) float32 ab, a new array or ``out`` (``ab`` and earlier outputs are left
            as they are): per pixel a convex mix of this and earlier predictions, so within
            their range.
        """
        cfg = self.config
        self.frames += 1
        lb = cv2.GaussianBlur(l_small.astype(np.float32, copy=False), (5, 5), 1.0)
        gray = None  # (h, w) uint8 L for the flow
        if self._dis is not None:
            gray = np.clip(l_small * 2.55 + 0.5, 0, 255).astype(np.uint8)
        prev_l, prev_gray, prev_ab = self._l, self._gray, self._ab
        self._l, self._gray = lb, gray
        if cfg.strength <= 0 or prev_l is None or prev_ab is None or prev_l.shape != lb.shape:
            return self._keep(ab, out)
        diff = np.abs(lb - prev_l)  # (h, w)
        if gray is not None and prev_gray is not None:
            warped_l, warped_ab = self._aligned(gray, prev_gray, prev_l, prev_ab)
            diff_w = np.abs(lb - warped_l)
            moved = diff_w < diff  # the flow explains this pixel better than stillness
            diff = np.minimum(diff, diff_w)
            prev_ab = np.where(moved[..., None], warped_ab, prev_ab)
        if float(diff.mean()) > cfg.cut:
            self.cuts += 1
            log.debug("scene cut at frame %d (mean |dL| %.1f)", self.frames - 1, diff.mean())
            return self._keep(ab, out)
        if cfg.spread:
            diff = cv2.dilate(diff, self._disk)
        # keep = strength * m^2 / (m^2 + d^2): all of strength where L is still, half at d = m
        m2 = np.float32(cfg.motion * cfg.motion)
        keep = np.float32(cfg.strength) * m2 / (m2 + diff * diff)  # (h, w) in [0, strength]
        if out is None:
            out = np.empty(ab.shape, np.float32)
        np.subtract(prev_ab, ab, out=out)
        out *= keep[..., None]
        out += ab  # ab + keep * (prev_ab - ab), (h, w, 2)
        self._ab = out
        return out

    def _keep(self, ab: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        if out is None:
            out = np.empty(ab.shape, np.float32)
        np.copyto(out, ab)
        self._ab = out
        return out

    def _aligned(
        self, gray: np.ndarray, prev_gray: np.ndarray, prev_l: np.ndarray, prev_ab: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The previous frame's blurred L and output ab, warped onto the current frame."""
        assert self._dis is not None
        # (h, w, 2): where each pixel came from. OpenCV's stub requires flow; None allocates it.
        flow = self._dis.calc(gray, prev_gray, None)  # type: ignore[call-overload]
        h, w = gray.shape
        if self._grid is None or self._grid[0].shape != (h, w):
            xs, ys = np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)
            gx, gy = np.meshgrid(xs, ys)
            self._grid = (gx, gy)
        assert self._grid is not None
        mx, my = self._grid[0] + flow[..., 0], self._grid[1] + flow[..., 1]
        border = cv2.BORDER_REPLICATE
        warped_l = cv2.remap(prev_l, mx, my, cv2.INTER_LINEAR, borderMode=border)
        warped_ab = cv2.remap(prev_ab, mx, my, cv2.INTER_LINEAR, borderMode=border)
        return warped_l, warped_ab


def render_lightness(lightness: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 L -> (h, w) float32 L at ``shape`` (area filter, as the engine does)."""
    h, w = shape
    if lightness.shape == (h, w):
        return lightness
    return cv2.resize(lightness, (w, h), interpolation=cv2.INTER_AREA)


def stabilizer(config: StabilizeConfig = StabilizeConfig()) -> TemporalStage:
    """A pipeline stage that stabilises the colours of each film it is given.

    Every batch is yielded, in order, as soon as its frames are done (no look-ahead), with
    the same frames; a fresh :class:`ColourStabilizer` per film, so nothing carries over
    from one file to the next.
    """

    def stage(batches: Iterator[Batch]) -> Iterator[Batch]:
        state = ColourStabilizer(config)
        pool = ArrayPool()  # the outputs, freed by the writer thread (see restore.buffers)
        for batch in batches:
            for item in batch.items:
                if item.ab is None:
                    raise RuntimeError("a frame reached the stabiliser without ab")
                l_small = item.small
                if l_small is None or l_small.shape != item.ab.shape[:2]:
                    l_small = render_lightness(item.lightness, item.ab.shape[:2])
                item.ab = state.step(l_small, item.ab, pool.take(item.ab.shape))
            yield batch
        log.debug("stabilised %d frames, %d scene cut(s)", state.frames, state.cuts)

    return stage

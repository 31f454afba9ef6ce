"""Dust and dirt removal for old film, on each frame's full-resolution lightness before it
is colorized.

Dirt on a film print sits on one frame only: the frames before and after show the picture
there. Both neighbours are aligned onto the frame by optical flow (DIS, on reduced copies),
and a pixel counts as dirt where it is brighter (or darker), by more than a threshold, than
anything both aligned neighbours show within 2 pixels of it (so small flow errors, which
move edges, are not taken for dirt), while the two neighbours agree with each other (so
motion the flow missed, where they disagree, is left alone). Dirt pixels take the neighbours' mean. A cut on either side
leaves the frame untouched.

With ``grain`` set, the same aligned neighbours also reduce film grain: each pixel is
averaged with them, each weighted by how well it matches the pixel, on the scale of the
grain measured between the frames (where the picture is still, their difference is grain
alone, whatever the texture). Where the flow missed motion they differ by far more, and
keep their own value.

Streaming with bounded memory: one frame is held back to look ahead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import cv2
import numpy as np

from restore import _kernels
from restore.video.deflicker import correlation, thumbnail
from restore.video.scratches import ScratchConfig, remove_line_scratches

T = TypeVar("T")

#: Short side of the copy optical flow is computed on.
_FLOW_SIDE = 240


@dataclass(frozen=True)
class DirtConfig:
    """Built once at the edge (the CLI)."""

    # How far (L units) a pixel must stand out of both aligned neighbours to count as dirt.
    threshold: float = 12.0
    # How closely (L units) the two aligned neighbours must agree for a pixel to be judged.
    agree: float = 8.0
    # Largest dirt blob, as a share of the frame: larger spikes are more likely a flash or
    # a fast object than dirt.
    max_blob: float = 0.005
    # Correlation of neighbouring thumbnails below which they belong to another shot.
    cut: float = 0.5
    remove_dirt: bool = True
    # Vertical line scratches, repaired on each frame before it serves as a neighbour.
    scratches: ScratchConfig | None = None
    # Temporal grain reduction strength (0: off; 1: a neighbour differing by twice the
    # grain measured between the frames still counts about half).
    grain: float = 0.0


@dataclass
class DirtStats:
    """What the stage did over one film (the report's ``dirt`` entry)."""

    frames: int = 0
    filled: float = 0.0  # mean share of each frame's pixels filled
    grain: float = 0.0  # mean grain measured between frames (L units), with grain reduction
    scratched: int = 0  # frames with a line scratch repaired
    scratch_columns: int = 0  # columns repaired, over all frames
    _measured: int = 0

    def to_dict(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {"frames": self.frames, "filled": round(self.filled, 6)}
        if self._measured:
            out["grain"] = round(self.grain, 3)
        if self.scratched:
            out["scratched_frames"] = self.scratched
            out["scratch_columns"] = self.scratch_columns
        return out


class DirtRemover(Generic[T]):
    """Takes frames in display order and gives them back in the same order, one frame later,
    each frame's lightness cleaned in place.

    ``lightness_of`` gives an item's (H, W) float32 L in [0, 100]. Call :meth:`push` per
    frame and :meth:`flush` at the end of the film.
    """

    def __init__(self, config: DirtConfig, lightness_of: Callable[[T], np.ndarray]) -> None:
        self.config = config
        self.lightness_of = lightness_of
        self.stats = DirtStats()
        self._flow = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        # (item, a copy of its L, reduced 8-bit copy, thumbnail) of the previous frame and of
        # the frame held back. The copy: once a frame is handed on, the pipeline may recycle
        # its L buffer while it still serves as the next frame's neighbour.
        self._prev: tuple[T, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._held: tuple[T, np.ndarray, np.ndarray, np.ndarray] | None = None

    def push(self, item: T) -> list[T]:
        """Add the next frame; returns the frame now cleaned, if any."""
        lightness = self.lightness_of(item)
        if self.config.scratches is not None:
            columns = remove_line_scratches(lightness, self.config.scratches)
            self.stats.scratched += columns > 0
            self.stats.scratch_columns += columns
        if not (self.config.remove_dirt or self.config.grain > 0):
            self._count(0.0)  # scratches alone: no neighbours to align, nothing held back
            return [item]
        entry = (item, lightness.copy(), _reduced(lightness), thumbnail(lightness))
        out: list[T] = []
        if self._held is not None:
            self._clean(self._held, self._prev, entry)
            out.append(self._held[0])
        self._prev, self._held = self._held, entry
        return out

    def flush(self) -> list[T]:
        """The frame still held back (the film's last, left as it is)."""
        out = [] if self._held is None else [self._held[0]]
        if self._held is not None:
            self._count(0.0)
        self._prev = self._held = None
        return out

    def _clean(
        self,
        cur: tuple[T, np.ndarray, np.ndarray, np.ndarray],
        prev: tuple[T, np.ndarray, np.ndarray, np.ndarray] | None,
        nxt: tuple[T, np.ndarray, np.ndarray, np.ndarray],
    ) -> None:
        cut = self.config.cut
        if prev is None or min(correlation(cur[3], prev[3]), correlation(cur[3], nxt[3])) < cut:
            self._count(0.0)
            return
        lightness = self.lightness_of(cur[0])
        # Each neighbour aligned by the flow from this frame to it: film weave moves single
        # frames, which the flow between the neighbours alone would miss. Dirt can mislead
        # the flow only around itself, where the neighbours then disagree and nothing is
        # filled. OpenCV's stub requires flow; None allocates it.
        to_prev = self._flow.calc(cur[2], prev[2], None)  # type: ignore[call-overload]
        to_next = self._flow.calc(cur[2], nxt[2], None)  # type: ignore[call-overload]
        before = _warp(prev[1], to_prev, lightness.shape)
        after = _warp(nxt[1], to_next, lightness.shape)
        filled = 0.0
        if self.config.remove_dirt:
            mask = find_dirt(cur[1], before, after, self.config)
            if mask.any():
                mean = (before + after) * np.float32(0.5)
                lightness[mask] = mean[mask]
            filled = float(mask.mean())
        if self.config.grain > 0:
            grain = temporal_grain(cur[1], before)
            if grain >= MIN_GRAIN:
                average_grain(lightness, before, after, self.config.grain * grain)
            st, m = self.stats, self.stats._measured
            st.grain, st._measured = (st.grain * m + grain) / (m + 1), m + 1
        self._count(filled)

    def _count(self, filled: float) -> None:
        n = self.stats.frames
        self.stats.filled = (self.stats.filled * n + filled) / (n + 1)
        self.stats.frames = n + 1


#: Grain (L units) below which frames are left as they are: clean or digital footage.
MIN_GRAIN = 0.3


def temporal_grain(lightness: np.ndarray, before: np.ndarray) -> float:
    """Grain of a frame, from its difference to the previous frame aligned onto it: the
    robust spread of that difference (median absolute value, which ignores the moving
    minority), divided by sqrt 2 as both frames carry grain. L units.

    Args:
        lightness, before: (H, W) float32 L, ``before`` aligned onto ``lightness``.
    """
    step = max(1, int(np.sqrt(lightness.size / 250_000)))  # a quarter of a million samples
    d = lightness[::step, ::step] - before[::step, ::step]
    return float(np.median(np.abs(d)) / 0.6745 / np.sqrt(2.0))


def average_grain(
    lightness: np.ndarray, before: np.ndarray, after: np.ndarray, scale: float
) -> None:
    """Average each pixel with the aligned neighbours, in place, a neighbour weighted by
    exp(-d² / (8 scale²)) for its difference d: grain-sized differences count, motion the
    flow missed does not.

    Args:
        lightness: (H, W) float32 L, modified.
        before, after: the neighbours aligned onto it.
        scale: the grain level times the strength, L units (> 0).
    """
    k = np.float32(-1.0 / (8.0 * scale * scale))
    d = before - lightness
    wb = np.exp(d * d * k)
    total = lightness + wb * before
    norm = 1.0 + wb
    d = after - lightness
    wa = np.exp(d * d * k)
    total += wa * after
    norm += wa
    np.divide(total, norm, out=lightness)


def find_dirt(
    lightness: np.ndarray, before: np.ndarray, after: np.ndarray, config: DirtConfig
) -> np.ndarray:
    """Pixels of ``lightness`` brighter or darker, by more than the threshold, than anything
    both aligned neighbours show within 2 pixels, where the neighbours agree.

    Args:
        lightness, before, after: (H, W) float32 L, the neighbours aligned onto the frame.
    Returns:
        (H, W) bool mask, grown by one pixel (dirt has soft edges) where the neighbours
        still roughly agree, without blobs larger than ``config.max_blob`` of the frame.
    """
    # Brighter than everything both neighbours show within 2 pixels, or darker: film weave
    # and flow errors of that size move edges, never make new extremes.
    window = np.ones((5, 5), np.uint8)
    high = np.maximum(cv2.dilate(before, window), cv2.dilate(after, window))
    low = np.minimum(cv2.erode(before, window), cv2.erode(after, window))
    spike = np.empty(lightness.shape, np.uint8)
    found = _kernels.spikes(
        lightness,
        low,
        high,
        before,
        after,
        np.float32(config.threshold),
        np.float32(config.agree),
        spike,
    )
    if not found:
        return np.zeros(lightness.shape, bool)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(spike, connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] <= max(4, config.max_blob * lightness.size)
    small[0] = False
    mask = cv2.dilate(small[labels].astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    ys, xs = np.nonzero(mask)  # few: the neighbours must still roughly agree where it grew
    far = np.abs(before[ys, xs] - after[ys, xs]) >= 2 * config.agree
    mask[ys[far], xs[far]] = False
    return mask


def _warp(other: np.ndarray, flow: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``other`` (H, W) float32 sampled at each pixel plus ``flow`` ((h, w, 2) float32,
    pixels of a reduced copy), at full resolution."""
    h, w = shape[:2]
    small_h, small_w = flow.shape[:2]
    sy, sx = h / small_h, w / small_w
    # Where each pixel is sampled, in full-resolution coordinates, at the reduced size:
    # linear in the position plus the motion, so resizing it loses nothing inside.
    ys, xs = np.mgrid[0:small_h, 0:small_w].astype(np.float32)
    small = np.empty((small_h, small_w, 2), np.float32)
    small[..., 0] = (xs + 0.5 + flow[..., 0]) * np.float32(sx) - 0.5
    small[..., 1] = (ys + 0.5 + flow[..., 1]) * np.float32(sy) - 0.5
    source = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.remap(other, source, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _reduced(lightness: np.ndarray) -> np.ndarray:
    """An 8-bit copy with a short side of about :data:`_FLOW_SIDE`, for optical flow."""
    h, w = lightness.shape
    scale = min(1.0, _FLOW_SIDE / min(h, w))
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    small = cv2.resize(lightness, size, interpolation=cv2.INTER_AREA)
    return np.clip(small * 2.55 + 0.5, 0, 255).astype(np.uint8)

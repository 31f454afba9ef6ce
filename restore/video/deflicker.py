"""Brightness flicker removal for old film, on each frame's full-resolution lightness
before it is colorized.

Old film flickers: exposure, development and projection make each frame a little brighter
or darker than its neighbours. Each frame's tone (a few quantiles of its L) is matched to
the average tone of the frames around it in the same shot, a window that looks ``radius``
frames back and ahead. A cut (successive frames that no longer correlate) starts a new
window, so a shot never borrows the next one's brightness. Slow, real changes (a fade, a
cloud) pass: the window is short against them, and centred, so it does not lag.

Streaming with bounded memory: at most ``radius`` frames are held back to look ahead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import cv2
import numpy as np

from restore import color

#: The tone of a frame: its L at these quantiles.
QUANTILES = np.array([0.01, 0.05, 0.15, 0.3, 0.5, 0.7, 0.85, 0.95, 0.99])
#: Samples of a frame its quantiles are measured on (a strided subsample: flicker is global).
_SAMPLES = 20_000
#: Entries of the tone table a frame is mapped through.
_LEVELS = 4001
#: Side of the thumbnail successive frames are correlated on to find cuts.
_THUMB = 32

T = TypeVar("T")


@dataclass(frozen=True)
class DeflickerConfig:
    """Built once at the edge (the CLI)."""

    radius: int = 6  # frames each side whose tone is averaged (25 fps: about half a second)
    # Correlation of successive frames' thumbnails (after their own brightness and contrast
    # are removed, so flicker does not lower it) below which a new shot starts.
    cut: float = 0.5


@dataclass
class DeflickerStats:
    """What the stage did over one film (the report's ``deflicker`` entry)."""

    frames: int = 0
    shots: int = 0
    # mean over frames of the mean |change| of the frame's tone quantiles, L units (close
    # to the mean change of its L)
    correction: float = 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {"frames": self.frames, "shots": self.shots, "correction": round(self.correction, 3)}


@dataclass
class _Held(Generic[T]):
    item: T
    tone: np.ndarray  # (len(QUANTILES),) float64 L


class Deflicker(Generic[T]):
    """Takes frames in display order and gives them back in the same order, each frame's
    lightness corrected in place, up to ``radius`` frames later.

    ``lightness_of`` gives an item's (H, W) float32 L in [0, 100], which is modified in
    place. Call :meth:`push` per frame and :meth:`flush` at the end of the film.
    """

    def __init__(self, config: DeflickerConfig, lightness_of: Callable[[T], np.ndarray]) -> None:
        self.config = config
        self.lightness_of = lightness_of
        self.stats = DeflickerStats()
        self._held: deque[_Held[T]] = deque()
        self._past: deque[np.ndarray] = deque(maxlen=max(0, config.radius))  # released, this shot
        self._thumb: np.ndarray | None = None

    def push(self, item: T) -> list[T]:
        """Add the next frame; returns the frames now corrected, in order."""
        lightness = self.lightness_of(item)
        thumb = thumbnail(lightness)
        released: list[T] = []
        if self._thumb is None or correlation(self._thumb, thumb) < self.config.cut:
            released = self.flush()  # the previous shot ends here
            self._past.clear()
            self.stats.shots += 1
        self._thumb = thumb
        self._held.append(_Held(item, tone(lightness)))
        while len(self._held) > self.config.radius:
            released.append(self._release())
        return released

    def flush(self) -> list[T]:
        """The frames still held back, corrected with the neighbours there are."""
        return [self._release() for _ in range(len(self._held))]

    def _release(self) -> T:
        entry = self._held[0]
        ahead = list(self._held)[: self.config.radius + 1]  # itself and up to radius after
        window = [*self._past, *(h.tone for h in ahead)]
        target = np.mean(window, axis=0)
        lightness = self.lightness_of(entry.item)
        change = match_tone(lightness, entry.tone, target)
        n = self.stats.frames
        self.stats.correction = (self.stats.correction * n + change) / (n + 1)
        self.stats.frames = n + 1
        self._past.append(entry.tone)
        self._held.popleft()
        return entry.item


def tone(lightness: np.ndarray) -> np.ndarray:
    """(H, W) float32 L -> its L at :data:`QUANTILES`, (9,) float64, non-decreasing."""
    step = max(1, int(np.sqrt(lightness.size / _SAMPLES)))
    return np.quantile(lightness[::step, ::step], QUANTILES).astype(np.float64)


def match_tone(lightness: np.ndarray, source: np.ndarray, target: np.ndarray) -> float:
    """Map ``lightness`` in place so that its ``source`` quantiles land on ``target``:
    piecewise linear between them, shifted beyond the ends (nothing is clipped flat).

    Applied through a table of :data:`_LEVELS` entries over 0..100 L (steps of 0.025 L,
    far below one 8-bit output level), one lookup per pixel.

    Returns the mean change of the quantiles (about the mean change of L), L units.
    """
    src = np.maximum.accumulate(source) + np.arange(len(source)) * 1e-4  # strictly increasing
    dst = np.maximum.accumulate(target)
    xs = np.concatenate([[0.0], src, [100.0]])
    ys = np.concatenate([[dst[0] - src[0]], dst, [dst[-1] + 100.0 - src[-1]]])
    if xs[0] >= xs[1]:  # a frame whose darkest quantile is 0: no anchor below it
        xs, ys = xs[1:], ys[1:]
    if xs[-1] <= xs[-2]:
        xs, ys = xs[:-1], ys[:-1]
    table = np.clip(np.interp(np.linspace(0.0, 100.0, _LEVELS), xs, ys), 0.0, 100.0)
    color.apply_tone_table(lightness, table.astype(np.float32))
    return float(np.abs(dst - src).mean())


def thumbnail(lightness: np.ndarray) -> np.ndarray:
    step = max(1, min(lightness.shape) // (4 * _THUMB))  # a strided view first: cheaper
    small = cv2.resize(
        np.ascontiguousarray(lightness[::step, ::step]),
        (_THUMB, _THUMB),
        interpolation=cv2.INTER_AREA,
    )
    small = small.astype(np.float64) - small.mean()
    norm = float(np.linalg.norm(small))
    return small / norm if norm > 1e-6 else small


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two thumbnails from :func:`thumbnail` (flat ones: 1 if both)."""
    if not a.any() or not b.any():
        return 1.0 if not a.any() and not b.any() else 0.0
    return float((a * b).sum())

"""Vertical line scratches of old film, on each frame's full-resolution lightness.

A scratch along the film runs down the whole frame as a thin bright (emulsion scraped off)
or dark (base scratched) line, in the same place for many frames. Per frame: a horizontal
grey opening (closing) of a few pixels takes away bright (dark) lines thinner than it and
keeps everything wider; a column counts as a scratch where that residual stands out in
most rows, evenly, and in no more than a few neighbouring columns. Its pixels take the
opened (closed) value, which is what the picture shows just beside the line. Poles, masts
and door frames are wider, end within the frame or change contrast along their length,
and are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ScratchConfig:
    """Built once at the edge (the CLI)."""

    width: int = 7  # lines thinner than this many pixels (at 720 lines) are candidates
    contrast: float = 3.0  # L units a line must stand out of its sides in a row
    coverage: float = 0.8  # share of the rows where it must do so
    evenness: float = 0.6  # its contrast's median over its mean, along the rows, at least


def remove_line_scratches(lightness: np.ndarray, config: ScratchConfig) -> int:
    """Repair vertical line scratches in place; returns the number of columns repaired.

    Args:
        lightness: (H, W) float32 L in [0, 100], modified.
    """
    h, w = lightness.shape
    k = max(5, round(config.width * h / 720)) | 1  # odd, scaled with the frame
    if h < 16 or w < 4 * k:
        return 0
    kernel = np.ones((1, k), np.uint8)
    fixed = 0
    for op, sign in ((cv2.MORPH_OPEN, 1.0), (cv2.MORPH_CLOSE, -1.0)):
        smooth = cv2.morphologyEx(lightness, op, kernel)
        residual = (lightness - smooth) * np.float32(sign)  # >= 0: the line's contrast
        columns = scratch_columns(residual, config, k)
        if columns.size:
            lightness[:, columns] = smooth[:, columns]
            fixed += int(columns.size)
    return fixed


def scratch_columns(residual: np.ndarray, config: ScratchConfig, width: int) -> np.ndarray:
    """Columns whose residual marks a full-height, even, thin line (sorted indices).

    Args:
        residual: (H, W) float32, how far each pixel stands out of its row neighbourhood
            (0 where it does not).
        width: the opening's width; a run of candidate columns wider than half of it is a
            wide thing's edge, not a scratch.
    """
    strong = residual > np.float32(config.contrast)
    coverage = strong.mean(axis=0)
    candidates = coverage >= config.coverage
    # The frame's outer columns are often darkened or smeared by scaling and encoding,
    # and a line there has a side on one side only.
    candidates[:width] = candidates[-width:] = False
    if not candidates.any():
        return np.zeros(0, np.intp)
    mean = residual.mean(axis=0)
    median = np.median(residual[:, candidates], axis=0)
    even = np.zeros_like(candidates)
    even[candidates] = median >= config.evenness * mean[candidates]
    candidates &= even
    keep = np.zeros_like(candidates)
    # runs of neighbouring candidate columns: a scratch is 1 to width // 2 columns wide
    padded = np.concatenate([[False], candidates, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if stop - start < width:
            keep[max(0, start - 1) : stop + 1] = True  # and its soft rim
    return np.flatnonzero(keep)

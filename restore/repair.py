"""Repairing an old print's lightness before it is colorized: dust, scratches, faded tone.

    L (full size) -> detector at a reduced size -> defect mask, upsampled and widened
    -> masked pixels filled from their surroundings (OpenCV's Telea inpainting)
    -> grain reduced by wavelet shrinkage, as strongly as the grain measured in flat areas
       (if asked for)
    -> faded black and white points stretched back, conservatively

The detector (:class:`restore.models.DefectNet`) was trained on photos with the synthetic
damage of ``train/degrade.py``; clean scans give an almost empty mask and a tone already
spanning the range, so they pass nearly unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from restore import color
from restore.weights import load_detector

SHIPPED_DETECTOR = "restore_defects.safetensors"


def default_detector() -> Path:
    """The shipped defect detector (weights/, installed as restore._weights)."""
    try:
        from importlib.resources import files

        return Path(str(files("restore._weights").joinpath(SHIPPED_DETECTOR)))
    except (ModuleNotFoundError, TypeError):
        return Path(__file__).resolve().parent.parent / "weights" / SHIPPED_DETECTOR


@dataclass(frozen=True)
class RepairConfig:
    """How photos are repaired. Built once by the CLI."""

    weights: Path | None = None  # None: the shipped detector
    detect_size: int = 1024  # long side the detector sees (defects of a few pixels there)
    threshold: float = 0.5  # defect probability above which a pixel is filled
    widen: int = 1  # pixels the full-size mask grows by (the blurred rim of a speck)
    radius: int = 3  # inpainting neighbourhood, full-size pixels
    # Grain reduction strength (0: off; 1: follows the grain measured). Off by default: the
    # measure cannot yet tell fine texture from grain in small pictures (benchmarks/RESULTS.md).
    denoise: float = 0.0
    noise_floor: float = 1.0  # grain below this (L units) is left alone: a clean scan
    tone: bool = True  # stretch a faded tone back
    threads: int = 0  # CPU threads for the detector (0: torch as set, OpenVINO all cores)
    # "openvino" (the CPU runtime the generator uses; about 3x faster here) or "torch"; torch
    # is used where OpenVINO is not installed.
    runtime: str = "openvino"


@dataclass(frozen=True)
class RepairStats:
    """What was done to one picture (the report's ``repair`` entry)."""

    filled: float  # share of pixels filled
    black: float  # L the darkest tones were moved from (0.1 % quantile) ...
    white: float  # ... and the brightest (99.9 %); equal to the targets if left alone
    gain: float  # tone stretch applied (1: none)
    noise: float = 0.0  # grain measured in flat areas, standard deviation in L units
    denoised: bool = False  # whether grain reduction ran

    def to_dict(self) -> dict[str, Any]:
        return {
            "filled": round(self.filled, 6),
            "noise": round(self.noise, 2),
            "denoised": self.denoised,
            "black": round(self.black, 2),
            "white": round(self.white, 2),
            "gain": round(self.gain, 4),
        }


class PhotoRepairer:
    """A loaded detector and the repair steps; safe to call from several threads."""

    def __init__(self, config: RepairConfig = RepairConfig()) -> None:
        self.config = config
        self.model, self.info = load_detector(config.weights or default_detector())
        self.multiple = self.model.config.multiple
        self._ov: Any = None
        if config.runtime == "openvino":
            from restore import ov_runner

            if ov_runner.available():
                threads = config.threads or os.cpu_count() or 1
                self._ov = ov_runner.OpenVINORunner(
                    self.model, torch.float32, streams=2, threads=threads
                )
                self.multiple = 32  # what its exported program takes

    def defect_mask(self, lightness: np.ndarray) -> np.ndarray:
        """(H, W) bool: pixels covered by dust, scratches or hairs.

        Args:
            lightness: (H, W) float32 L in [0, 100].
        """
        h, w = lightness.shape
        scale = min(1.0, self.config.detect_size / max(h, w))
        sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
        small = (
            lightness
            if scale == 1.0
            else cv2.resize(lightness, (sw, sh), interpolation=cv2.INTER_AREA)
        )
        m = self.multiple
        ph, pw = -sh % m, -sw % m
        padded = np.pad(small, ((0, ph), (0, pw)), mode="reflect") if ph or pw else small
        x = color.normalize_l(torch.from_numpy(np.ascontiguousarray(padded, np.float32)))
        with torch.no_grad():
            logits = self.model(x[None, None]) if self._ov is None else self._ov(x[None, None])
            prob = torch.sigmoid(logits)[0, 0, :sh, :sw].numpy()
        if scale != 1.0:
            prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
        mask: np.ndarray = (prob > self.config.threshold).astype(np.uint8)
        if self.config.widen and mask.any():
            k = 2 * self.config.widen + 1
            disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
            mask = np.asarray(cv2.dilate(mask, disk))
        return mask.astype(bool)

    def repair(self, lightness: np.ndarray) -> tuple[np.ndarray, RepairStats]:
        """The repaired lightness and what was done.

        Args:
            lightness: (H, W) float32 L in [0, 100] (not modified).
        Returns:
            (H, W) float32 L in [0, 100], and the stats.
        """
        mask = self.defect_mask(lightness)
        noise = noise_level(lightness)  # before filling: filled areas would look grain-free
        out = lightness
        if mask.any():
            out = cv2.inpaint(
                np.ascontiguousarray(lightness, np.float32),
                mask.astype(np.uint8),
                self.config.radius,
                cv2.INPAINT_TELEA,
            )
        denoised = self.config.denoise > 0 and noise >= self.config.noise_floor
        if denoised:
            out = reduce_grain(out, GRAIN_FACTOR * self.config.denoise * noise)
        black, white, gain = 0.0, 100.0, 1.0
        if self.config.tone:
            out, black, white, gain = stretch_tone(out)
        return np.clip(out, 0.0, 100.0, out=None), RepairStats(
            float(mask.mean()), black, white, gain, noise, denoised
        )


#: Shrinkage threshold, times the grain measured, at strength 1: clumped grain reaches below
#: the finest wavelet band, where the measured level alone shrinks too little.
GRAIN_FACTOR = 1.5
#: Window (pixels) over which the local spread of lightness is measured, and the share of the
#: flattest windows whose spread is taken for the grain: skies, walls and backdrops.
NOISE_WINDOW, NOISE_QUANTILE = 16, 10.0


def noise_level(lightness: np.ndarray) -> float:
    """Grain of a picture: the standard deviation of L in its flattest areas (L units).

    The usual estimate from the finest wavelet band (Donoho's) misses film grain clumped
    over a few pixels; the spread within small windows sees it, and its low quantile
    leaves out the windows that hold edges and texture.

    Args:
        lightness: (H, W) float32 L in [0, 100].
    """
    x = np.asarray(lightness, np.float32)
    w = NOISE_WINDOW
    if min(x.shape) < 4 * w:
        return 0.0
    spreads = [_window_spreads(tile, w) for tile in _sample_tiles(x, 16 * w)]
    sample = np.concatenate([s.ravel() for s in spreads])
    return float(np.sqrt(max(float(np.percentile(sample, NOISE_QUANTILE)), 0.0)))


def _window_spreads(x: np.ndarray, w: int) -> np.ndarray:
    """Variance of ``x`` in w x w windows overlapping by half (away from the border)."""
    mean = cv2.blur(x, (w, w))
    spread = cv2.blur(x * x, (w, w)) - mean * mean
    return np.asarray(spread[w : -w : w // 2, w : -w : w // 2])


#: Tiles the grain of a large picture is measured on (spread over it): a 12 MP scan then
#: costs about as much as a 1 MP one.
NOISE_TILES = 6


def _sample_tiles(x: np.ndarray, side: int) -> list[np.ndarray]:
    """The whole picture if small, else NOISE_TILES² tiles of ``side`` on an even grid."""
    h, w = x.shape
    if h * w <= (NOISE_TILES * side) ** 2:
        return [x]
    ys = np.linspace(0, h - side, NOISE_TILES).astype(int) if h > side else [0]
    xs = np.linspace(0, w - side, NOISE_TILES).astype(int) if w > side else [0]
    return [x[y : y + side, c : c + side] for y in ys for c in xs]


def reduce_grain(lightness: np.ndarray, sigma: float) -> np.ndarray:
    """Grain of standard deviation ``sigma`` (L units) shrunk away by wavelet
    thresholding (BayesShrink, soft), which keeps edges.

    Args:
        lightness: (H, W) float32 L in [0, 100].
    Returns:
        (H, W) float32 L.
    """
    from skimage.restoration import denoise_wavelet

    out = denoise_wavelet(
        np.asarray(lightness, np.float32) / 100.0,
        sigma=sigma / 100.0,
        wavelet="db2",
        mode="soft",
        method="BayesShrink",
        rescale_sigma=True,
    )
    return (np.asarray(out, np.float32) * 100.0).astype(np.float32, copy=False)


#: Tone targets: the darkest and brightest 0.1 % of a print's pixels are moved at most to
#: these L values, never further (a night scene or a snow field keeps its range).
BLACK_TARGET, WHITE_TARGET = 4.0, 96.0
#: Stretches below this are left alone (a scan that already spans its range) ...
MIN_GAIN = 1.05
#: ... and none goes beyond this: a misty landscape or a low-key portrait keeps its mood.
MAX_GAIN = 1.3


def stretch_tone(lightness: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """Faded black and white points moved back towards the targets, linearly, by at most
    :data:`MAX_GAIN`.

    Returns (L, black, white, gain): the 0.1 % and 99.9 % quantiles found and the gain
    applied (1.0 and the input itself when the print already spans the range).
    """
    step = max(1, lightness.size // 1_000_000)  # quantiles from a million pixels at most
    sample = lightness.reshape(-1)[::step]
    black, white = (float(v) for v in np.quantile(sample, [0.001, 0.999]))
    lo, hi = min(black, BLACK_TARGET), max(white, WHITE_TARGET)
    if white - black < 1.0:
        return lightness, black, white, 1.0
    gain = (hi - lo) / (white - black)
    if gain < MIN_GAIN:
        return lightness, black, white, 1.0
    gain = min(gain, MAX_GAIN)
    # the print's middle tone goes where the full stretch would put it
    mid, target = (black + white) / 2, (lo + hi) / 2
    out = (lightness - np.float32(mid)) * np.float32(gain) + np.float32(target)
    return out.astype(np.float32, copy=False), black, white, float(gain)

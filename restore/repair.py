"""Repairing an old print's lightness before it is colorized: dust, scratches, faded tone.

    L (full size) -> detector at a reduced size -> defect mask, upsampled and widened
    -> masked pixels filled from their surroundings (OpenCV's Telea inpainting)
    -> grain averaged away (non-local means), as strongly as a small network
       (:class:`restore.models.GrainNet`) reads it on patches of the picture
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
from restore.models import GrainNet
from restore.weights import load_cleanup, load_detector, load_grain_estimator

SHIPPED_DETECTOR = "restore_defects.safetensors"
SHIPPED_GRAIN = "restore_grain.safetensors"


def shipped(name: str) -> Path:
    """A shipped weights file (weights/, installed as restore._weights)."""
    try:
        from importlib.resources import files

        return Path(str(files("restore._weights").joinpath(name)))
    except (ModuleNotFoundError, TypeError):
        return Path(__file__).resolve().parent.parent / "weights" / name


def default_detector() -> Path:
    """The shipped defect detector."""
    return shipped(SHIPPED_DETECTOR)


@dataclass(frozen=True)
class RepairConfig:
    """How photos are repaired. Built once by the CLI."""

    weights: Path | None = None  # None: the shipped detector
    grain_weights: Path | None = None  # None: the shipped grain estimator
    # A cleanup network (train/cleanup.py) instead of non-local means. None ships: the one
    # trained so far measures below non-local means (benchmarks/RESULTS.md).
    cleanup_weights: Path | None = None
    detect_size: int = 1024  # long side the detector sees (defects of a few pixels there)
    threshold: float = 0.5  # defect probability above which a pixel is filled
    widen: int = 1  # pixels the full-size mask grows by (the blurred rim of a speck)
    radius: int = 3  # inpainting neighbourhood, full-size pixels
    # Grain reduction strength (0: off; 1: follows the grain read in the picture).
    denoise: float = 1.0
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
    impulses: float = 0.0  # share of pixels replaced as salt and pepper

    def to_dict(self) -> dict[str, Any]:
        return {
            "filled": round(self.filled, 6),
            "noise": round(self.noise, 2),
            "denoised": self.denoised,
            "impulses": round(self.impulses, 6),
            "black": round(self.black, 2),
            "white": round(self.white, 2),
            "gain": round(self.gain, 4),
        }


class PhotoRepairer:
    """A loaded detector and the repair steps; safe to call from several threads."""

    def __init__(self, config: RepairConfig = RepairConfig()) -> None:
        self.config = config
        self.model, self.info = load_detector(config.weights or default_detector())
        self.grain, _ = load_grain_estimator(config.grain_weights or shipped(SHIPPED_GRAIN))
        self.cleaner = load_cleanup(config.cleanup_weights)[0] if config.cleanup_weights else None
        self.multiple = self.model.config.multiple
        self._ov: Any = None
        self._ov_cleaner: Any = None
        if config.runtime == "openvino":
            from restore import ov_runner

            if ov_runner.available():
                threads = config.threads or os.cpu_count() or 1
                self._ov = ov_runner.OpenVINORunner(
                    self.model, torch.float32, streams=2, threads=threads
                )
                if self.cleaner is not None:
                    self._ov_cleaner = ov_runner.OpenVINORunner(
                        self.cleaner, torch.float32, streams=2, threads=threads
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
        lightness, impulses = remove_impulses(lightness)
        mask = self.defect_mask(lightness)
        # read before filling: the filled pixels have no grain
        noise = noise_level(lightness, self.grain)
        out = lightness
        if mask.any():
            out = cv2.inpaint(
                np.ascontiguousarray(lightness, np.float32),
                mask.astype(np.uint8),
                self.config.radius,
                cv2.INPAINT_TELEA,
            )
        denoised = self.config.denoise > 0 and noise >= self.config.noise_floor
        if self.cleaner is not None and self.config.denoise > 0:
            out = self.clean(out, self.config.denoise)
            denoised = True
        elif denoised:
            strength = min(GRAIN_FACTOR * noise, GRAIN_FILTER_MAX) * self.config.denoise
            out = reduce_grain(out, strength)
        black, white, gain = 0.0, 100.0, 1.0
        if self.config.tone:
            out, black, white, gain = stretch_tone(out)
        return np.clip(out, 0.0, 100.0, out=None), RepairStats(
            float(mask.mean()), black, white, gain, noise, denoised, impulses
        )

    def clean(self, lightness: np.ndarray, strength: float = 1.0) -> np.ndarray:
        """Grain, blur and JPEG blocks taken out by the cleanup network, ``strength`` of its
        correction applied (1: all of it). Large pictures run in overlapping tiles, so
        memory stays bounded.

        Args:
            lightness: (H, W) float32 L in [0, 100].
        Returns:
            (H, W) float32 L (not clipped).
        """
        x = np.asarray(lightness, np.float32)
        h, w = x.shape
        m = self.multiple
        run = self.cleaner if self._ov_cleaner is None else self._ov_cleaner
        assert run is not None, "built without cleanup weights"
        if max(h, w) <= CLEANUP_TILE:
            ph, pw = -h % m, -w % m
            padded = np.pad(x, ((0, ph), (0, pw)), mode="reflect") if ph or pw else x
            cleaned = _cleanup_batch(run, padded[None])[0, :h, :w]
        else:
            cleaned = np.empty_like(x)
            core, edge = CLEANUP_TILE - 2 * CLEANUP_MARGIN, CLEANUP_MARGIN
            rows, cols = -(-h // core), -(-w // core)
            padded = np.pad(
                x, ((edge, rows * core - h + edge), (edge, cols * core - w + edge)), mode="reflect"
            )
            origins = [(r * core, c * core) for r in range(rows) for c in range(cols)]
            for i in range(0, len(origins), CLEANUP_BATCH):
                chunk = origins[i : i + CLEANUP_BATCH]
                tiles = np.stack(
                    [padded[y : y + CLEANUP_TILE, c : c + CLEANUP_TILE] for y, c in chunk]
                )
                done = _cleanup_batch(run, tiles)[:, edge : edge + core, edge : edge + core]
                for (y, c), tile in zip(chunk, done, strict=True):
                    hh, ww = min(core, h - y), min(core, w - c)
                    cleaned[y : y + hh, c : c + ww] = tile[:hh, :ww]
        if strength == 1.0:
            return cleaned
        return np.asarray(x + np.float32(strength) * (cleaned - x), np.float32)


#: L units a lone pixel must stand out from all eight of its neighbours to be an impulse ...
IMPULSE_STEP = 25.0
#: ... and the share of such pixels below which they are real detail (stars, glints) and
#: stay: salt and pepper sprinkles a print with thousands of them.
IMPULSE_MIN_SHARE = 5e-4


def remove_impulses(lightness: np.ndarray) -> tuple[np.ndarray, float]:
    """Salt and pepper (single pixels far brighter or darker than all their neighbours)
    replaced by the median of their 3x3 neighbourhood, when a print has enough of them.

    Args:
        lightness: (H, W) float32 L in [0, 100] (not modified).
    Returns:
        (H, W) float32 L (the input itself when nothing was replaced), and the share of
        pixels replaced.
    """
    x = np.ascontiguousarray(lightness, np.float32)
    ring = np.ones((3, 3), np.uint8)
    ring[1, 1] = 0
    hit = (x > cv2.dilate(x, ring) + IMPULSE_STEP) | (x < cv2.erode(x, ring) - IMPULSE_STEP)
    share = float(hit.mean())
    if share < IMPULSE_MIN_SHARE:
        return lightness, 0.0
    out = x.copy()
    out[hit] = cv2.medianBlur(x, 3)[hit]
    return out, share


#: The cleanup network runs on tiles of this side (pixels; a multiple of 32) ...
CLEANUP_TILE = 512
#: ... keeping their centres: this much context on each side is more than the network sees.
CLEANUP_MARGIN = 32
#: Tiles run at once (memory: about 40 MB each).
CLEANUP_BATCH = 2


def _cleanup_batch(run: Any, tiles: np.ndarray) -> np.ndarray:
    """(N, H, W) float32 L through the cleanup network -> (N, H, W) float32 L."""
    x = color.normalize_l(torch.from_numpy(np.ascontiguousarray(tiles[:, None], np.float32)))
    with torch.no_grad():
        y = run(x)
    return np.asarray(color.denormalize_l(y)[:, 0].numpy(), np.float32)


#: Filtering strength (non-local means' h), times the grain read, at strength 1 ...
GRAIN_FACTOR = 1.3
#: ... and at most this (L units): stronger filtering turns a very grainy print waxy, and
#: some grain left reads better than faces smoothed flat.
GRAIN_FILTER_MAX = 6.0
#: Patches of a picture the grain estimator reads: an even grid of at most this many per
#: side, so a 12 MP scan costs about as much as a 1 MP one.
GRAIN_GRID = 8
#: The picture's grain is this percentile of its patches' readings: grain covers the whole
#: print, while a patch of dense texture may still read as a little grain.
GRAIN_QUANTILE = 25.0


def noise_level(lightness: np.ndarray, estimator: GrainNet) -> float:
    """Grain of a picture: the root mean square of its grain or noise, in L units.

    Read by a small network trained to tell grain from the picture's own texture and edges
    (``train/grain.py``) on patches spread over the picture; a clean picture reads near 0.

    Args:
        lightness: (H, W) float32 L in [0, 100].
        estimator: the grain estimator (:func:`restore.weights.load_grain_estimator`).
    """
    x = np.asarray(lightness, np.float32)
    p = estimator.config.patch
    h, w = x.shape
    if h < p or w < p:
        return 0.0
    patches = np.stack([x[y : y + p, c : c + p] for y in _grid(h, p) for c in _grid(w, p)])
    with torch.no_grad():
        grain = estimator(color.normalize_l(torch.from_numpy(patches[:, None]))).numpy()
    return float(np.percentile(grain, GRAIN_QUANTILE))


def _grid(n: int, p: int) -> np.ndarray:
    """Starts of up to GRAIN_GRID patches of side ``p`` spread evenly over ``n`` pixels."""
    return np.linspace(0, n - p, max(1, min(GRAIN_GRID, n // p))).astype(int)


def reduce_grain(lightness: np.ndarray, strength: float) -> np.ndarray:
    """Grain averaged away by OpenCV's non-local means: each pixel takes the mean of the
    pixels within 11 whose 5x5 surroundings look alike, so edges and repeated texture are
    kept. ``strength`` is its h in L units (about the grain's root mean square).

    OpenCV filters 8-bit pictures: its change is added to the float input, so a 16-bit
    scan keeps its finer steps where nothing was averaged.

    Args:
        lightness: (H, W) float32 L in [0, 100].
    Returns:
        (H, W) float32 L.
    """
    x = np.asarray(lightness, np.float32)
    u8 = np.clip(np.round(x * 2.55), 0, 255).astype(np.uint8)
    smooth = cv2.fastNlMeansDenoising(
        u8, None, h=float(strength * 2.55), templateWindowSize=5, searchWindowSize=11
    )
    change = (smooth.astype(np.float32) - u8.astype(np.float32)) / np.float32(2.55)
    return np.asarray(x + change, np.float32)


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

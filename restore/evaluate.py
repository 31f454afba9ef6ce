"""Colorization quality against colour ground truth; shared by `restore eval` and training."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from skimage.color import deltaE_ciede2000
from skimage.metrics import structural_similarity

from restore import color
from restore.engine import Colorizer


@dataclass(frozen=True)
class ImageScore:
    """Scores of one image; *_gray are for the gray input left as it is."""

    name: str
    psnr: float
    ssim: float
    delta_e: float
    colourfulness: float
    colourfulness_truth: float
    psnr_gray: float
    ssim_gray: float
    delta_e_gray: float

    @property
    def delta_cf(self) -> float:
        return self.colourfulness - self.colourfulness_truth

    def to_dict(self) -> dict[str, float | str]:
        return {**asdict(self), "delta_cf": self.delta_cf}


def _scores(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    """PSNR (dB) and SSIM on 8-bit RGB, mean CIEDE2000 on Lab. Inputs (H, W, 3) float [0, 1]."""
    t8 = np.round(truth * 255).astype(np.uint8)
    p8 = np.round(pred * 255).astype(np.uint8)
    mse = float(np.mean((t8.astype(np.float64) - p8) ** 2))
    psnr = 10 * math.log10(255.0**2 / mse) if mse > 0 else 100.0
    ssim = structural_similarity(t8, p8, channel_axis=2, data_range=255)
    de = float(deltaE_ciede2000(color.rgb_to_lab(truth), color.rgb_to_lab(pred)).mean())
    return float(min(psnr, 100.0)), float(ssim), de


def score_image(name: str, truth: np.ndarray, pred: np.ndarray) -> ImageScore:
    """Score a colorization against its truth. Both (H, W, 3) float32 RGB in [0, 1]."""
    gray = np.repeat(color.l_to_gray(color.rgb_to_l(truth))[..., None], 3, axis=2)
    p, s, d = _scores(truth, pred)
    pg, sg, dg = _scores(truth, gray)
    return ImageScore(
        name=name,
        psnr=p,
        ssim=s,
        delta_e=d,
        colourfulness=color.colourfulness(pred),
        colourfulness_truth=color.colourfulness(truth),
        psnr_gray=pg,
        ssim_gray=sg,
        delta_e_gray=dg,
    )


def evaluate(
    colorizer: Colorizer,
    images: Iterable[tuple[str, np.ndarray]],
    on_image: Callable[[ImageScore], None] | None = None,
) -> tuple[list[ImageScore], dict[str, float]]:
    """Colorize the gray version of each (name, (H, W, 3) float32 RGB in [0, 1]) truth and
    score it.

    The truth goes through :meth:`Colorizer.colorize` as 8-bit RGB (colorized from its
    luminance), so what is scored is the 8-bit image `restore photos` would write.
    """
    scores: list[ImageScore] = []
    for name, truth in images:
        pred = colorize_u8(colorizer, truth)
        sc = score_image(name, truth, pred)
        scores.append(sc)
        if on_image:
            on_image(sc)
    return scores, summarise(scores)


def colorize_u8(colorizer: Colorizer, rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1] -> its colorization through the 8-bit path of
    :meth:`Colorizer.colorize`, (H, W, 3) float32 in [0, 1]."""
    rgb8 = np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
    return colorizer.colorize(rgb8).astype(np.float32) * np.float32(1.0 / 255.0)


def summarise(scores: list[ImageScore]) -> dict[str, float]:
    """Means over images, plus the ratio of colourfulness to the truth's."""
    if not scores:
        return {}
    keys = [k for k in scores[0].to_dict() if k != "name"]
    mean = {k: float(np.mean([s.to_dict()[k] for s in scores])) for k in keys}
    truth_cf = mean["colourfulness_truth"]
    mean["colourfulness_ratio"] = mean["colourfulness"] / truth_cf if truth_cf > 0 else math.nan
    mean["n"] = float(len(scores))
    return mean


def read_truth_images(paths: Iterable[Path]) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (name, (H, W, 3) float32 RGB in [0, 1]) for readable images; skip others."""
    for p in paths:
        data = np.fromfile(p, dtype=np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None  # EXIF-rotated
        if img is None:
            continue
        yield p.name, color.to_float_rgb(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))

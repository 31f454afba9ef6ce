"""Colour-rebalanced L1: weight each pixel by the rarity of its true ab colour.

Plain L1 makes G predict the (conditional) median colour, which on a mixed photo set
is pulled towards gray-brown: the dull, sepia-leaning look. Zhang et al. (2016,
"Colorful Image Colorization") counter this by weighting each pixel's loss by the
inverse of a smoothed prior over quantised ab, mixed with a uniform distribution.
For an L1 regressor the same weights move the weighted median towards rarer,
more saturated colours. ``strength`` interpolates between plain L1 (0) and the paper's
weights (1) as ``w ** strength``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from restore import color

#: ab quantisation: 10 units per bin over [-110, 110), as in Zhang et al.
BIN = 10.0
AB_MAX = 110.0
BINS = int(2 * AB_MAX / BIN)


def ab_prior(ab_samples: np.ndarray, sigma_bins: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed empirical distribution of ab colours.

    ab_samples: (N, 2) float, ab in Lab units. Returns the (BINS, BINS) float64 prior
    summing to 1 (rows index a, columns index b) and the (BINS, BINS) bool mask of the
    bins some sample reached (before smoothing).
    """
    idx = _bin_index(np.asarray(ab_samples, np.float64))
    counts = np.bincount(idx[:, 0] * BINS + idx[:, 1], minlength=BINS * BINS)
    hist: np.ndarray = counts.astype(np.float64).reshape(BINS, BINS)
    reached = hist > 0
    if sigma_bins > 0:
        import cv2

        hist = cv2.GaussianBlur(hist, (0, 0), sigma_bins, borderType=cv2.BORDER_CONSTANT)
    total = hist.sum()
    if total <= 0:
        raise ValueError("no ab samples")
    return hist / total, reached


def rebalance_weights(
    prior: np.ndarray, mix: float = 0.5, reached: np.ndarray | None = None
) -> np.ndarray:
    """Zhang et al.'s class weights: ((1 - mix) * p + mix / Q) ** -1, normalised so that
    their expectation under ``prior`` is 1. Q counts the bins the data reaches
    (``reached``, before smoothing; default: the bins where the prior is not 0).

    prior: (BINS, BINS) summing to 1. Returns (BINS, BINS) float64, all > 0.
    """
    q = max(int((prior > 0 if reached is None else reached).sum()), 1)
    w = 1.0 / ((1.0 - mix) * prior + mix / q)
    return w / float((prior * w).sum())


def sample_ab(rgb_images: Iterable[np.ndarray], per_image: int, seed: int) -> np.ndarray:
    """Random ab samples from float RGB images (H, W, 3) in [0, 1], taken one image at a
    time (only the samples are kept). Returns (N, 2) float32."""
    rng = np.random.default_rng(seed)
    out = []
    for rgb in rgb_images:
        lab = color.rgb_to_lab(rgb).reshape(-1, 3)
        pick = rng.integers(0, lab.shape[0], size=min(per_image, lab.shape[0]))
        out.append(lab[pick, 1:])
    return np.concatenate(out).astype(np.float32)


class RebalancedL1(nn.Module):
    """Per-pixel L1 on normalised ab, weighted by the rarity of the true colour.

    ``weights``: (BINS, BINS) from :func:`rebalance_weights`; ``strength`` 0 is plain L1.
    """

    weights: torch.Tensor  # (BINS * BINS,) registered buffer

    def __init__(self, weights: np.ndarray, strength: float) -> None:
        super().__init__()
        w = torch.as_tensor(weights, dtype=torch.float32) ** strength
        self.register_buffer("weights", w.flatten())
        self.strength = strength

    def pixel_weights(self, ab_n: torch.Tensor) -> torch.Tensor:
        """ab_n: (B, 2, H, W) normalised ab. Returns (B, 1, H, W) float32 weights."""
        ab = color.denormalize_ab(ab_n.float())
        idx = torch.clamp(((ab + AB_MAX) / BIN).floor().long(), 0, BINS - 1)
        flat = idx[:, 0] * BINS + idx[:, 1]
        return self.weights[flat].unsqueeze(1)

    def forward(self, fake_n: torch.Tensor, ab_n: torch.Tensor) -> torch.Tensor:
        err = (fake_n.float() - ab_n).abs()
        if self.strength == 0:
            return err.mean()
        w = self.pixel_weights(ab_n)
        return (w * err).sum() / (w.sum() * err.shape[1])


def _bin_index(ab: np.ndarray) -> np.ndarray:
    return np.clip(np.floor((ab + AB_MAX) / BIN), 0, BINS - 1).astype(np.int64)

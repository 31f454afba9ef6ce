"""Colour classification loss (Zhang, Isola and Efros 2016).

The true ab of each pixel (area-averaged to the head's stride) is soft-encoded over its
``k`` nearest bins with a Gaussian kernel; the loss is the cross-entropy of the predicted
distribution against it, weighted per pixel by the rarity of its colour: the inverse of
the training set's smoothed colour prior mixed with a uniform distribution. Without the
weights the common desaturated bins dominate and the decoded colour drifts to brown again.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from restore import color, colorbins


def bin_prior(ab_samples: np.ndarray, centres: np.ndarray, sigma: float = 5.0) -> np.ndarray:
    """Empirical distribution of colours over the bins, smoothed over ab.

    Args:
        ab_samples: (N, 2) float ab in Lab units.
        centres: (Q, 2) float32 bin centres in Lab units.
        sigma: Gaussian smoothing in ab units (the paper's 5).
    Returns:
        (Q,) float64 summing to 1.
    """
    idx = colorbins.nearest_bin(ab_samples, centres)
    hist = np.bincount(idx.ravel(), minlength=len(centres)).astype(np.float64)
    d2 = ((centres[:, None, :] - centres[None, :, :]) ** 2).sum(-1).astype(np.float64)
    kernel = np.exp(-d2 / (2 * sigma * sigma))
    smooth = kernel @ hist
    total = smooth.sum()
    if total <= 0:
        raise ValueError("no ab samples")
    return smooth / total


def class_weights(prior: np.ndarray, mix: float = 0.5) -> np.ndarray:
    """((1 - mix) * prior + mix / Q) ** -1, normalised to expectation 1 under ``prior``.

    prior: (Q,) summing to 1. Returns (Q,) float64, all > 0.
    """
    w = 1.0 / ((1.0 - mix) * prior + mix / len(prior))
    return w / float((prior * w).sum())


class ClassLoss(nn.Module):
    """Rebalanced soft-encoded cross-entropy over quantised ab.

    ``centres_n``: (Q, 2) normalised ab of the bins (the generator's ``bin_ab``);
    ``weights``: (Q,) from :func:`class_weights` (ones for no rebalancing).
    """

    centres: torch.Tensor  # (Q, 2) registered buffers
    weights: torch.Tensor  # (Q,)

    def __init__(
        self,
        centres_n: torch.Tensor,
        weights: np.ndarray,
        neighbours: int = 5,
        sigma: float = 5.0,
    ) -> None:
        super().__init__()
        self.register_buffer("centres", torch.as_tensor(centres_n, dtype=torch.float32))
        self.register_buffer("weights", torch.as_tensor(weights, dtype=torch.float32))
        self.k = neighbours
        self.sigma_n = float(color.normalize_ab(np.array(sigma, np.float32)))

    def targets(
        self, ab_n: torch.Tensor, size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft targets and pixel weights at the head's resolution.

        ab_n: (B, 2, H, W) normalised true ab. Returns (B, Q, h, w) float32 summing to 1
        over Q and (B, h, w) float32 rarity weights.
        """
        small = F.adaptive_avg_pool2d(ab_n.float(), size)  # (B, 2, h, w)
        b, _, h, w = small.shape
        flat = small.permute(0, 2, 3, 1).reshape(-1, 2)
        d = torch.cdist(flat, self.centres)  # (N, Q)
        dist, idx = d.topk(self.k, dim=1, largest=False)
        soft = torch.exp(-(dist**2) / (2 * self.sigma_n**2))
        soft = soft / soft.sum(dim=1, keepdim=True)
        q = torch.zeros_like(d).scatter_(1, idx, soft)
        pix_w = self.weights[idx[:, 0]]
        q = q.view(b, h, w, -1).permute(0, 3, 1, 2)
        return q, pix_w.view(b, h, w)

    def forward(self, logits: torch.Tensor, ab_n: torch.Tensor) -> torch.Tensor:
        """logits: (B, Q, h, w); ab_n: (B, 2, H, W). Returns the scalar loss."""
        q, w = self.targets(ab_n, (logits.shape[-2], logits.shape[-1]))
        ce = -(q * F.log_softmax(logits.float(), dim=1)).sum(dim=1)  # (B, h, w)
        # mean, not normalised by the batch's weights: the weights have expectation 1 over
        # the training colours, and a colourful batch should weigh more than a dull one
        return (w * ce).mean()

"""Colour-rebalanced L1: rare colours weigh more, and the loss then prefers them."""

from __future__ import annotations

import numpy as np
import torch
from restore.train.rebalance import BINS, RebalancedL1, ab_prior, rebalance_weights, sample_ab

from restore import color


def _mixture(n_gray: int, n_red: int) -> np.ndarray:
    """ab samples (N, 2): mostly near-gray, a few saturated red (a = 60)."""
    rng = np.random.default_rng(0)
    gray = rng.normal(0, 2, size=(n_gray, 2))
    red = np.column_stack([rng.normal(60, 2, n_red), rng.normal(0, 2, n_red)])
    return np.concatenate([gray, red])


def test_prior_is_a_distribution_and_weights_average_one_under_it() -> None:
    prior, reached = ab_prior(_mixture(900, 100))
    assert prior.shape == reached.shape == (BINS, BINS)
    assert np.isclose(prior.sum(), 1.0)
    assert reached.sum() < (prior > 0).sum()  # smoothing spreads mass; Q counts real bins
    w = rebalance_weights(prior, mix=0.5, reached=reached)
    assert np.isclose((prior * w).sum(), 1.0)
    assert (w > 0).all()
    gray_bin, red_bin = (11, 11), (17, 11)  # ab (0, 0) and (60, 0)
    assert prior[gray_bin] > prior[red_bin]
    assert w[red_bin] > 2 * w[gray_bin]


def _prior_and_mix(samples: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    prior, reached = ab_prior(samples)
    return prior, 0.5, reached


def test_strength_zero_is_plain_l1() -> None:
    loss = RebalancedL1(np.random.default_rng(1).uniform(0.1, 5, (BINS, BINS)), strength=0.0)
    a, b = torch.rand(2, 2, 2, 8, 8) * 2 - 1
    assert torch.allclose(loss(a, b), torch.nn.functional.l1_loss(a, b))


def test_rebalanced_loss_prefers_the_rare_saturated_colours_plain_l1_does_not() -> None:
    """Targets: 60 % gray, 40 % reds spread over four bins (a = 45..75). Plain L1's best
    constant is gray (the median: the dull look); with rarity weights each colour bin
    counts about equally, so predicting red costs less than predicting gray."""
    reds = [[a, 0.0] for a in (45.0, 55.0, 65.0, 75.0)]
    samples = np.array([[0.0, 0.0]] * 60 + reds * 10, dtype=np.float32)
    weights = rebalance_weights(*_prior_and_mix(samples))
    truth = color.normalize_ab(torch.tensor(samples).T.reshape(1, 2, 1, -1))
    gray = torch.zeros_like(truth)
    red = color.normalize_ab(torch.tensor([60.0, 0.0]).reshape(1, 2, 1, 1)).expand_as(truth)
    plain, rebalanced = RebalancedL1(weights, 0.0), RebalancedL1(weights, 1.0)
    assert plain(gray, truth) < plain(red, truth)
    assert rebalanced(red, truth) < rebalanced(gray, truth)


def test_sample_ab_reads_colours_of_the_images() -> None:
    red = np.zeros((8, 8, 3), np.float32)
    red[..., 0] = 1.0
    ab = sample_ab(iter([red, red]), per_image=10, seed=0)
    assert ab.shape == (20, 2)
    assert np.allclose(ab, color.rgb_to_lab(red)[0, 0, 1:], atol=1e-3)

"""Adversarial loss with the target labels as registered buffers (as in pix2pix)."""

from __future__ import annotations

import torch
from torch import nn


class GANLoss(nn.Module):
    """BCE-with-logits or least-squares loss against constant real/fake labels."""

    real_label: torch.Tensor  # () registered buffers
    fake_label: torch.Tensor

    def __init__(self, mode: str = "bce", real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__()
        if mode not in ("bce", "lsgan"):
            raise ValueError(f"unknown GAN mode {mode!r}")
        self.register_buffer("real_label", torch.tensor(real_label))
        self.register_buffer("fake_label", torch.tensor(fake_label))
        self.loss = nn.BCEWithLogitsLoss() if mode == "bce" else nn.MSELoss()

    def forward(self, logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        label = self.real_label if target_is_real else self.fake_label
        return self.loss(logits.float(), label.expand_as(logits).to(logits.device))

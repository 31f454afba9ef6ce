"""A small U-Net that takes grain, blur and JPEG blocks out of an old print's lightness."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .small_unet import SmallUNet, SmallUNetConfig


@dataclass(frozen=True)
class CleanupNetConfig(SmallUNetConfig):
    """Architecture of :class:`CleanupNet`; stored in every weights file."""

    channels: tuple[int, ...] = (16, 32, 64)


class CleanupNet(SmallUNet):
    """Degraded L in, cleaned L out, same size.

    Input: (B, 1, H, W) float32 L normalised to [-1, 1] (``restore.color.normalize_l``), H and
    W multiples of ``config.multiple``. Output: (B, 1, H, W) float32, the same scale, not
    clipped: the input plus the correction the network predicts (grain averaged away, blur
    and compression blocks undone); a clean picture gets almost none. The tone is left as
    it is: that is :func:`restore.repair.stretch_tone`'s job.
    """

    def __init__(self, config: CleanupNetConfig | None = None) -> None:
        super().__init__(config or CleanupNetConfig())
        # starts as the identity: an untrained network changes nothing
        for p in self.head.parameters():
            torch.nn.init.zeros_(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + super().forward(x)

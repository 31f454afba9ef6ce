"""A small U-Net that finds defects of old prints (dust specks, scratches, hairs) in L."""

from __future__ import annotations

from dataclasses import dataclass

from .small_unet import SmallUNet, SmallUNetConfig


@dataclass(frozen=True)
class DefectNetConfig(SmallUNetConfig):
    """Architecture of :class:`DefectNet`; stored in every weights file."""

    channels: tuple[int, ...] = (8, 16, 32, 64)


class DefectNet(SmallUNet):
    """L in, defect logits out, same size.

    Input: (B, 1, H, W) float32 L normalised to [-1, 1] (``restore.color.normalize_l``), H and
    W multiples of ``config.multiple``. Output: (B, 1, H, W) float32 logits; sigmoid > 0.5
    marks a pixel covered by a defect.
    """

    def __init__(self, config: DefectNetConfig | None = None) -> None:
        super().__init__(config or DefectNetConfig())

"""The small U-Net of the repair networks: gray in, one channel out, same size, narrow at
full resolution, where a 12 MP scan makes every channel expensive."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Self

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SmallUNetConfig:
    """Architecture of a :class:`SmallUNet`; stored in every weights file."""

    channels: tuple[int, ...] = (8, 16, 32, 64)  # per level, full resolution first

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        return cls(channels=tuple(int(c) for c in d["channels"]))

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return 2 ** (len(self.channels) - 1)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SmallUNet(nn.Module):
    """(B, 1, H, W) float32 in, (B, 1, H, W) float32 out; H and W multiples of
    ``config.multiple``. Max-pooling down, bilinear up, skips concatenated."""

    def __init__(self, config: SmallUNetConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.channels
        self.down = nn.ModuleList([_block(1, ch[0])])
        self.down.extend(_block(a, b) for a, b in zip(ch[:-1], ch[1:], strict=True))
        self.up = nn.ModuleList(
            _block(b + a, a) for a, b in zip(reversed(ch[:-1]), reversed(ch[1:]), strict=True)
        )
        self.head = nn.Conv2d(ch[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        out: torch.Tensor = self.head(x)
        return out

"""70x70 PatchGAN discriminator conditioned on L (pix2pix, n_layers=3)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class PatchDiscriminatorConfig:
    """C64-C128-C256-C512 with 4x4 kernels; stored with the discriminator file."""

    in_channels: int = 3  # L + ab
    base_channels: int = 64
    n_layers: int = 3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PatchDiscriminator(nn.Module):
    """Input (B, 3, H, W): normalised L and ab in [-1, 1].

    Output (B, 1, H/8 - 2, W/8 - 2) raw logits (no final activation); 30x30 for 256x256,
    each logit seeing a 70x70 receptive field.
    """

    def __init__(self, config: PatchDiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or PatchDiscriminatorConfig()
        ch = c.base_channels
        layers: list[nn.Module] = [
            nn.Conv2d(c.in_channels, ch, 4, stride=2, padding=1),  # no norm on the first block
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for i in range(1, c.n_layers + 1):
            prev, ch = ch, c.base_channels * min(2**i, 8)
            stride = 2 if i < c.n_layers else 1
            layers += [
                nn.Conv2d(prev, ch, 4, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(ch),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(ch, 1, 4, stride=1, padding=1))  # no norm, no activation
        self.net = nn.Sequential(*layers)

    def forward(self, l_n: torch.Tensor, ab_n: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([l_n, ab_n], dim=1))

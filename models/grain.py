"""A small network that measures the grain of a patch of an old print's lightness."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class GrainNetConfig:
    """Architecture of :class:`GrainNet`; stored in every weights file."""

    channels: tuple[int, ...] = (16, 32, 64)  # per level; each level after the first halves
    patch: int = 64  # side of the square patches it was trained on (pixels)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GrainNetConfig:
        return cls(channels=tuple(int(c) for c in d["channels"]), patch=int(d["patch"]))


class GrainNet(nn.Module):
    """L patches in, the grain of each out.

    Input: (B, 1, P, P) float32 L normalised to [-1, 1] (``restore.color.normalize_l``), P
    the config's patch side. Output: (B,) float32 >= 0, the root mean square of the grain
    or noise on each patch in L units (0 for a clean one). Texture and edges are not grain:
    telling them apart is what it was trained for.
    """

    def __init__(self, config: GrainNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or GrainNetConfig()
        layers: list[nn.Module] = []
        cin = 1
        for i, c in enumerate(self.config.channels):
            if i:
                layers += [nn.Conv2d(cin, c, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            else:
                layers += [nn.Conv2d(cin, c, 3, padding=1), nn.ReLU(inplace=True)]
            layers += [nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True)]
            cin = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).mean(dim=(2, 3))
        out: torch.Tensor = nn.functional.softplus(self.head(pooled))[:, 0]
        return out

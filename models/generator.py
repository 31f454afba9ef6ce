"""U-Net generator on a ResNet18 encoder: L in, Lab ab out."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

#: Skip features taken from the encoder, shallow to deep: (name, channels, stride).
#: "input" is the L channel itself, so the last decoder stage sees full-resolution edges.
SKIP_TABLE: tuple[tuple[str, int, int], ...] = (
    ("input", 1, 1),
    ("stem", 64, 2),  # conv1 + bn1 + relu
    ("layer1", 64, 4),
    ("layer2", 128, 8),
    ("layer3", 256, 16),
    ("layer4", 512, 32),  # bottleneck, the decoder's starting point
)


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of :class:`UNetGenerator`; stored in every weights file."""

    encoder: str = "resnet18"
    # Output channels of the decoder stages, from the deepest (stride 16) to full resolution.
    # Slim on purpose: measured ~3x cheaper than a DynamicUnet-sized decoder on CPU.
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)
    in_channels: int = 1
    out_channels: int = 2
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["decoder_channels"] = list(self.decoder_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneratorConfig:
        d = dict(d)
        d["decoder_channels"] = tuple(d["decoder_channels"])
        return cls(**d)


class _DecoderBlock(nn.Module):
    """Upsample x2 (bilinear, no checkerboard), concatenate the skip, two conv-BN-ReLU."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_ch + skip_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.body(_join(x, skip))


def _join(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """``torch.cat([x, skip], 1)``, fast for the full-resolution block.

    Two slow paths measured there (bf16, batch 4 at 256x448, they took two thirds of the
    forward pass): under autocast x is bf16 while the first skip (the fp32 input L) is
    not, and a mixed-dtype cat promotes the result to fp32; and a 1-channel skip makes cat
    return NCHW, which the channels_last convolution then transposes back (a 33-channel
    strided copy). So join in x's dtype, and, when no gradient is needed (inference),
    into an output allocated in x's memory format (48 -> 15 ms for that cat).
    """
    skip = skip.to(x.dtype)
    if torch.is_grad_enabled() or not x.is_contiguous(memory_format=torch.channels_last):
        return torch.cat([x, skip], dim=1)
    n, c, h, w = x.shape
    out = torch.empty(
        (n, c + skip.shape[1], h, w),
        dtype=x.dtype,
        device=x.device,
        memory_format=torch.channels_last,
    )
    return torch.cat([x, skip], dim=1, out=out)


class UNetGenerator(nn.Module):
    """U-Net with a torchvision ResNet18 encoder taking one channel.

    Input:  (B, 1, H, W) float, normalised L in [-1, 1]; H and W multiples of 32.
    Output: (B, 2, H, W) float, normalised ab in [-1, 1] (tanh).
    """

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or GeneratorConfig()
        if config.encoder != "resnet18":
            raise ValueError(f"unsupported encoder {config.encoder!r}")
        if len(config.decoder_channels) != len(SKIP_TABLE) - 1:
            raise ValueError("decoder_channels needs one entry per skip below the bottleneck")
        enc = resnet18(weights=None)
        enc.conv1 = nn.Conv2d(config.in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.stem = nn.Sequential(enc.conv1, enc.bn1, enc.relu)
        self.pool = enc.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            enc.layer1,
            enc.layer2,
            enc.layer3,
            enc.layer4,
        )
        skips = [ch for _, ch, _ in SKIP_TABLE[:-1]][::-1]  # deep -> shallow
        skips[-1] = config.in_channels
        blocks = []
        in_ch = SKIP_TABLE[-1][1]
        for skip_ch, out_ch in zip(skips, config.decoder_channels, strict=True):
            blocks.append(_DecoderBlock(in_ch, skip_ch, out_ch))
            in_ch = out_ch
        self.decoder = nn.ModuleList(blocks)
        self.head = nn.Conv2d(in_ch, config.out_channels, 3, padding=1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps in SKIP_TABLE order, shallow to deep."""
        s1 = self.stem(x)  # (B, 64, H/2, W/2)
        s2 = self.layer1(self.pool(s1))  # (B, 64, H/4, W/4)
        s3 = self.layer2(s2)  # (B, 128, H/8, W/8)
        s4 = self.layer3(s3)  # (B, 256, H/16, W/16)
        s5 = self.layer4(s4)  # (B, 512, H/32, W/32)
        return [x, s1, s2, s3, s4, s5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encode(x)
        y = feats[-1]
        for block, skip in zip(self.decoder, reversed(feats[:-1]), strict=True):
            y = block(y, skip)
        return torch.tanh(self.head(y))


def load_imagenet_encoder(model: UNetGenerator, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Initialise the encoder from a torchvision ResNet18 ImageNet state dict.

    The caller reads the file; this only copies tensors. The RGB first convolution
    is summed over its input channels so it responds to a gray image as to RGB gray.

    Returns:
        The encoder keys that were not found in ``state_dict``.
    """
    own = {
        "conv1.weight": model.stem[0].weight,
        **{f"bn1.{k}": v for k, v in model.stem[1].state_dict(keep_vars=True).items()},
    }
    for name in ("layer1", "layer2", "layer3", "layer4"):
        for k, v in getattr(model, name).state_dict(keep_vars=True).items():
            own[f"{name}.{k}"] = v
    missing = []
    with torch.no_grad():
        for key, param in own.items():
            src = state_dict.get(key)
            if src is None:
                missing.append(key)
                continue
            if key == "conv1.weight" and src.shape[1] != param.shape[1]:
                src = src.sum(dim=1, keepdim=True)
            param.copy_(src.to(param.dtype))
    return missing

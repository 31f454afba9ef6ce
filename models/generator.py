"""U-Net generator on a ResNet18 encoder: L in, Lab ab out."""

from __future__ import annotations

import math
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
    # Output channels of the decoder stages, from the deepest (stride 16) down to the head's
    # stride (full resolution for "regression"). Slim on purpose: ~3x cheaper than a
    # DynamicUnet-sized decoder on CPU.
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)
    in_channels: int = 1
    out_channels: int = 2
    # "regression": ab through tanh at full resolution (trained with L1).
    # "classes": a distribution over `bins` quantised ab colours per pixel at `head_stride`,
    # decoded by the annealed mean (Zhang et al. 2016) and upsampled; colour is not averaged
    # into brown where the network is unsure which of several colours a patch is.
    head: str = "regression"
    bins: int = 0
    head_stride: int = 4
    head_channels: int = 128
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def classes(cls, bins: int, head_stride: int = 4) -> GeneratorConfig:
        """A classification-head config whose decoder stops at ``head_stride``."""
        stages = len(SKIP_TABLE) - 1 - int(math.log2(head_stride))
        return cls(
            decoder_channels=cls.decoder_channels[:stages],
            head="classes",
            bins=bins,
            head_stride=head_stride,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["decoder_channels"] = list(self.decoder_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneratorConfig:
        d = dict(d)
        d["decoder_channels"] = tuple(d["decoder_channels"])
        return cls(**d)


#: Default decoding temperature of the annealed mean: Zhang et al.'s 0.38 (lower is more
#: vivid and more often wrong, 1 is the plain mean).
DEFAULT_TEMPERATURE = 0.38


def annealed_mean(logits: torch.Tensor, centres: torch.Tensor, temperature: float) -> torch.Tensor:
    """Expected colour under the temperature-sharpened distribution.

    Args:
        logits: (B, Q, H, W) any float dtype.
        centres: (Q, 2) float ab of each class (normalised).
        temperature: > 0 sharpens towards the mode as it falls (1: the mean);
            0 gives the mode exactly.
    Returns:
        (B, 2, H, W) float32.
    """
    if temperature <= 0:
        idx = logits.argmax(dim=1)  # (B, H, W)
        return centres.float()[idx].permute(0, 3, 1, 2)
    p = torch.softmax(logits.float() / temperature, dim=1)
    return torch.einsum("bqhw,qc->bchw", p, centres.float())


def decode_classes(
    logits: torch.Tensor, centres: torch.Tensor, temperature: float, size: tuple[int, ...]
) -> torch.Tensor:
    """Class logits (B, Q, h, w) -> (B, 2, *size) float32 normalised ab: the annealed mean,
    upsampled bilinearly (the classes head's output, for training and every runtime)."""
    ab = annealed_mean(logits, centres, temperature)
    return F.interpolate(ab, size=size, mode="bilinear", align_corners=False)


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
    into an output allocated in x's memory format (about 3x faster for that cat).
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
    Output: (B, 2, H, W) float, normalised ab in [-1, 1] (tanh, or the annealed mean of
    the classification head upsampled from H/s).
    """

    bin_ab: torch.Tensor  # (Q, 2) registered buffer, classification head only

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or GeneratorConfig()
        if config.encoder != "resnet18":
            raise ValueError(f"unsupported encoder {config.encoder!r}")
        if config.head not in ("regression", "classes"):
            raise ValueError(f"unknown head {config.head!r}")
        stride = config.head_stride if config.head == "classes" else 1
        if stride not in (1, 2, 4, 8, 16) or len(config.decoder_channels) != len(
            SKIP_TABLE
        ) - 1 - int(math.log2(stride)):
            raise ValueError("decoder_channels needs one entry per stage down to the head")
        if config.head == "classes" and config.bins < 2:
            raise ValueError("a classification head needs at least 2 bins")
        #: decoding temperature of a classification head (not stored: a user option)
        self.temperature = DEFAULT_TEMPERATURE
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
        for skip_ch, out_ch in zip(skips, config.decoder_channels, strict=False):
            blocks.append(_DecoderBlock(in_ch, skip_ch, out_ch))
            in_ch = out_ch
        self.decoder = nn.ModuleList(blocks)
        if config.head == "regression":
            self.head = nn.Conv2d(in_ch, config.out_channels, 3, padding=1)
        else:
            hc = config.head_channels
            self.color_head = nn.Sequential(
                nn.Conv2d(in_ch, hc, 3, padding=1, bias=False),
                nn.BatchNorm2d(hc),
                nn.ReLU(inplace=True),
                nn.Conv2d(hc, config.bins, 1),
            )
            # normalised ab of each class; set by the caller (restore.colorbins), kept in
            # the weights file so a file decodes as it was trained
            self.register_buffer("bin_ab", torch.zeros(config.bins, 2))

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps in SKIP_TABLE order, shallow to deep."""
        s1 = self.stem(x)  # (B, 64, H/2, W/2)
        s2 = self.layer1(self.pool(s1))  # (B, 64, H/4, W/4)
        s3 = self.layer2(s2)  # (B, 128, H/8, W/8)
        s4 = self.layer3(s3)  # (B, 256, H/16, W/16)
        s5 = self.layer4(s4)  # (B, 512, H/32, W/32)
        return [x, s1, s2, s3, s4, s5]

    def decode_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last decoder stage's output: (B, C, H/s, W/s), s the head's stride."""
        feats = self.encode(x)
        y = feats[-1]
        for block, skip in zip(self.decoder, reversed(feats[:-1]), strict=False):
            y = block(y, skip)
        return y

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Classification head only: (B, 1, H, W) L -> (B, Q, H/s, W/s) class logits."""
        return self.color_head(self.decode_features(x))

    def decode(self, logits: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
        """Class logits -> (B, 2, *size) float32 normalised ab (annealed mean, bilinear)."""
        return decode_classes(logits, self.bin_ab, self.temperature, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.head == "classes":
            return self.decode(self.logits(x), x.shape[-2:])
        return torch.tanh(self.head(self.decode_features(x)))


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

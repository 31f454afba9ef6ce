"""Inference: full-resolution L (or a whole image) in, full-resolution RGB out, the
generator at render size. :class:`Colorizer` is also the public Python API
(``from restore import Colorizer``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models.resnet import BasicBlock

from restore import color, ov_runner
from restore.buffers import ArrayPool
from restore.models import UNetGenerator
from restore.weights import WeightsInfo, load_generator

log = logging.getLogger(__name__)

MULTIPLE = 32  # the encoder downsamples by 32
MAX_ASPECT = 4.0  # panoramas beyond this are rendered at this aspect


#: Ways to run the generator on a CPU (EngineConfig.runtime).
Runtime = Literal["openvino", "eager"]
RUNTIMES: tuple[Runtime, ...] = get_args(Runtime)

#: Radius of the colour clean-up when it is asked for (`--refine`), render-size pixels.
REFINE_RADIUS = 8


@dataclass(frozen=True)
class EngineConfig:
    """How the generator is run. Built once by the CLI."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    render_size: int = 256  # short side the generator sees (multiple of 32)
    batch_size: int = 4
    # Generator calls run at once by the pipelines, each in its own thread. On a CPU, several
    # single-threaded calls beat one call over all cores (no barrier waits, overlap with the
    # codecs): see restore.runtime.configure_threads. 1 on GPUs.
    workers: int = 1
    # How the generator runs on a CPU (GPUs always run it eagerly in PyTorch):
    # "openvino": exported and compiled by OpenVINO (restore.ov_runner), the fastest;
    # "eager": the PyTorch module as trained.
    runtime: Runtime = "openvino"
    # Edge-aware clean-up of the predicted colours (guided filter, L as the guide), radius in
    # render-size pixels (REFINE_RADIUS when asked for); 0 = raw generator output. See
    # :func:`refine_ab`. Off by default with the shipped generator: by eye few
    # hue bands on oldphotos crops, and at equal colourfulness the filter cost accuracy
    # (`restore eval ../shared/data/val --refine`, README).
    refine_radius: int = 0
    # Colour strength: the predicted ab (after the clean-up) times this and the weights' own
    # calibrated chroma gain (WeightsInfo.chroma_gain), clamped to the ab range; the merge
    # then fits each colour into the sRGB gamut. 1 = as calibrated, 0 = gray; beyond the
    # calibration every step up costs accuracy (weights/README.md).
    saturation: float = 1.0
    # Classification heads only: how far the annealed mean leans to each pixel's likeliest
    # colour, as 1 - temperature (0: the plain mean, 1: the mode). None: the weights' value
    # (WeightsInfo.temperature).
    vividness: float | None = None

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {self.runtime!r}")
        if not 0.0 <= self.saturation <= 4.0:
            raise ValueError(f"saturation must be in [0, 4], got {self.saturation}")
        if self.vividness is not None and not 0.0 <= self.vividness <= 1.0:
            raise ValueError(f"vividness must be in [0, 1], got {self.vividness}")


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """Autocast dtype; 'auto' is fp16 on CUDA/MPS, bf16 on CPUs with native bf16, else fp32."""
    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name != "auto":
        return table[name]
    if device.type in ("cuda", "mps"):
        return torch.float16
    try:
        native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):
        native = False
    return torch.bfloat16 if native else torch.float32


def render_shape(height: int, width: int, render_size: int) -> tuple[int, int]:
    """Size the generator sees: short side ``render_size``, aspect kept, multiples of 32."""
    short, long_ = sorted((height, width))
    aspect = min(long_ / max(short, 1), MAX_ASPECT)
    rs = max(MULTIPLE, round(render_size / MULTIPLE) * MULTIPLE)
    rl = max(rs, round(rs * aspect / MULTIPLE) * MULTIPLE)
    return (rs, rl) if height <= width else (rl, rs)


_ModuleT = TypeVar("_ModuleT", bound=nn.Module)


def fold_batchnorm(model: _ModuleT) -> _ModuleT:
    """Fold eval-mode BatchNorm into the convolution before it, in place; returns ``model``.

    Same outputs up to float rounding, one pass less over every activation (measured:
    about 1.2x generator throughput on CPU). Pairs are a Conv2d directly followed by a
    BatchNorm2d in an ``nn.Sequential``, and the conv1/bn1, conv2/bn2 of ResNet blocks.

    Raises:
        ValueError: the model is in training mode (its statistics are still moving).
    """
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode")
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:], strict=False):
                conv, bn = module._modules[a], module._modules[b]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    module._modules[a] = fuse_conv_bn_eval(conv, bn)
                    module._modules[b] = nn.Identity()
        elif isinstance(module, BasicBlock):
            for conv_name, bn_name in (("conv1", "bn1"), ("conv2", "bn2")):
                bn = getattr(module, bn_name)
                if isinstance(bn, nn.BatchNorm2d):
                    setattr(module, conv_name, fuse_conv_bn_eval(getattr(module, conv_name), bn))
                    setattr(module, bn_name, nn.Identity())
    return model


def cpu_runner(
    model: UNetGenerator, dtype: torch.dtype, config: EngineConfig
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The callable that runs ``model`` (eval mode, fp32, BatchNorm folded) on the CPU for
    ``config.runtime``: OpenVINO (:mod:`restore.ov_runner`), or the PyTorch module itself
    where OpenVINO is not installed, cannot convert the model or was not asked for."""
    if config.runtime == "openvino":
        if not ov_runner.available():
            log.warning("OpenVINO is not installed; running the generator in PyTorch")
            return model
        workers = max(1, config.workers)
        try:
            return ov_runner.OpenVINORunner(
                model, dtype, streams=workers, threads=workers * torch.get_num_threads()
            )
        except Exception as e:  # noqa: BLE001 - eager PyTorch gives the same outputs
            log.warning("OpenVINO could not run the generator (%s); using PyTorch", e)
    return model


#: Guided-filter regularisation for L scaled to [0, 1]: colour follows luminance edges
#: with a local L contrast above about sqrt(0.01) = 10 L units.
REFINE_EPS = 0.01


def refine_ab(
    lightness: np.ndarray, ab: np.ndarray, radius: int, eps: float = REFINE_EPS
) -> np.ndarray:
    """Guided filter (He et al. 2010) of predicted ab with L as the guide.

    Where the generator is unsure it paints bands of rotating hue ("rainbows") across
    textured areas of even tone (foliage, wool, waves, striped cloth). Within a window the
    filter fits ab as an affine function of L: colours that follow the picture's edges are
    kept, hue swings that L does not explain are averaged away (measured: README, Quality).

    Args:
        lightness: (h, w) float32 L in [0, 100] at render size.
        ab: (h, w, 2) float32 ab, same size.
        radius: window radius in pixels.
    Returns:
        (h, w, 2) float32 ab.
    """
    guide = lightness.astype(np.float32) / 100.0
    size = (2 * radius + 1, 2 * radius + 1)
    mean_i = cv2.blur(guide, size)
    var_i = cv2.blur(guide * guide, size) - mean_i * mean_i
    out = np.empty_like(ab)
    for c in range(ab.shape[2]):
        p = np.ascontiguousarray(ab[..., c])
        mean_p = cv2.blur(p, size)
        a = (cv2.blur(guide * p, size) - mean_i * mean_p) / (var_i + eps)
        b = mean_p - a * mean_i
        out[..., c] = cv2.blur(a, size) * guide + cv2.blur(b, size)
    return out


def scale_chroma(ab: np.ndarray, factor: float, out: np.ndarray | None = None) -> np.ndarray:
    """ab times ``factor``, clamped to [-110, 110] (same array back when ``factor`` is 1
    and no ``out`` is given).

    Args:
        ab: (..., 2) float32 ab.
        factor: >= 0; 0 gives gray.
        out: optional float32 array of ab's shape to write into (may be ``ab``).
    """
    if out is None:
        if factor == 1.0:
            return ab
        out = ab * np.float32(factor)
    else:
        np.multiply(ab, np.float32(factor), out=out)
    return np.clip(out, -110.0, 110.0, out=out)


class Colorizer:
    """Colorizes images and lightness maps with one loaded generator.

    The Python API::

        colorizer = Colorizer.load(render_size=256)   # the shipped weights
        rgb = colorizer.colorize(pixels)             # (H, W) or (H, W, 3) uint8 -> (H, W, 3) uint8

    :meth:`colorize` and :meth:`colorize_batch` give the pixels `restore photos` writes for
    the same input; the pipelines and evaluation use the lower-level methods. All inputs
    and outputs are numpy arrays on the host; the generator runs on ``device`` under
    autocast in ``dtype``. Every method may run in several threads at once (none changes
    state). Takes ownership of ``model``: it is put in eval mode and its BatchNorm layers
    are folded into the convolutions (pass a copy to keep training it).
    """

    def __init__(
        self,
        model: UNetGenerator,
        config: EngineConfig = EngineConfig(),
        info: WeightsInfo | None = None,
    ) -> None:
        self.config = config
        self.info = info
        self.device = resolve_device(config.device)
        self.dtype = resolve_precision(config.precision, self.device)
        self.model = fold_batchnorm(model.eval()).to(self.device)
        if config.vividness is not None:
            self.model.temperature = 1.0 - config.vividness
        elif info is not None:
            self.model.temperature = info.temperature
        # Colour strength applied to every prediction: the weights' calibration times the
        # user's saturation.
        self.chroma = config.saturation * (info.chroma_gain if info else 1.0)
        self.runner: Callable[[torch.Tensor], torch.Tensor] = self.model
        if self.device.type == "cpu":
            self.runner = cpu_runner(self.model, self.dtype, config)
            if self.runner is self.model:
                self.model = self.model.to(memory_format=torch.channels_last)
                self.runner = self.model

    @classmethod
    def from_weights(
        cls, path: str | Path | None = None, config: EngineConfig = EngineConfig()
    ) -> Colorizer:
        """The generator of a weights file (None: the shipped weights, or
        ``$RESTORE_WEIGHTS``), run as ``config`` says.

        Raises:
            WeightsError: missing, unreadable or not understood (see restore.weights).
        """
        model, info = load_generator(path)
        return cls(model, config, info)

    @classmethod
    def load(
        cls, weights: str | Path | None = None, device: str = "auto", **options: Any
    ) -> Colorizer:
        """:meth:`from_weights` with the :class:`EngineConfig` fields as keywords.

        Args:
            weights: a ``.safetensors`` file; None: the shipped weights (or
                ``$RESTORE_WEIGHTS``).
            device: auto | cpu | cuda | cuda:N | mps.
            **options: other EngineConfig fields, e.g. ``render_size=384``,
                ``saturation=0.8``, ``vividness=0.5``, ``precision="fp32"``,
                ``batch_size=8``.
        Raises:
            TypeError: an option EngineConfig does not have.
            ValueError: an option out of its range.
            WeightsError: the weights are missing, unreadable or not understood.
        """
        known = {f.name for f in fields(EngineConfig)} - {"device"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown option(s) {unknown}; the options are {sorted(known)}")
        return cls.from_weights(weights, EngineConfig(device=device, **options))

    # -- images ------------------------------------------------------------------------------

    def colorize(self, image: np.ndarray) -> np.ndarray:
        """Colorize one image; see :meth:`colorize_batch` for the data contract."""
        return self.colorize_batch([image])[0]

    def colorize_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Colorize images, up to ``config.batch_size`` per generator call.

        The same pixels as `restore photos` for the same decoded pixels: lightness from
        the full-resolution input (colour and sepia images are colorized from their
        luminance), the generator at the render size, its colour upsampled and merged
        with that lightness. Images of one render shape batch best (mixed shapes are
        padded to the largest, which moves colours slightly near the borders).

        Args:
            images: each of any size, (H, W), (H, W, 1) gray, (H, W, 2) gray + alpha,
                (H, W, 3) RGB or (H, W, 4) RGBA; uint8, uint16, or float in [0, 1].
        Returns:
            Per image, (H, W, 3) RGB, or (H, W, 4) RGBA when it had alpha (passed through
            unchanged); the input's dtype (uint8 and uint16 use the full range).
        Raises:
            TypeError: a dtype other than uint8, uint16 or float.
            ValueError: a shape other than the above, or an empty image.
        """
        split = [split_alpha(x) for x in images]
        lightness = [color.lightness_of(pixels) for pixels, _ in split]
        out: list[np.ndarray] = []
        for (pixels, alpha), x, ab in zip(split, lightness, self.ab_small(lightness), strict=True):
            if pixels.dtype.kind == "f":
                merged = color.merge_l_ab(x, self.upsample_ab(ab, *x.shape))
                rgb = merged.astype(pixels.dtype, copy=False)
            else:
                rgb = color.merge_full(x, ab, pixels.dtype.type)
            out.append(rgb if alpha is None else np.concatenate([rgb, alpha[..., None]], axis=2))
        return out

    # -- model -----------------------------------------------------------------------------

    @torch.inference_mode()
    def predict(
        self, l_small: Sequence[np.ndarray], pool: ArrayPool | None = None
    ) -> list[np.ndarray]:
        """Run the generator on lightness maps already at render size.

        Args:
            l_small: each (h, w) float32 L in [0, 100], h and w multiples of 32 (may differ;
                each size is its own generator call, so results do not depend on batching).
            pool: where the input batch and the returned arrays come from, if given.
        Returns:
            Per input, (h, w, 2) float32 ab in [-110, 110].
        """
        if not l_small:
            return []
        shapes = {x.shape for x in l_small}
        if len(shapes) > 1:
            # One call per size: padding to a common size would make a picture's colours
            # depend on the pictures that happen to share its batch.
            found: list[np.ndarray | None] = [None] * len(l_small)
            for size in shapes:
                idx = [i for i, x in enumerate(l_small) if x.shape == size]
                for i, ab in zip(idx, self.predict([l_small[i] for i in idx], pool), strict=True):
                    found[i] = ab
            return [ab for ab in found if ab is not None]
        shape = (len(l_small), 1, *l_small[0].shape)
        batch = pool.take(shape) if pool is not None else np.empty(shape, dtype=np.float32)
        for i, x in enumerate(l_small):
            batch[i, 0] = x
        t = color.normalize_l(torch.from_numpy(batch)).to(self.device)
        if self.runner is self.model and self.device.type == "cpu":
            t = t.contiguous(memory_format=torch.channels_last)
        enabled = self.dtype != torch.float32 and self.runner is self.model
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=enabled):
            out = self.runner(t)  # (B, 2, H, W) in [-1, 1]
        del t, batch
        ab = color.denormalize_ab(out.float()).permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 2)
        del out
        crops = list(ab)
        if self.config.refine_radius > 0:
            crops = [
                refine_ab(x, np.ascontiguousarray(a), self.config.refine_radius)
                for x, a in zip(l_small, crops, strict=True)
            ]
        if pool is None:
            return [scale_chroma(np.ascontiguousarray(a), self.chroma) for a in crops]
        return [scale_chroma(a, self.chroma, out=pool.take(a.shape)) for a in crops]

    # -- full resolution ---------------------------------------------------------------------

    def downsize(self, lightness: np.ndarray, pool: ArrayPool | None = None) -> np.ndarray:
        """(H, W) float32 L -> (h, w) float32 L at render size (area filter), a new array
        (taken from ``pool`` if given)."""
        height, width = lightness.shape
        h, w = render_shape(height, width, self.config.render_size)
        dst = pool.take((h, w)) if pool is not None else None
        return cv2.resize(lightness, (w, h), dst=dst, interpolation=cv2.INTER_AREA)

    @staticmethod
    def upsample_ab(ab: np.ndarray, height: int, width: int) -> np.ndarray:
        """(h, w, 2) float32 ab -> (height, width, 2) float32 (bilinear)."""
        if ab.shape[:2] == (height, width):
            return ab
        return cv2.resize(ab, (width, height), interpolation=cv2.INTER_LINEAR)

    def ab_small(self, lightness: Sequence[np.ndarray]) -> list[np.ndarray]:
        """ab at render size for full-resolution L maps: (H, W) -> (h, w, 2) float32.

        What the 8-bit merge (:func:`restore.color.merge_l_ab_u8`) takes: it upsamples on
        the fly, so full-size float ab is never held.
        """
        return self.render(lightness)[1]

    def render(
        self, lightness: Sequence[np.ndarray], pool: ArrayPool | None = None
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """For full-resolution L maps (H, W): the L the generator saw, (h, w) float32, and
        its ab, (h, w, 2) float32, both at render size (for stages that need both).

        With ``pool``, the returned arrays are taken from it (what a film's frames hand on
        to other threads; everything else allocated here is freed before returning).
        """
        small: list[np.ndarray] = []
        out: list[np.ndarray] = []
        bs = max(1, self.config.batch_size)
        for i in range(0, len(lightness), bs):
            chunk = [self.downsize(x, pool) for x in lightness[i : i + bs]]
            small += chunk
            out += self.predict(chunk, pool)
        return small, out

    def ab_full(self, lightness: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Full-resolution ab for full-resolution L maps: (H, W) -> (H, W, 2) float32."""
        return [
            self.upsample_ab(ab, *x.shape)
            for ab, x in zip(self.ab_small(lightness), lightness, strict=True)
        ]

    def colorize_lightness(self, lightness: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Full-resolution L maps -> (H, W, 3) float32 RGB in [0, 1], same size (the exact
        float merge; :meth:`colorize` quantises like `restore photos`)."""
        return [
            color.merge_l_ab(x, ab)
            for x, ab in zip(lightness, self.ab_full(lightness), strict=True)
        ]


def split_alpha(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """An image as the colour pipeline takes it, and its alpha.

    Args:
        image: (H, W), (H, W, 1), (H, W, 2) gray + alpha, (H, W, 3) or (H, W, 4) RGBA;
            uint8, uint16 or float.
    Returns:
        (H, W) gray or (H, W, 3) RGB (views, same dtype), and (H, W) alpha or None.
    Raises:
        TypeError: another dtype.
        ValueError: another shape, or no pixels.
    """
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16) and image.dtype.kind != "f":
        raise TypeError(f"images must be uint8, uint16 or float in [0, 1], not {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4)):
        raise ValueError(
            f"an image must be (H, W) gray or (H, W, C) with C in 1-4, not {image.shape}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"the image {image.shape} has no pixels")
    if image.ndim == 2:
        return image, None
    channels = image.shape[2]
    pixels = image[..., 0] if channels <= 2 else image[..., :3]
    return pixels, image[..., channels - 1] if channels in (2, 4) else None

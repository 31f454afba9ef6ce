"""The generator as fused oneDNN calls: CPU inference with no pass that only moves data.

The eager (or TorchScript) generator spends about a third of a CPU forward pass outside
the convolutions (profile at 256x448, bf16, batch 4, one thread: 157 ms, of which ReLU,
residual adds, bilinear upsampling and the skip concatenations took about 60 ms). This
runner computes the same function with those passes folded into the convolutions:

- ReLU, and the residual add + ReLU of every ResNet block, run as oneDNN post-ops of the
  convolution before them (``torch.ops.mkldnn._convolution_pointwise``, the kernels
  ``torch.compile`` uses on CPU, without its compile time).
- The decoder never concatenates: ``conv(cat(up, skip))`` is ``conv_up(up) + conv_skip(skip)``
  (the weight split along its input channels), the sum a post-op of the skip convolution.
- The thin decoder stages (at most SUB_PIXEL_MAX_CHANNELS outputs: with the shipped
  architecture the last two, at half and full render resolution) never upsample: a 3x3
  convolution of a x2 bilinear upsampling is, away from the border, a 3x3 convolution of
  the low-resolution map (edge-replicated) with four composite kernels, one per output
  phase, interleaved afterwards ("sub-pixel" convolution); the one-pixel frame where the
  upsampled map's zero padding matters is recomputed exactly from thin strips.
- The last stage and the head run on the four phases of the full-resolution map at half
  resolution (:class:`_Tail`), exactly: zero padding of the phase maps is the
  full-resolution zero padding.
- Max pooling is a compiled loop (torch's CPU kernel also writes an int64 index per output).

Same outputs as the model up to float rounding (tests/test_fused.py: fp32 to 1e-5).
Measured with ``python -m benchmarks.run --only model`` (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import math
import threading

import numba as nb
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

from restore.models import UNetGenerator, decode_classes

#: Bilinear x2 (align_corners=False) followed by a 3x3 tap, seen from the low-resolution
#: map: _PHASE[a][dy, e] is the weight of low-resolution row i+e-1 (edge-replicated) in
#: full-resolution row 2i+a+dy-1.
_PHASE = torch.tensor(
    [
        [[0.75, 0.25, 0.0], [0.25, 0.75, 0.0], [0.0, 0.75, 0.25]],
        [[0.25, 0.75, 0.0], [0.0, 0.75, 0.25], [0.0, 0.25, 0.75]],
    ],
    dtype=torch.float64,
)


#: Convolution outputs of at least this many bytes are written into the calling thread's
#: :class:`Workspace`; None: only the stem's, the one held through the whole call (a skip
#: feature of the last decoder stage). The others are allocated by oneDNN: writing into a
#: buffer means zeroing it first (oneDNN fills a given tensor only as the addend of a
#: post-op), which costs time in proportion to its size. At 256x448, bf16, batch 4, one
#: thread (an ad-hoc A/B in one process, medians of 12; benchmarks/RESULTS.md,
#: memory entry): every output into the workspace 109.4 ms per call, the three 14 MiB ones
#: (8 MiB here) 103.4, the two of the tail 101.8, none 97.6, before the workspace 99.0. With
#: the stem's alone (this default) a 10-minute film peaked within 1 % of a 10 s one (RSS
#: -0.8 % and +0.6 % in two runs) and the generator reached 54-55 % of the bf16 peak; with
#: the three 14 MiB ones +0.5 to +0.8 % (four runs) for 14-24 MiB less, at 49-53 %.
CONV_INTO_WORKSPACE_BYTES: int | None = None

#: The sub-pixel form is used for decoder stages with at most this many output channels:
#: the wide, thin, full-resolution ones. Deeper stages are small in area and large in
#: weights, and four phase kernels cost more than the upsampling they save (256x448, bf16,
#: batch 4, one thread: the 256-channel stage 7.9 -> 14.6 ms, the 16-channel one 27 -> 19).
SUB_PIXEL_MAX_CHANNELS = 32


def _uses(t: torch.Tensor) -> int:
    """References to ``t``'s memory (every tensor viewing it counts one)."""
    return int(torch._C._storage_Use_Count(t.untyped_storage()._cdata))


def _use_count_works() -> bool:
    """True if :func:`_uses` counts views as :class:`Workspace` needs: a view adds exactly
    one, dropping it takes it back (a private API, so its behaviour is checked)."""
    buffer = torch.empty(8, dtype=torch.uint8)
    idle = _uses(buffer)
    view = buffer[:4].view(torch.int16)
    busy = _uses(buffer)
    del view
    return busy == idle + 1 and _uses(buffer) == idle


class Workspace:
    """One thread's activation buffers, reused by its next call of the same input shape.

    Why: a forward pass allocates 127 MiB in all, in blocks of 0.4-14 MiB (bf16, batch 4
    at 256x448; 74 MiB live at most); two workers allocating and freeing those in one heap
    fragment it, and a long film's peak memory crept above a short one's
    (benchmarks/RESULTS.md). Taken from here: the input copy, the 16-bit max
    pooling, the padded and upsampled maps, the interleaved phases, the output, and the
    stem's convolution output (CONV_INTO_WORKSPACE_BYTES); the residual and skip sums are
    written over their addend, wherever that came from. A free buffer serves any request
    it holds.

    :meth:`take` hands out a view of a buffer; a buffer is free again once no tensor other
    than the workspace's own refers to its memory, so an output the caller still holds is
    never overwritten. A new input shape (the next photo) drops the buffers of the last
    one, so the workspace holds one shape's worth, not one per shape ever seen.
    """

    def __init__(self) -> None:
        self.allocated = 0  # buffers made (a figure for tests)
        self._shape: tuple[int, ...] | None = None
        # (a flat uint8 buffer, its use count when nothing else refers to it)
        self._buffers: list[tuple[torch.Tensor, int]] = []

    def begin(self, input_shape: tuple[int, ...]) -> None:
        """Start a call on an input of ``input_shape``."""
        if input_shape != self._shape:
            self.clear()
            self._shape = input_shape

    def clear(self) -> None:
        """Let every buffer go (those still in use live on in their views)."""
        self._buffers.clear()
        self._shape = None

    def buffers(self) -> int:
        """Buffers held."""
        return len(self._buffers)

    def nbytes(self) -> int:
        """Bytes held."""
        return sum(b.numel() for b, _ in self._buffers)

    def take(
        self, shape: tuple[int, ...], dtype: torch.dtype, channels_last: bool = True
    ) -> torch.Tensor:
        """A tensor of ``shape`` (channels_last if 4-D and asked) with undefined contents:
        a view of the smallest free buffer that holds it, else of a new one."""
        shape = tuple(int(n) for n in shape)
        need = math.prod(shape) * dtype.itemsize
        best: torch.Tensor | None = None
        for buffer, idle in self._buffers:
            size = buffer.numel()
            if size >= need and (best is None or size < best.numel()) and _uses(buffer) == idle:
                best = buffer
        if best is None:
            best = torch.empty(need, dtype=torch.uint8)
            self._buffers.append((best, _uses(best)))
            self.allocated += 1
        flat = best[:need].view(dtype)  # a new view: counts as a use until dropped
        if channels_last and len(shape) == 4:
            n, c, h, w = shape
            return flat.view(n, h, w, c).permute(0, 3, 1, 2)
        return flat.view(shape)


def available(dtype: torch.dtype = torch.float32) -> bool:
    """True if this PyTorch build has the oneDNN fused convolution operators for ``dtype``
    (float32, or bfloat16 on a CPU with native bf16), in the in-place form too, and the
    storage use count :class:`Workspace` relies on behaves as it needs."""
    try:
        if not (
            torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn._convolution_pointwise, "default")
            and hasattr(torch.ops.mkldnn._convolution_pointwise_, "binary")
            and _use_count_works()
        ):
            return False
        if dtype == torch.bfloat16:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        return dtype == torch.float32
    except (AttributeError, RuntimeError):
        return False


@nb.njit(cache=True, nogil=True)
def _max_pool_3x3s2(src: np.ndarray, out: np.ndarray) -> None:
    """3x3 max pooling, stride 2, padding 1, of non-negative values.

    src: (B, H, W, C) int16, the bit patterns of non-negative bfloat16 or float16 values
    (which order like the values; padding counts as 0). out: (B, (H+1)//2, (W+1)//2, C).
    """
    height, width = src.shape[1], src.shape[2]
    for b in range(src.shape[0]):
        for i in range(out.shape[1]):
            r0, r1 = max(2 * i - 1, 0), min(2 * i + 2, height)
            for j in range(out.shape[2]):
                s0, s1 = max(2 * j - 1, 0), min(2 * j + 2, width)
                o = out[b, i, j]
                o[:] = 0
                for r in range(r0, r1):
                    for s in range(s0, s1):
                        p = src[b, r, s]
                        for c in range(o.shape[0]):
                            if p[c] > o[c]:
                                o[c] = p[c]


def _max_pool_after_relu(x: torch.Tensor, ws: Workspace | None = None) -> torch.Tensor:
    """``F.max_pool2d(x, 3, 2, 1)`` for x >= 0 (a ReLU output), (B, C, H, W) -> (B, C,
    ceil(H/2), ceil(W/2)), channels_last. In 16-bit floats a compiled loop over the bit
    patterns: torch's kernel also writes an int64 index per output (256x448, bf16, batch
    4, one thread: 5.7 -> 1.7 ms)."""
    if x.dtype not in (torch.bfloat16, torch.float16) or x.device.type != "cpu":
        return F.max_pool2d(x, 3, 2, 1)
    x = x.contiguous(memory_format=torch.channels_last)
    n, c, h, w = x.shape
    shape = (n, c, (h + 1) // 2, (w + 1) // 2)
    if ws is not None:
        out = ws.take(shape, x.dtype)
    else:
        out = torch.empty(shape, dtype=x.dtype, memory_format=torch.channels_last)
    _max_pool_3x3s2(
        x.permute(0, 2, 3, 1).view(torch.int16).numpy(),
        out.permute(0, 2, 3, 1).view(torch.int16).numpy(),
    )
    return out


class _Conv:
    """One 2-D convolution with its weights prepared once (dtype, channels_last)."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        dtype: torch.dtype,
        padding: int = 1,
        stride: int = 1,
    ) -> None:
        self.weight = weight.detach().to(dtype).contiguous(memory_format=torch.channels_last)
        self.bias = None if bias is None else bias.detach().to(dtype).contiguous()
        self.padding = [padding, padding]
        self.stride = [stride, stride]
        self.out_channels, _, self.kh, self.kw = self.weight.shape
        self.keep = False  # output always into the workspace (see CONV_INTO_WORKSPACE_BYTES)
        # looked up here, not at import: builds without oneDNN lack them (see available())
        self._unary = torch.ops.mkldnn._convolution_pointwise.default
        self._binary_into = torch.ops.mkldnn._convolution_pointwise_.binary

    @classmethod
    def of(cls, conv: nn.Conv2d, dtype: torch.dtype) -> _Conv:
        if conv.groups != 1 or conv.dilation != (1, 1) or len(set(conv.padding)) != 1:
            raise ValueError(f"unsupported convolution {conv}")
        return cls(conv.weight, conv.bias, dtype, int(conv.padding[0]), int(conv.stride[0]))

    def out_shape(self, x: torch.Tensor) -> tuple[int, int, int, int]:
        """The output's (N, C, H, W) for input ``x``."""
        n, _, h, w = x.shape
        (ph, pw), (sh, sw) = self.padding, self.stride
        return (
            n,
            self.out_channels,
            (h + 2 * ph - self.kh) // sh + 1,
            (w + 2 * pw - self.kw) // sw + 1,
        )

    def __call__(
        self, x: torch.Tensor, act: str = "none", ws: Workspace | None = None
    ) -> torch.Tensor:
        """conv(x) + bias, then ``act`` ("none" | "relu"). With ``ws``, the output is written
        into a workspace buffer if ``keep`` is set or it has CONV_INTO_WORKSPACE_BYTES."""
        shape = self.out_shape(x)
        limit = CONV_INTO_WORKSPACE_BYTES
        big = limit is not None and math.prod(shape) * x.element_size() >= limit
        if ws is None or not (self.keep or big):
            return self._unary(
                x, self.weight, self.bias, self.padding, self.stride, [1, 1], 1, act, [], ""
            )
        # oneDNN writes into a given tensor only as the addend of a binary post-op: start
        # it at zero
        return self.add_into(x, ws.take(shape, x.dtype).zero_(), act)

    def add_into(self, x: torch.Tensor, other: torch.Tensor, act: str = "none") -> torch.Tensor:
        """conv(x) + bias + other, then ``act``, written over ``other`` (of the output's
        shape, no longer needed by the caller); returns it."""
        return self._binary_into(
            other, x, self.weight, self.bias, self.padding, self.stride, [1, 1], 1,
            "add", None, None if act == "none" else act, [], "",
        )  # fmt: skip


class _Block:
    """ResNet BasicBlock: relu(conv2(relu(conv1(x))) + shortcut(x))."""

    def __init__(self, block: BasicBlock, dtype: torch.dtype) -> None:
        self.conv1 = _Conv.of(block.conv1, dtype)
        self.conv2 = _Conv.of(block.conv2, dtype)
        self.down = None if block.downsample is None else _Conv.of(block.downsample[0], dtype)

    def __call__(self, x: torch.Tensor, ws: Workspace) -> torch.Tensor:
        """The block's output, written over its shortcut: ``down(x)``, or ``x`` itself
        (which must not be needed afterwards: :class:`FusedGenerator` checks that the
        blocks whose input is a skip feature have a downsampling shortcut)."""
        h = self.conv1(x, "relu", ws)
        shortcut = x if self.down is None else self.down(x, ws=ws)
        return self.conv2.add_into(h, shortcut, "relu")


class _UpBlock:
    """Decoder stage: relu(conv2(relu(conv1(cat(up2(y), skip))))), without cat or up2."""

    def __init__(self, conv1: nn.Conv2d, conv2: nn.Conv2d, in_ch: int, dtype: torch.dtype) -> None:
        for conv in (conv1, conv2):
            if (conv.kernel_size, conv.padding, conv.stride, conv.groups) != (
                (3, 3),
                (1, 1),
                (1, 1),
                1,
            ):
                raise ValueError(f"unsupported decoder convolution {conv}")
        w = conv1.weight.detach().to(torch.float64)
        k_up, k_skip = w[:, :in_ch], w[:, in_ch:]
        self.out_ch = k_up.shape[0]
        self.sub: _Conv | None = None  # the sub-pixel kernels, for the thin stages only
        if self.out_ch <= SUB_PIXEL_MAX_CHANNELS:  # (phase row a, column b, channel o)
            sub = torch.einsum("ocyx,aye,bxf->abocef", k_up, _PHASE, _PHASE)
            self.sub = _Conv(sub.reshape(4 * self.out_ch, in_ch, 3, 3), None, dtype, padding=0)
        self.up = _Conv(k_up, None, dtype)
        self.skip = _Conv(k_skip, conv1.bias, dtype)
        self.conv2 = _Conv.of(conv2, dtype)

    def __call__(self, y: torch.Tensor, skip: torch.Tensor, ws: Workspace) -> torch.Tensor:
        h, w = y.shape[-2:]
        big_h, big_w = skip.shape[-2:]
        if self.sub is not None and (big_h, big_w) == (2 * h, 2 * w) and h >= 2 and w >= 2:
            phases = self.sub(_pad1(y, ws), ws=ws)  # (n, 4*o, h, w)
            up = _interleave(phases, self.out_ch, ws)
            del phases
            self._exact_frame(up, y)
        else:  # odd sizes: the plain way
            up = self.up(_upsample(y, (big_h, big_w), ws), ws=ws)
        return self.conv2(self.skip.add_into(skip, up, "relu"), "relu", ws)

    def _exact_frame(self, up: torch.Tensor, y: torch.Tensor) -> None:
        """Recompute the outermost rows and columns of ``up`` (in place), where the
        full-resolution convolution sees its zero padding rather than an upsampled pixel."""
        top, bottom, left, right = self.frame(y)
        up[:, :, :1] = top
        up[:, :, -1:] = bottom
        up[:, :, :, :1] = left
        up[:, :, :, -1:] = right

    def frame(self, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The exact up-convolution on the one-pixel frame of the full-resolution map: top
        and bottom rows (n, o, 1, 2w), left and right columns (n, o, 2h, 1). Each comes from
        a two-row (two-column) strip of the upsampled map."""
        big_h, big_w = 2 * y.shape[2], 2 * y.shape[3]

        def conv_strip(part: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
            u = F.interpolate(part, size=size, mode="bilinear", align_corners=False)
            return self.up(u.contiguous(memory_format=torch.channels_last))

        return (
            conv_strip(y[:, :, :2], (4, big_w))[:, :, :1],
            conv_strip(y[:, :, -2:], (4, big_w))[:, :, 3:],
            conv_strip(y[:, :, :, :2], (big_h, 4))[:, :, :, :1],
            conv_strip(y[:, :, :, -2:], (big_h, 4))[:, :, :, 3:],
        )


def _interleave(phases: torch.Tensor, o: int, ws: Workspace) -> torch.Tensor:
    """(n, 4*o, h, w) channels_last, channels (a, b, c) -> (n, o, 2h, 2w) channels_last,
    phase (a, b) at pixel (2i + a, 2j + b)."""
    n, _, h, w = phases.shape
    src = phases.permute(0, 2, 3, 1).reshape(n, h, w, 2, 2, o)
    out = ws.take((n, h, 2, w, 2, o), phases.dtype, channels_last=False)
    out.copy_(src.permute(0, 1, 3, 2, 4, 5))
    return out.view(n, 2 * h, 2 * w, o).permute(0, 3, 1, 2)


def _pad1(y: torch.Tensor, ws: Workspace) -> torch.Tensor:
    """``F.pad(y, (1, 1, 1, 1), mode="replicate")`` into a workspace buffer."""
    n, c, h, w = y.shape
    out = ws.take((n, c, h + 2, w + 2), y.dtype)
    return torch.ops.aten.replication_pad2d.out(y, [1, 1, 1, 1], out=out)


def _upsample(y: torch.Tensor, size: tuple[int, int], ws: Workspace) -> torch.Tensor:
    """Bilinear resize (align_corners=False) of (n, c, h, w) to ``size``, channels_last."""
    out = ws.take((y.shape[0], y.shape[1], *size), y.dtype)
    return torch.ops.aten.upsample_bilinear2d.out(y, list(size), False, None, None, out=out)


def _phase_kernel(weight: torch.Tensor) -> torch.Tensor:
    """A 3x3 convolution at full resolution as one on the four phases at half resolution.

    (O, C, 3, 3) -> (4*O, 4*C, 3, 3), channels phase-major on both sides; zero padding
    of the phase maps is the full-resolution zero padding, so the result is exact.
    """
    o, c = weight.shape[:2]
    out = torch.zeros((2, 2, o, 2, 2, c, 3, 3), dtype=torch.float64)
    w = weight.detach().to(torch.float64)
    for a2 in range(2):
        for b2 in range(2):
            for dy in range(3):
                for dx in range(3):
                    r, s = a2 + dy - 1, b2 + dx - 1  # full-resolution offsets from (2i, 2j)
                    out[a2, b2, :, r % 2, s % 2, :, r // 2 + 1, s // 2 + 1] += w[:, :, dy, dx]
    return out.reshape(4 * o, 4 * c, 3, 3)


class _Tail:
    """The last decoder stage (its skip the one-channel input) and the head, computed on the
    four phases of the full-resolution map at half resolution (:func:`_phase_kernel`).

    At full resolution the 2-channel head leaves oneDNN's matrix units mostly idle; on the
    phases it has four times the channels (and the multiply-adds, zeros included) and runs
    about twice as fast, the 16-channel convolution about as fast as before, and no
    full-resolution map is written before the head's 2-channel output (one thread, bf16,
    batch 4 at 256x448: 101 -> 96 ms per call, an ad-hoc timing script).
    """

    def __init__(
        self,
        block: _UpBlock,
        conv2: nn.Conv2d,
        head: nn.Conv2d,
        skip: torch.Tensor,
        bias: torch.Tensor | None,
        dtype: torch.dtype,
    ) -> None:
        self.block = block
        self.head = _Conv.of(head, dtype)
        self.skip = _Conv(_phase_kernel(skip), _tile(bias), dtype)
        self.conv2 = _Conv(_phase_kernel(conv2.weight), _tile(conv2.bias), dtype)
        self.head_p = _Conv(_phase_kernel(head.weight), _tile(head.bias), dtype)

    def __call__(self, y: torch.Tensor, x: torch.Tensor, ws: Workspace) -> torch.Tensor:
        """y: (n, c, h, w) the previous stage; x: (n, 1, 2h, 2w) the input L, channels_last.
        Returns the head's output before tanh, (n, 2, 2h, 2w)."""
        n, _, h, w = y.shape
        sub = self.block.sub
        if sub is None or x.shape[-2:] != (2 * h, 2 * w) or h < 2 or w < 2:
            return self.head(self.block(y, x, ws), ws=ws)
        phases = sub(_pad1(y, ws), ws=ws)  # (n, 4*o, h, w)
        o = self.block.out_ch
        grid = phases.permute(0, 2, 3, 1).view(n, h, w, 2, 2, o)  # (a, b, o) per pixel
        top, bottom, left, right = self.block.frame(y)

        def row(t: torch.Tensor) -> torch.Tensor:  # (n, o, 1, 2w) -> (n, w, b, o)
            return t[:, :, 0].reshape(n, o, w, 2).permute(0, 2, 3, 1)

        def col(t: torch.Tensor) -> torch.Tensor:  # (n, o, 2h, 1) -> (n, h, a, o)
            return t[..., 0].reshape(n, o, h, 2).permute(0, 2, 3, 1)

        grid[:, 0, :, 0] = row(top)
        grid[:, h - 1, :, 1] = row(bottom)
        grid[:, :, 0, :, 0] = col(left)
        grid[:, :, w - 1, :, 1] = col(right)
        # F.pixel_unshuffle(x, 2), written into a channels_last buffer: channel 2a + b
        # holds the pixels (2i + a, 2j + b)
        phases_l = ws.take((n, 4, h, w), x.dtype)
        phases_l.permute(0, 2, 3, 1).view(n, h, w, 2, 2).copy_(
            x.permute(0, 2, 3, 1).view(n, h, 2, w, 2).permute(0, 1, 3, 2, 4)
        )
        z = self.skip.add_into(phases_l, phases, "relu")
        del phases_l
        z = self.conv2(z, "relu", ws)
        return _interleave(self.head_p(z, ws=ws), 2, ws)


class _ClassHead:
    """The classification head: conv-ReLU, 1x1 conv to class logits, then the annealed
    mean in float32 and a bilinear upsampling to the input's size."""

    def __init__(self, model: UNetGenerator, dtype: torch.dtype) -> None:
        head = model.color_head
        if not isinstance(head[1], nn.Identity):
            raise ValueError("FusedGenerator needs a model with BatchNorm folded")
        self.conv = _Conv.of(head[0], dtype)
        self.logits = _Conv.of(head[3], dtype)
        self.centres = model.bin_ab.detach().float().clone()
        self.temperature = float(model.temperature)

    def __call__(self, y: torch.Tensor, size: tuple[int, int], ws: Workspace) -> torch.Tensor:
        logits = self.logits(self.conv(y, "relu", ws), "none", ws)
        return decode_classes(logits, self.centres, self.temperature, size)


def _tile(bias: torch.Tensor | None) -> torch.Tensor | None:
    """A bias for phase-major outputs: the same per phase."""
    return None if bias is None else bias.detach().repeat(4)


class FusedGenerator:
    """:class:`UNetGenerator` inference on the CPU as fused oneDNN convolutions.

    Build once from an eval-mode generator whose BatchNorm is folded
    (:func:`restore.engine.fold_batchnorm`); the weights are copied in ``dtype``. Calls
    may run in several threads at once; each thread keeps its own :class:`Workspace`
    between calls (:meth:`release` lets it go). Any batch and any size the model takes.

    Call: (B, 1, H, W) float L in [-1, 1] (any float dtype; H, W multiples of 32) ->
    (B, 2, H, W) float32 ab in [-1, 1], channels_last: a view of a workspace buffer (which
    may be larger), not overwritten while the caller holds it.
    """

    def __init__(self, model: UNetGenerator, dtype: torch.dtype = torch.bfloat16) -> None:
        self._local = threading.local()  # each calling thread's Workspace
        if model.training:
            raise ValueError("FusedGenerator needs an eval-mode model")
        if not isinstance(model.stem[1], nn.Identity):
            raise ValueError("FusedGenerator needs a model with BatchNorm folded")
        self.dtype = dtype
        self.stem = _Conv.of(model.stem[0], dtype)
        self.stem.keep = True  # its output lives through the call
        pool = model.pool
        if (pool.kernel_size, pool.stride, pool.padding, pool.dilation) != (3, 2, 1, 1):
            raise ValueError(f"unsupported pooling {pool}")
        self.layers = [
            [_Block(b, dtype) for b in layer]
            for layer in (model.layer1, model.layer2, model.layer3, model.layer4)
        ]
        # a block writes its output over x when it has no downsampling shortcut; the first
        # blocks of layers 2-4 take a skip feature as x (ResNet18 downsamples there)
        if any(layer[0].down is None for layer in self.layers[1:]):
            raise ValueError("FusedGenerator needs a downsampling first block in layers 2-4")
        self.decoder = []
        in_ch = model.layer4[-1].conv2.out_channels
        for block in model.decoder:
            conv1, conv2 = block.body[0], block.body[3]
            self.decoder.append(_UpBlock(conv1, conv2, in_ch, dtype))
            in_ch = conv2.out_channels
        self.classes: _ClassHead | None = None
        if model.config.head == "classes":
            self.classes = _ClassHead(model, dtype)
            return
        last = model.decoder[-1].body
        self.tail = _Tail(
            self.decoder.pop(),
            last[3],
            model.head,
            last[0].weight[:, last[0].in_channels - model.config.in_channels :],
            last[0].bias,
            dtype,
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # A new autocast context per call (a decorator's one instance would be shared by
        # threads); off, as the weights are already in self.dtype.
        with torch.inference_mode(), torch.autocast("cpu", enabled=False):
            return self._forward(x)

    def workspace(self) -> Workspace:
        """The calling thread's activation buffers."""
        ws: Workspace | None = getattr(self._local, "ws", None)
        if ws is None:
            ws = self._local.ws = Workspace()
        return ws

    def release(self) -> None:
        """Let the calling thread's workspace go (e.g. before full-resolution work that
        needs the memory more)."""
        self._local.ws = None

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        ws = self.workspace()
        ws.begin(tuple(x.shape))
        # A one-channel tensor is "contiguous" in both layouts and keeps its NCHW strides
        # through .contiguous(channels_last); oneDNN then takes its unfused path for the
        # skip join of the last stage. Copy into channels_last strides explicitly.
        x = ws.take(tuple(x.shape), self.dtype).copy_(x)
        y = self.stem(x, "relu", ws)
        feats = [x, y]
        y = _max_pool_after_relu(y, ws)
        for layer in self.layers:
            for block in layer:
                y = block(y, ws)
            feats.append(y)
        skips = reversed(feats[1:-1])
        for block, skip in zip(self.decoder, skips, strict=self.classes is None):
            y = block(y, skip, ws)
        if self.classes is not None:
            del feats
            return self.classes(y, tuple(x.shape[-2:]), ws)
        head = self.tail(y, x, ws)
        del feats, x, y
        return ws.take(tuple(head.shape), torch.float32).copy_(head).tanh_()

"""Between decoded video frames and the colour math: lightness in, encodable frames out."""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation

from restore import color

# The output is sRGB (BT.709 primaries), so it is tagged and converted as BT.709, limited range:
# what players assume for H.264 and what editing software expects.
OUTPUT_COLORSPACE = Colorspace.ITU709
OUTPUT_RANGE = ColorRange.MPEG
AVCOL_BT709 = 1  # AVCOL_PRI_BT709 == AVCOL_TRC_BT709 == AVCOL_SPC_BT709
AVCOL_RANGE_MPEG = 1
# swscale's default YCbCr -> RGB path darkens by half a level on average (measured: -0.49);
# with these flags it is exact, for about 1 ms more per 920x672 frame.
EXACT = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.BITEXACT
EXACT_IN = EXACT | Interpolation.FULL_CHR_H_INT


def _bits(fmt: av.VideoFormat) -> int:
    return max((c.bits for c in fmt.components), default=8)


def _chroma_is_neutral(frame: av.VideoFrame) -> bool:
    """True if a planar YCbCr frame has exactly neutral chroma (a black-and-white picture)."""
    fmt = frame.format
    if not fmt.is_planar or fmt.is_rgb or len(frame.planes) < 3 or fmt.has_palette:
        return False
    if not fmt.name.startswith("yuv") or fmt.name.startswith("yuva") or fmt.is_big_endian:
        return False
    bits = _bits(fmt)
    dtype = np.dtype("<u2") if bits > 8 else np.dtype(np.uint8)
    neutral = 1 << (bits - 1)
    for plane in frame.planes[1:3]:
        rows = np.frombuffer(memoryview(plane), dtype).reshape(plane.height, -1)[:, : plane.width]
        if rows.min() != neutral or rows.max() != neutral:
            return False
    return True


def frame_lightness(frame: av.VideoFrame, out: np.ndarray | None = None) -> np.ndarray:
    """CIE L of a decoded frame at its full resolution.

    Honours the frame's colour range (limited or full, e.g. yuvj420p) and matrix through
    swscale. A YCbCr frame with exactly neutral chroma is read through its gray level (a
    table look-up, same result as the RGB path); anything else goes through RGB.

    Args:
        frame: a decoded video frame of any pixel format.
        out: optional (H, W) C-contiguous float32 array to write into (returned).
    Returns:
        (H, W) float32 L in [0, 100].
    """
    deep = _bits(frame.format) > 8
    if frame.format.name.startswith("gray") or _chroma_is_neutral(frame):
        gray = frame.to_ndarray(format="gray16le" if deep else "gray", interpolation=EXACT_IN)
        return color.gray_to_l(gray, out)
    if deep:
        rgb = frame.to_ndarray(format="rgb48le", interpolation=EXACT_IN)
        lightness = color.rgb_to_l(color.to_float_rgb(rgb))
        if out is None:
            return lightness
        out[...] = lightness
        return out
    return color.rgb8_to_l(frame.to_ndarray(format="rgb24", interpolation=EXACT_IN), out)


def chroma_subsampling(pix_fmt: str) -> tuple[int, int]:
    """How many luma pixels share one chroma sample, (x, y): (2, 2) for yuv420p."""
    fmt = av.VideoFormat(pix_fmt)
    return 64 // max(1, fmt.chroma_width(64)), 64 // max(1, fmt.chroma_height(64))


def encoded_size(width: int, height: int, pix_fmt: str) -> tuple[int, int]:
    """The frame size an encoder in ``pix_fmt`` can hold: rounded up to whole chroma samples.

    H.264 in 4:2:0 cannot represent an odd width or height at all (its cropping works in
    2-pixel steps), so odd-sized films are padded by one pixel rather than encoded 4:4:4,
    which many players (browsers, QuickTime, hardware decoders) refuse.
    """
    sx, sy = chroma_subsampling(pix_fmt)
    return -(-width // sx) * sx, -(-height // sy) * sy


def rgb_to_frame(rgb: np.ndarray, size: tuple[int, int], pix_fmt: str) -> av.VideoFrame:
    """A colorized picture as a frame ready for the encoder (no timestamps set).

    Args:
        rgb: (H, W, 3) uint8 sRGB, or float32 in [0, 1].
        size: (width, height) of the encoded stream. A frame smaller by less than one chroma
            sample is padded by repeating its last row/column; any other size is rescaled.
        pix_fmt: encoder pixel format, e.g. "yuv420p".
    Returns:
        A VideoFrame in ``pix_fmt``; YCbCr formats are BT.709, limited range.
    """
    u8 = rgb if rgb.dtype == np.uint8 else np.clip(rgb * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
    h, w = u8.shape[:2]
    width, height = size
    if 0 <= width - w < 2 and 0 <= height - h < 2 and (width, height) != (w, h):
        u8 = np.pad(u8, ((0, height - h), (0, width - w), (0, 0)), mode="edge")
    frame = av.VideoFrame.from_ndarray(u8, format="rgb24")
    yuv = not av.VideoFormat(pix_fmt).is_rgb
    out = frame.reformat(
        width=width,
        height=height,
        format=pix_fmt,
        dst_colorspace=OUTPUT_COLORSPACE if yuv else None,
        dst_color_range=OUTPUT_RANGE if yuv else None,
        interpolation=EXACT,
    )
    if yuv:
        out.color_primaries = AVCOL_BT709
        out.color_trc = AVCOL_BT709
    return out

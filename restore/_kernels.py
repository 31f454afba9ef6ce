"""Compiled per-pixel kernels behind :mod:`restore.color`'s fast 8-bit paths.

Private to ``restore.color``, which owns the colour math and its constants and passes
them in (matrices, tables): nothing here defines a colour space. The kernels are
numba-compiled (cached on disk after the first call), release the GIL so pipeline
threads run them in parallel, and work row by row on float32 structure-of-arrays
buffers so that the arithmetic vectorises. One pass per pixel replaces the dozen
full-image passes of an OpenCV/numpy formulation (about 2.5x faster at 12 MP:
benchmarks/RESULTS.md).
"""

from __future__ import annotations

from typing import Literal, TypedDict

import numba as nb
import numpy as np


class _JitOptions(TypedDict):
    # Typed so that ``nb.njit(**_OPTS)`` matches numba's overloads (a plain dict does not).
    cache: bool
    nogil: bool
    fastmath: bool
    error_model: Literal["numpy"]


_OPTS: _JitOptions = {"cache": True, "nogil": True, "fastmath": True, "error_model": "numpy"}
_F = np.float32


@nb.njit(**_OPTS)
def _row_codes(
    lightness: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    m: np.ndarray,
    knee: np.float32,
    slope: np.float32,
    codes: np.ndarray,
) -> None:
    """One row: L, a, b (W,) float32 -> codes (3, W) float32, 16-bit linear RGB + 0.5.

    Lab -> XYZ with the CIE inverse written as g^3 + slope (t - g), g = max(t, knee)
    (its linear toe in the same formula); XYZ -> linear RGB by ``m`` (row-major 3x3,
    white-scaled); out-of-gamut colours pulled towards the gray of equal luminance Y
    (the largest s <= 1 keeping Y + s (c - Y) in the cube; s = 1 inside it).
    """
    m0, m1, m2, m3, m4, m5, m6, m7, m8 = m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8]
    zero, one, tiny, top16 = _F(0.0), _F(1.0), _F(1e-12), _F(65535.0)
    for x in range(lightness.shape[0]):
        fy = (lightness[x] + _F(16.0)) * _F(1.0 / 116.0)
        tx = fy + a[x] * _F(1.0 / 500.0)
        tz = fy - b[x] * _F(1.0 / 200.0)
        gx, gy, gz = max(tx, knee), max(fy, knee), max(tz, knee)
        cx = gx * gx * gx + slope * (tx - gx)
        cy = gy * gy * gy + slope * (fy - gy)
        cz = gz * gz * gz + slope * (tz - gz)
        r = m0 * cx + m1 * cy + m2 * cz
        g = m3 * cx + m4 * cy + m5 * cz
        bl = m6 * cx + m7 * cy + m8 * cz
        lum = min(max(cy, zero), one)
        above = max(max(r, g), bl) - lum
        below = lum - min(min(r, g), bl)
        s = min(one, min((one - lum) / max(above, tiny), lum / max(below, tiny)))
        codes[0, x] = min(max(lum + s * (r - lum), zero), one) * top16 + _F(0.5)
        codes[1, x] = min(max(lum + s * (g - lum), zero), one) * top16 + _F(0.5)
        codes[2, x] = min(max(lum + s * (bl - lum), zero), one) * top16 + _F(0.5)


@nb.njit(**_OPTS)
def _encode_row(codes: np.ndarray, lut: np.ndarray, out_row: np.ndarray) -> None:
    """codes (3, W) float32 -> out_row (W, 3) uint8 through the 16-bit -> sRGB8 table."""
    bottom, top = np.int32(0), np.int32(65535)
    for x in range(out_row.shape[0]):
        # Clamped as integers: a NaN/inf code (a diverged model) must not index outside lut.
        out_row[x, 0] = lut[min(max(np.int32(codes[0, x]), bottom), top)]
        out_row[x, 1] = lut[min(max(np.int32(codes[1, x]), bottom), top)]
        out_row[x, 2] = lut[min(max(np.int32(codes[2, x]), bottom), top)]


@nb.njit(**_OPTS)
def merge_u8(
    lightness: np.ndarray,
    ab_small: np.ndarray,
    m: np.ndarray,
    knee: np.float32,
    slope: np.float32,
    lut: np.ndarray,
    out: np.ndarray,
) -> None:
    """L (H, W) float32 + ab (h, w, 2) float32 -> out (H, W, 3) uint8 sRGB, in place.

    ab is resized on the fly bilinearly with OpenCV's pixel-centre rule (``cv2.resize``,
    INTER_LINEAR); at (h, w) == (H, W) the weights are (1, 0) and ab is used as is.
    ``m``: (9,) float32 white-scaled XYZ -> linear RGB, row-major; ``lut``: (65536,)
    uint8, 16-bit linear code -> 8-bit sRGB.
    """
    height, width = lightness.shape
    h, w = ab_small.shape[0], ab_small.shape[1]
    x0 = np.empty(width, np.int64)
    x1 = np.empty(width, np.int64)
    wx = np.empty(width, np.float32)
    _axis(w, width, x0, x1, wx)
    y0 = np.empty(height, np.int64)
    y1 = np.empty(height, np.int64)
    wy = np.empty(height, np.float32)
    _axis(h, height, y0, y1, wy)
    rows = np.empty((2, 2, width), np.float32)  # [source row 0|1, a|b, x], horizontal pass
    a = np.empty(width, np.float32)
    b = np.empty(width, np.float32)
    codes = np.empty((3, width), np.float32)
    have0, have1 = -1, -1
    one = _F(1.0)
    for y in range(height):
        if y0[y] != have0 or y1[y] != have1:
            have0, have1 = y0[y], y1[y]
            for k in range(2):
                src = ab_small[have0 if k == 0 else have1]
                for x in range(width):
                    f = wx[x]
                    rows[k, 0, x] = (one - f) * src[x0[x], 0] + f * src[x1[x], 0]
                    rows[k, 1, x] = (one - f) * src[x0[x], 1] + f * src[x1[x], 1]
        f = wy[y]
        for x in range(width):
            a[x] = (one - f) * rows[0, 0, x] + f * rows[1, 0, x]
            b[x] = (one - f) * rows[0, 1, x] + f * rows[1, 1, x]
        _row_codes(lightness[y], a, b, m, knee, slope, codes)
        _encode_row(codes, lut, out[y])


@nb.njit(**_OPTS)
def _axis(n_src: int, n_dst: int, i0: np.ndarray, i1: np.ndarray, frac: np.ndarray) -> None:
    """Source indices and weights of bilinear resizing along one axis (OpenCV's rule:
    source coordinate (i + 0.5) * n_src / n_dst - 0.5, clamped at both borders)."""
    scale = n_src / n_dst
    for i in range(n_dst):
        s = (i + 0.5) * scale - 0.5
        j = int(np.floor(s))
        f = s - j
        if j < 0:
            j, f = 0, 0.0
        if j >= n_src - 1:
            j, f = n_src - 1, 0.0
        i0[i] = j
        i1[i] = min(j + 1, n_src - 1)
        frac[i] = f


@nb.njit(**_OPTS)
def srgb8_to_l(
    rgb: np.ndarray, lin: np.ndarray, wy: np.ndarray, l_of_y16: np.ndarray, out: np.ndarray
) -> None:
    """(H, W, 3) uint8 sRGB -> out (H, W) float32 CIE L, in place.

    ``lin``: (256,) float32 sRGB level -> linear; ``wy``: (3,) float32 luminance weights;
    ``l_of_y16``: (65537,) float32 L of luminance Y = i / 65535, interpolated linearly.
    """
    height, width = out.shape
    pos = np.empty(width, np.float32)
    bottom, top = np.int32(0), np.int32(65535)
    w0, w1, w2 = wy[0], wy[1], wy[2]
    for y in range(height):
        px = rgb[y]
        for x in range(width):
            lum = w0 * lin[px[x, 0]] + w1 * lin[px[x, 1]] + w2 * lin[px[x, 2]]
            pos[x] = min(max(lum, _F(0.0)), _F(1.0)) * _F(65535.0)
        row = out[y]
        for x in range(width):
            i = min(max(np.int32(pos[x]), bottom), top)
            row[x] = l_of_y16[i] + (pos[x] - _F(i)) * (l_of_y16[i + 1] - l_of_y16[i])


@nb.njit(**_OPTS)
def lookup_inplace(values: np.ndarray, table: np.ndarray, scale: np.float32) -> None:
    """values (H, W) float32 >= 0, each replaced by table[round(value * scale)] (clamped
    to the table), in place."""
    top = table.shape[0] - 1
    for y in range(values.shape[0]):
        row = values[y]
        for x in range(row.shape[0]):
            i = int(row[x] * scale + _F(0.5))
            row[x] = table[min(max(i, 0), top)]


@nb.njit(**_OPTS)
def spikes(
    cur: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    threshold: np.float32,
    agree: np.float32,
    out: np.ndarray,
) -> int:
    """out (H, W) uint8: 1 where ``cur`` lies more than ``threshold`` above ``high`` or below
    ``low`` while ``before`` and ``after`` differ by less than ``agree``, else 0 (all
    (H, W) float32). Returns the count of 1s."""
    n = 0
    for y in range(cur.shape[0]):
        c, lo, hi, b, a, o = cur[y], low[y], high[y], before[y], after[y], out[y]
        for x in range(c.shape[0]):
            hit = abs(b[x] - a[x]) < agree and (
                c[x] > hi[x] + threshold or c[x] < lo[x] - threshold
            )
            o[x] = 1 if hit else 0
            n += 1 if hit else 0
    return n

"""The one place that owns sRGB <-> CIE Lab (D65) and the network's normalisation.

Training and inference both import this module, so the generator is always fed
the same brightness scale it was trained on.

Conventions:
    RGB   float32 in [0, 1], sRGB-encoded, channel order R, G, B.
    Lab   float32, L in [0, 100], a and b roughly in [-110, 110] (D65 white).
    Network input  L_n  = L / 50 - 1          in [-1, 1]
    Network output ab_n = ab / 110 (via tanh) in [-1, 1]
"""

from __future__ import annotations

from typing import TypeVar

import cv2
import numpy as np
import torch

from restore import _kernels

L_SCALE = 50.0
L_OFFSET = 1.0
AB_SCALE = 110.0

#: An array or a tensor; the (de)normalisations return the kind they are given.
ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)

#: Recorded in every weights file so a loader can refuse a foreign normalisation.
NORMALISATION = {"space": "CIELab-D65", "L": "L/50-1", "ab": "ab/110"}

# D65 reference white and the sRGB -> XYZ matrix (IEC 61966-2-1).
_WHITE = np.array([0.95047, 1.0, 1.08883], dtype=np.float64)
_RGB2XYZ = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=np.float64,
)
_XYZ2RGB = np.linalg.inv(_RGB2XYZ)
_XYZ2RGB_W = (_XYZ2RGB * _WHITE[None, :]).astype(np.float32)  # from white-normalised XYZ
_EPS = 216.0 / 24389.0  # (6/29)^3
_KAPPA = 24389.0 / 27.0


# ----------------------------------------------------------------------------- numpy


def to_float_rgb(image: np.ndarray) -> np.ndarray:
    """Convert an RGB or gray image of any integer/float dtype to float32 RGB.

    Args:
        image: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); uint8, uint16 or float in [0, 1].
    Returns:
        (H, W, 3) float32 in [0, 1]. Alpha is dropped.
    """
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 4:
        image = image[:, :, :3]
    if image.dtype == np.uint8:
        out = image.astype(np.float32) * (1.0 / 255.0)
    elif image.dtype == np.uint16:
        out = image.astype(np.float32) * (1.0 / 65535.0)
    else:
        out = np.clip(image.astype(np.float32), 0.0, 1.0)
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    return np.ascontiguousarray(out)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB to CIE Lab (D65).

    Args:
        rgb: (H, W, 3) float32 in [0, 1].
    Returns:
        (H, W, 3) float32; L in [0, 100], a/b in about [-110, 110].
    """
    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2Lab)


def rgb_to_l(rgb: np.ndarray) -> np.ndarray:
    """Lightness only: (H, W, 3) float32 RGB in [0, 1] -> (H, W) float32 L in [0, 100]."""
    y = rgb.astype(np.float32, copy=False)
    lin = np.where(y <= 0.04045, y / 12.92, ((y + 0.055) / 1.055) ** 2.4)
    lum = lin @ _RGB2XYZ[1].astype(np.float32)
    return _f_to_l(lum)


def gray_to_l(gray: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Lightness of a neutral gray image.

    Args:
        gray: (H, W) uint8, uint16 or float32 in [0, 1] (an sRGB-encoded gray level).
        out: optional (H, W) float32 array to write into (returned).
    Returns:
        (H, W) float32 L in [0, 100]. For integer input this is a table look-up.
    """
    if gray.dtype == np.uint8:
        return np.take(_L_LUT8, gray, out=out)
    if gray.dtype == np.uint16:
        return np.take(_L_LUT16, gray, out=out)
    g = np.clip(gray.astype(np.float32), 0.0, 1.0)
    lin = np.where(g <= 0.04045, g / 12.92, ((g + 0.055) / 1.055) ** 2.4)
    lightness = _f_to_l(lin)
    if out is None:
        return lightness
    out[...] = lightness
    return out


def rgb8_to_l(rgb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Fast :func:`rgb_to_l` for 8-bit RGB (decoded JPEGs and video frames).

    One compiled pass: table look-up to linear RGB, the luminance row of the matrix, and
    L interpolated in a table over 16-bit luminance codes. Agrees with :func:`rgb_to_l`
    to 1e-3.

    Args:
        rgb: (H, W, 3) uint8 RGB (may be a strided view).
        out: optional (H, W) C-contiguous float32 array to write into (returned).
    Returns:
        (H, W) float32 L in [0, 100].
    """
    height, width = rgb.shape[:2]
    if out is None:
        out = np.empty((height, width), np.float32)
    _kernels.srgb8_to_l(rgb, _LIN_OF_SRGB8, _Y_OF_LINEAR_RGB[0], _L_OF_Y16, out)
    return out


def _f_to_l(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    return np.where(y > _EPS, 116.0 * np.cbrt(y) - 16.0, _KAPPA * y).astype(np.float32)


_L_LUT8 = gray_to_l(np.arange(256, dtype=np.float32) / 255.0)
_Y_OF_LINEAR_RGB = _RGB2XYZ[1:2].astype(np.float32)
_LIN_OF_SRGB8 = np.where(
    (_levels := np.arange(256, dtype=np.float64) / 255.0) <= 0.04045,
    _levels / 12.92,
    ((_levels + 0.055) / 1.055) ** 2.4,
).astype(np.float32)
_L_LUT16 = gray_to_l(np.arange(65536, dtype=np.float32) / 65535.0)
# L of luminance Y = i / 65535 (one entry past the end for interpolation at Y = 1).
_L_OF_Y16 = _f_to_l(np.minimum(np.arange(65537, dtype=np.float64) / 65535.0, 1.0))


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) to sRGB, fitted into the displayable gamut.

    Colours outside the sRGB cube are desaturated towards the neutral of the same
    luminance in linear RGB (lightness and chromaticity direction kept) instead of
    being clipped channel by channel, which shifts hue and produces garish fringes.

    Args:
        lab: (H, W, 3) float32; L in [0, 100].
    Returns:
        (H, W, 3) float32 in [0, 1].
    """
    lin, luminance = _lab_to_linear(lab)
    return linear_to_srgb(fit_gamut_linear(lin, luminance))


def _lab_to_linear(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) Lab -> (..., 3) float32 linear RGB, unclipped (may leave [0, 1]), and
    (...) float32 luminance Y clipped to [0, 1]."""
    lab = np.asarray(lab, dtype=np.float32)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = np.where(f > 6.0 / 29.0, f * f * f, (116.0 * f - 16.0) / _KAPPA)
    return xyz @ _XYZ2RGB_W.T, np.clip(xyz[..., 1], 0.0, 1.0)


def lab_in_gamut(lab: np.ndarray, tolerance: float = 1e-4) -> np.ndarray:
    """Which Lab colours sRGB can show without clipping.

    Args:
        lab: (..., 3) float; L in [0, 100].
    Returns:
        (...) bool.
    """
    lin, _ = _lab_to_linear(lab)
    return np.all((lin >= -tolerance) & (lin <= 1.0 + tolerance), axis=-1)


def fit_gamut_linear(lin: np.ndarray, luminance: np.ndarray) -> np.ndarray:
    """Pull out-of-gamut linear RGB towards the gray of equal luminance.

    The luminance of ``Y + s * (rgb - Y)`` is ``Y`` for any ``s``, so lightness is kept
    exactly and chromaticity moves straight towards the white point (hue kept).

    Args:
        lin: (H, W, 3) float32 linear RGB, may leave [0, 1].
        luminance: (H, W) float32 Y in [0, 1] of the same pixels.
    Returns:
        (H, W, 3) float32 linear RGB in [0, 1].
    """
    if lin.min() >= 0.0 and lin.max() <= 1.0:
        return lin
    y = luminance[..., None]
    d = lin - y
    with np.errstate(divide="ignore", invalid="ignore"):
        s_hi = np.where(d > 0, (1.0 - y) / d, np.inf).min(axis=-1)
        s_lo = np.where(d < 0, -y / d, np.inf).min(axis=-1)
    s = np.clip(np.minimum(s_hi, s_lo), 0.0, 1.0)[..., None]
    return np.clip(y + s * d, 0.0, 1.0).astype(np.float32)


def linear_to_srgb(lin: np.ndarray) -> np.ndarray:
    """Linear RGB in [0, 1] -> sRGB-encoded float32 in [0, 1]."""
    lin = np.asarray(lin, dtype=np.float32)
    hi = 1.055 * np.power(np.maximum(lin, 0.0031308), 1.0 / 2.4, dtype=np.float32) - 0.055
    return np.where(lin <= 0.0031308, 12.92 * lin, hi).astype(np.float32)


def l_to_gray(lightness: np.ndarray) -> np.ndarray:
    """(H, W) float32 L in [0, 100] -> (H, W) float32 sRGB gray level in [0, 1]."""
    fy = (lightness.astype(np.float32) + 16.0) / 116.0
    y = np.where(lightness > 8.0, fy**3, lightness / _KAPPA)
    return linear_to_srgb(np.clip(y, 0.0, 1.0))


def normalize_l(lightness: ArrayOrTensor) -> ArrayOrTensor:
    """L in [0, 100] -> network input in [-1, 1]."""
    return lightness / L_SCALE - L_OFFSET


def denormalize_l(l_n: ArrayOrTensor) -> ArrayOrTensor:
    """Network input in [-1, 1] -> L in [0, 100]."""
    return (l_n + L_OFFSET) * L_SCALE


def normalize_ab(ab: ArrayOrTensor) -> ArrayOrTensor:
    """ab in about [-110, 110] -> network target in [-1, 1] (not clipped)."""
    return ab / AB_SCALE


def denormalize_ab(ab_n: ArrayOrTensor) -> ArrayOrTensor:
    """Network output in [-1, 1] -> ab in [-110, 110]."""
    return ab_n * AB_SCALE


def merge_l_ab(lightness: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Full-resolution L plus (already upsampled) ab -> displayable RGB.

    Args:
        lightness: (H, W) float32 L in [0, 100].
        ab: (H, W, 2) float32 a/b.
    Returns:
        (H, W, 3) float32 RGB in [0, 1].
    """
    lab = np.empty((*lightness.shape, 3), dtype=np.float32)
    lab[..., 0] = lightness
    lab[..., 1:] = ab
    return lab_to_rgb(lab)


# Linear RGB quantised to 16 bits -> 8-bit sRGB. A 16-bit step moves the output by at most
# 0.05 of a level (at black, where the curve is steepest).
_SRGB8_OF_LIN16 = np.round(
    255.0 * linear_to_srgb(np.arange(65536, dtype=np.float32) / 65535.0)
).astype(np.uint8)
_XYZ2RGB_W_FLAT = np.ascontiguousarray(_XYZ2RGB_W.ravel(), dtype=np.float32)
_F_KNEE = np.float32(6.0 / 29.0)  # the CIE f is cubic above, linear below
_F_SLOPE = np.float32(116.0 / _KAPPA)  # slope of its linear piece's inverse


def merge_l_ab_u8(
    lightness: np.ndarray, ab: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Fast :func:`merge_l_ab` for 8-bit output (what video frames and JPEGs need).

    The same math as the exact path (Lab -> linear RGB -> gamut fit towards the gray of
    equal luminance -> sRGB) in one compiled pass, the sRGB curve as a table on 16-bit
    linear values. Differs from ``round(255 * merge_l_ab(L, ab))`` by at most one level,
    in very few pixels (tested on the whole Lab box).

    Args:
        lightness: (H, W) float32 L in [0, 100].
        ab: (H, W, 2) float32 a/b, same size; or (h, w, 2) at another size (the render
            size), resized bilinearly on the fly as ``cv2.resize`` (INTER_LINEAR) would.
        out: optional (H, W, 3) uint8 array to write into.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    height, width = lightness.shape
    if ab.ndim != 3 or ab.shape[2] != 2 or 0 in ab.shape:
        raise ValueError(f"ab {ab.shape} is not an (h, w, 2) map for L {lightness.shape}")
    if out is None:
        out = np.empty((height, width, 3), np.uint8)
    elif out.shape != (height, width, 3) or out.dtype != np.uint8:
        raise ValueError(f"out must be ({height}, {width}, 3) uint8, not {out.shape} {out.dtype}")
    lightness = np.asarray(lightness, dtype=np.float32)
    ab = np.asarray(ab, dtype=np.float32)
    _kernels.merge_u8(lightness, ab, _XYZ2RGB_W_FLAT, _F_KNEE, _F_SLOPE, _SRGB8_OF_LIN16, out)
    return out


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler-Suesstrunk colourfulness (signed opponent channels) on a 0-255 scale.

    Args:
        rgb: (H, W, 3) float in [0, 1].
    """
    x = rgb.astype(np.float64) * 255.0
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    sigma = np.sqrt(rg.std() ** 2 + yb.std() ** 2)
    mu = np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return float(sigma + 0.3 * mu)


# ----------------------------------------------------------------------------- torch


def _srgb_to_linear_t(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0) + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb_t(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=1e-12) ** (1.0 / 2.4) - 0.055)


def rgb_to_lab_torch(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB to Lab for tensors.

    Args:
        rgb: (B, 3, H, W) float in [0, 1].
    Returns:
        (B, 3, H, W) float; L in [0, 100].
    """
    m = torch.as_tensor(_RGB2XYZ / _WHITE[:, None], dtype=rgb.dtype, device=rgb.device)
    xyz = torch.einsum("ij,bjhw->bihw", m, _srgb_to_linear_t(rgb))
    f = torch.where(xyz > _EPS, xyz.clamp(min=_EPS) ** (1.0 / 3.0), (_KAPPA * xyz + 16.0) / 116.0)
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)


def lab_to_rgb_torch(lab: torch.Tensor) -> torch.Tensor:
    """Lab to sRGB for tensors, fitted into the gamut like :func:`lab_to_rgb`.

    Args:
        lab: (B, 3, H, W) float; L in [0, 100].
    Returns:
        (B, 3, H, W) float in [0, 1].
    """
    lightness = lab[:, 0]
    fy = (lightness + 16.0) / 116.0
    fx = fy + lab[:, 1] / 500.0
    fz = fy - lab[:, 2] / 200.0
    f = torch.stack([fx, fy, fz], dim=1)
    xyz = torch.where(f > 6.0 / 29.0, f**3, (116.0 * f - 16.0) / _KAPPA)
    m = torch.as_tensor(_XYZ2RGB_W, dtype=lab.dtype, device=lab.device)
    lin = torch.einsum("ij,bjhw->bihw", m, xyz)  # linear RGB, may leave [0, 1]
    y = xyz[:, 1:2].clamp(0, 1)  # (B, 1, H, W) luminance: the neutral of equal lightness
    d = lin - y
    inf = torch.full_like(d, float("inf"))
    s_hi = torch.where(d > 0, (1.0 - y) / d.clamp(min=1e-12), inf).amin(dim=1, keepdim=True)
    s_lo = torch.where(d < 0, y / (-d).clamp(min=1e-12), inf).amin(dim=1, keepdim=True)
    s = torch.minimum(s_hi, s_lo).clamp(0.0, 1.0)
    return _linear_to_srgb_t((y + s * d).clamp(0.0, 1.0))


# ------------------------------------------------------------------ full resolution

#: Pixels per strip when converting and merging at full resolution (bounded temporaries).
STRIP_PIXELS = 1 << 20


def lightness_of(pixels: np.ndarray) -> np.ndarray:
    """Full-resolution L of an image (colour is reduced to its luminance).

    Args:
        pixels: (H, W) or (H, W, 3) uint8/uint16 RGB (may be a non-contiguous view).
    Returns:
        (H, W) float32 L in [0, 100].
    """
    if pixels.ndim == 2:
        return gray_to_l(pixels)
    if pixels.dtype == np.uint8:
        return rgb8_to_l(pixels)
    height, width = pixels.shape[:2]
    out = np.empty((height, width), np.float32)
    rows = max(1, STRIP_PIXELS // width)
    for r0 in range(0, height, rows):
        out[r0 : r0 + rows] = rgb_to_l(to_float_rgb(pixels[r0 : r0 + rows]))
    return out


def merge_full(lightness: np.ndarray, ab_small: np.ndarray, dtype: type[np.integer]) -> np.ndarray:
    """Upsample ab to full size and merge it with L.

    Same result as ``merge_l_ab(L, Colorizer.upsample_ab(ab, H, W))`` (bilinear, OpenCV
    pixel centres) without holding full-size float ab and RGB: 8-bit output goes through
    :func:`restore.merge_l_ab_u8`, which upsamples on the fly (within one level of
    the exact path); 16-bit output is merged exactly, strip by strip.

    Args:
        lightness: (H, W) float32 L in [0, 100].
        ab_small: (h, w, 2) float32 ab at render size.
        dtype: np.uint8 or np.uint16, the output's sample type.
    Returns:
        (H, W, 3) ``dtype`` RGB.
    """
    if dtype == np.uint8:
        return merge_l_ab_u8(lightness, ab_small)
    height, width = lightness.shape
    h = ab_small.shape[0]
    # Horizontal pass once (small: h rows), vertical pass per strip.
    wide = ab_small
    if ab_small.shape[1] != width:
        wide = cv2.resize(ab_small, (width, h), interpolation=cv2.INTER_LINEAR)
    top = float(np.iinfo(dtype).max)
    out = np.empty((height, width, 3), dtype)
    rows = max(1, STRIP_PIXELS // width)
    for r0 in range(0, height, rows):
        r1 = min(height, r0 + rows)
        rgb = merge_l_ab(lightness[r0:r1], _rows_bilinear(wide, height, r0, r1))
        out[r0:r1] = (rgb * top + 0.5).astype(dtype)
    return out


def _rows_bilinear(src: np.ndarray, height: int, r0: int, r1: int) -> np.ndarray:
    """Rows r0..r1 of ``src`` (h, W, C) resized to ``height`` rows, as cv2.INTER_LINEAR does."""
    h = src.shape[0]
    if h == height:
        return src[r0:r1]
    sy = (np.arange(r0, r1, dtype=np.float64) + 0.5) * (h / height) - 0.5
    y0 = np.floor(sy).astype(np.int64)
    fy = (sy - y0).astype(np.float32)
    fy[y0 < 0] = 0.0
    y0 = np.clip(y0, 0, h - 1)
    fy[y0 >= h - 1] = 0.0
    y1 = np.minimum(y0 + 1, h - 1)
    out = np.empty((r1 - r0, *src.shape[1:]), np.float32)
    for i in range(r1 - r0):  # one SIMD blend per row: no full-strip temporaries
        f = float(fy[i])
        cv2.addWeighted(src[y0[i]], 1.0 - f, src[y1[i]], f, 0.0, dst=out[i])
    return out


def apply_tone_table(lightness: np.ndarray, table: np.ndarray) -> None:
    """Map L through a tone curve sampled at ``len(table)`` even steps over 0..100, in place.

    Args:
        lightness: (H, W) float32 L in [0, 100], C-contiguous rows; modified.
        table: (N,) float32, the curve's L at 0, 100 / (N - 1), ..., 100.
    """
    scale = np.float32((len(table) - 1) / 100.0)
    _kernels.lookup_inplace(lightness, np.ascontiguousarray(table, np.float32), scale)

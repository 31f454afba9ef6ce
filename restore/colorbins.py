"""Quantised ab colours for the classification head (Zhang, Isola and Efros 2016).

The ab plane is cut into square bins of ``BIN`` units centred on multiples of ``BIN``; a
bin is kept when some colour inside it, at some lightness, is displayable in sRGB. With
10-unit bins that is 262 bins (the paper's 313 also count colours sRGB cannot show).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from restore import color

BIN = 10.0
AB_LIMIT = 110.0  # centres run from -AB_LIMIT to +AB_LIMIT


@lru_cache(maxsize=4)
def gamut_bins(bin_size: float = BIN) -> np.ndarray:
    """Centres of the in-gamut ab bins, sorted by (a, b).

    Returns:
        (Q, 2) float32 ab in Lab units, Q = 262 for the default 10-unit bins.
    """
    centres = np.arange(-AB_LIMIT, AB_LIMIT + 1e-6, bin_size)
    a, b = np.meshgrid(centres, centres, indexing="ij")
    lightness = np.arange(0.5, 100.0, 0.5)
    offsets = np.linspace(-bin_size / 2, bin_size / 2, 5)
    reached = np.zeros(a.shape, dtype=bool)
    for da in offsets:
        for db in offsets:
            lab = np.stack(np.broadcast_arrays(lightness[:, None, None], a + da, b + db), -1)
            reached |= color.lab_in_gamut(lab).any(axis=0)
    out = np.stack([a[reached], b[reached]], axis=-1).astype(np.float32)
    out.setflags(write=False)
    return out


def nearest_bin(ab: np.ndarray, centres: np.ndarray | None = None) -> np.ndarray:
    """Index of the nearest bin centre for each colour.

    Args:
        ab: (..., 2) float ab in Lab units.
        centres: (Q, 2) bin centres (default :func:`gamut_bins`).
    Returns:
        (...) int64 in [0, Q).
    """
    centres = gamut_bins() if centres is None else centres
    flat = np.asarray(ab, dtype=np.float32).reshape(-1, 2)
    out = np.empty(len(flat), dtype=np.int64)
    for i in range(0, len(flat), 65536):  # in chunks: N may be millions
        part = flat[i : i + 65536]
        out[i : i + len(part)] = ((part[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
    return out.reshape(np.shape(ab)[:-1])


def normalised_centres() -> np.ndarray:
    """:func:`gamut_bins` in the network's ab normalisation: (Q, 2) float32 in [-1, 1]."""
    return np.asarray(color.normalize_ab(gamut_bins()), dtype=np.float32)

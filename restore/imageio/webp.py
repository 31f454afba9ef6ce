"""WebP, and BMP: Pillow encodes them (WebP with EXIF, ICC and XMP, lossless when the input
was); reading needs only whether a WebP is lossless."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from restore.imageio.exif import _exif_bytes, _fit_exif
from restore.imageio.jpeg import _JPEG_SEGMENT_MAX
from restore.imageio.picture import ImageMetadata

WEBP_QUALITY = 95


def _webp_is_lossless(data: bytes) -> bool:
    """True if the first image chunk of a RIFF/WEBP file is VP8L (lossless)."""
    pos = 12
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        if kind in (b"VP8 ", b"VP8L"):
            return kind == b"VP8L"
        if kind == b"ANMF":
            pos += 8 + 16  # an animation frame holds its image chunks after a 16-byte header
            continue
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        pos += 8 + size + (size & 1)
    return False


def _write_pillow(
    path: Path,
    fmt: str,
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    meta: ImageMetadata,
    exif: Image.Exif,
    notes: list[str],
) -> None:
    if alpha is not None:
        im = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    else:
        im = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    opts: dict[str, Any] = {}
    if fmt == "WEBP":
        opts = {"lossless": True} if meta.lossless else {"quality": WEBP_QUALITY}
        opts["exif"] = _exif_bytes(exif)
        if meta.icc:
            opts["icc_profile"] = meta.icc
        if meta.xmp:
            opts["xmp"] = meta.xmp
    try:
        im.save(path, fmt, **opts)
    except ValueError as e:
        if "exif" not in str(e).lower():
            raise
        # Pillow refused the EXIF for this format: shrink it to what one JPEG segment holds.
        payload = _fit_exif(exif, _JPEG_SEGMENT_MAX, notes)
        if payload:
            opts["exif"] = payload
        else:
            opts.pop("exif")
        im.save(path, fmt, **opts)

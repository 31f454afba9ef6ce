"""Encoding: write_image picks the format from the output's suffix, converts the bit depth
where the format needs it, builds the output's EXIF and hands over to the format's writer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from restore.errors import UnsupportedMedia
from restore.imageio.exif import output_exif
from restore.imageio.jpeg import _write_jpeg
from restore.imageio.picture import SIXTEEN_BIT_FORMATS, ImageMetadata, Marking, format_for
from restore.imageio.png import _write_png
from restore.imageio.tiff import _write_tiff
from restore.imageio.webp import _write_pillow
from restore.imageio.xmp import _merged_xmp


def write_image(
    path: Path,
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    meta: ImageMetadata,
    marking: Marking,
    subsample_chroma: bool = False,
) -> list[str]:
    """Encode ``rgb`` to ``path`` in the format its suffix names, with metadata.

    Args:
        path: the file to write (usually a temporary name; the suffix picks the format).
        rgb: (H, W, 3) uint8 or uint16 RGB. 16-bit is reduced to 8 for JPEG/WebP/BMP.
        alpha: (H, W) same dtype, or None.
        meta: carried from the input.
        marking: software name and colorization note added to the metadata.
        subsample_chroma: JPEG only: 4:2:0 chroma instead of 4:4:4 (for images whose
            colour came from a map of at most half their resolution).
    Returns:
        Warnings about metadata that could not be written.
    """
    fmt = format_for(path)
    if fmt is None:
        raise UnsupportedMedia(f"cannot write {path.suffix!r} files")
    notes: list[str] = []
    if meta.xmp_extended and fmt != "JPEG":  # no size limit: one packet again
        merged = _merged_xmp(meta.xmp, meta.xmp_extended) if meta.xmp else None
        if merged is None:
            notes.append("extended XMP dropped (could not be merged into the main packet)")
        meta = replace(meta, xmp=merged or meta.xmp, xmp_extended=None)
    if meta.iptc and fmt not in ("JPEG", "TIFF"):
        notes.append(f"IPTC records not carried ({fmt} has no place for them; XMP is carried)")
    if rgb.dtype == np.uint16 and fmt not in SIXTEEN_BIT_FORMATS:
        rgb = _to_8bit(rgb)
    if alpha is not None and alpha.dtype != rgb.dtype:
        alpha = _to_8bit(alpha) if alpha.dtype == np.uint16 else alpha.astype(np.uint16) * 257
    height, width = rgb.shape[:2]
    exif = output_exif(meta.exif, width, height, marking)
    if fmt == "PNG":
        _write_png(path, rgb, alpha, meta, exif, marking)
    elif fmt == "TIFF":
        _write_tiff(path, rgb, alpha, meta, exif)
    elif fmt == "JPEG":
        _write_jpeg(path, rgb, meta, exif, notes, subsample_chroma)
    else:
        _write_pillow(path, fmt, rgb, alpha, meta, exif, notes)
    return notes


def _to_8bit(a: np.ndarray) -> np.ndarray:
    return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)

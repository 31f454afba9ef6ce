"""TIFF writer: baseline RGB(A), 8 or 16 bit, Deflate with horizontal predictor; the IFD
(with the EXIF sub-IFDs and the ICC profile) is serialised by Pillow."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, TiffImagePlugin, TiffTags

from restore.imageio.exif import ORIENTATION
from restore.imageio.picture import ImageMetadata

_TIFF_STRIP_BYTES = 1 << 20


def _write_tiff(
    path: Path,
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    meta: ImageMetadata,
    exif: Image.Exif,
) -> None:
    pixels = np.dstack([rgb, alpha]) if alpha is not None else rgb
    height, width, channels = pixels.shape
    bits = 8 * pixels.dtype.itemsize
    rows = max(1, _TIFF_STRIP_BYTES // (width * channels * pixels.dtype.itemsize))
    strips: list[bytes] = []
    for r0 in range(0, height, rows):
        block = pixels[r0 : r0 + rows]
        diff = block.copy()
        diff[:, 1:] -= block[:, :-1]  # predictor 2: horizontal differences, wrapping
        strips.append(zlib.compress(diff.astype(diff.dtype.newbyteorder("<")).tobytes(), 6))
    offsets = np.cumsum([0] + [len(s) for s in strips[:-1]]).tolist()

    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    for tag, value in exif.items():
        if tag != ORIENTATION or value != 1:
            ifd[tag] = value
    structure: dict[int, Any] = {
        256: width,
        257: height,
        258: (bits,) * channels,
        259: 8,  # Adobe Deflate
        262: 2,  # RGB
        273: tuple(offsets),  # relative; Pillow adds the end of the IFD
        274: 1,
        277: channels,
        278: rows,
        279: tuple(len(s) for s in strips),
        284: 1,  # chunky
        317: 2,  # horizontal predictor
        339: (1,) * channels,  # unsigned integers
    }
    if alpha is not None:
        structure[338] = (2,)  # unassociated alpha
    if meta.dpi:
        structure.update({282: float(meta.dpi[0]), 283: float(meta.dpi[1]), 296: 2})
    if meta.icc:
        structure[34675] = meta.icc
    if meta.xmp:
        structure[700] = meta.xmp
    if meta.iptc:
        structure[33723] = meta.iptc
    for tag, value in structure.items():
        ifd[tag] = value
    if meta.xmp:
        ifd.tagtype[700] = TiffTags.BYTE
    if meta.iptc:
        ifd.tagtype[33723] = TiffTags.UNDEFINED
    for tag in (273, 279, 278):
        ifd.tagtype[tag] = TiffTags.LONG
    head = b"II*\0" + struct.pack("<I", 8)
    with open(path, "wb") as f:
        f.write(head)
        f.write(ifd.tobytes(8))
        for s in strips:
            f.write(s)

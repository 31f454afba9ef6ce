"""PNG: text chunks read (from Pillow's info, and from after the image data, where Pillow
looks only when it decodes the pixels) and the writer (OpenCV encodes, 8 or 16 bit; ICC,
dpi, EXIF, text and XMP chunks are inserted after IHDR)."""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from restore.errors import UnsupportedMedia
from restore.imageio.exif import _exif_bytes
from restore.imageio.picture import ImageMetadata, Marking

#: The PNG text keyword that holds an XMP packet (iTXt).
_PNG_XMP_KEY = "XML:com.adobe.xmp"
# PNG text keys Pillow puts in ``info`` that are not text we should carry.
_PNG_SKIP_TEXT = frozenset({_PNG_XMP_KEY, "Raw profile type exif", "Raw profile type APP1"})


def _png_text(info: Mapping[Any, Any]) -> tuple[tuple[str, str], ...]:
    # Pillow's info may also hold tuple keys: only str -> str entries are text.
    return tuple(
        (k, str(v))
        for k, v in info.items()
        if isinstance(k, str) and isinstance(v, str) and k not in _PNG_SKIP_TEXT and 0 < len(k) < 80
    )


#: Largest decompressed text chunk read from after the image data (Pillow: 1 MiB per chunk).
_PNG_TEXT_MAX = 8 << 20


def _png_late_text(data: bytes) -> dict[str, str]:
    """Text chunks (tEXt, zTXt, iTXt) that come after a PNG's image data.

    Pillow reads those only when it decodes the pixels, and PNG pixels are decoded by
    OpenCV here. Keyword -> text; damaged or oversized chunks are skipped.
    """
    out: dict[str, str] = {}
    pos, after_image = 8, False
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        start, pos = pos + 8, pos + 12 + length
        if kind == b"IEND" or start + length > len(data):
            break
        if kind == b"IDAT":
            after_image = True
        elif after_image and kind in (b"tEXt", b"zTXt", b"iTXt"):
            with contextlib.suppress(ValueError, zlib.error, UnicodeDecodeError):
                key, text = _png_text_chunk_body(kind, data[start : start + length])
                out.setdefault(key, text)
    return out


def _png_text_chunk_body(kind: bytes, body: bytes) -> tuple[str, str]:
    """(keyword, text) of a tEXt, zTXt or iTXt chunk's data (ValueError if malformed)."""
    key, rest = body.split(b"\0", 1)
    if kind == b"tEXt":
        return key.decode("latin-1"), rest.decode("latin-1")
    if kind == b"zTXt":
        return key.decode("latin-1"), _inflate(rest[1:]).decode("latin-1")
    compressed = rest[0]
    _language, rest = rest[2:].split(b"\0", 1)
    _translated, text = rest.split(b"\0", 1)
    return key.decode("latin-1"), (_inflate(text) if compressed else text).decode("utf-8")


def _inflate(data: bytes) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(data, _PNG_TEXT_MAX)
    if d.unconsumed_tail or not d.eof:
        raise ValueError("text chunk too large or truncated")
    return out


# -- Writing: OpenCV encodes (8 and 16 bit); metadata chunks are inserted after IHDR.

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_text_chunk(key: str, text: str) -> bytes:
    try:
        return _png_chunk(b"tEXt", key.encode("latin-1") + b"\0" + text.encode("latin-1"))
    except UnicodeEncodeError:
        return _png_chunk(b"iTXt", key.encode("latin-1", "replace") + b"\0\0\0\0\0" + text.encode())


def _write_png(
    path: Path,
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    meta: ImageMetadata,
    exif: Image.Exif,
    marking: Marking,
) -> None:
    bgr = np.dstack([rgb[:, :, ::-1], alpha]) if alpha is not None else rgb[:, :, ::-1]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(bgr), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise UnsupportedMedia("PNG encoding failed")
    data = buf.tobytes()
    del buf
    if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise UnsupportedMedia("unexpected PNG encoder output")
    ihdr_end = 8 + 8 + struct.unpack(">I", data[8:12])[0] + 4
    chunks = []
    if meta.icc:
        chunks.append(_png_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(meta.icc)))
    if meta.dpi:
        ppm = [round(d / 0.0254) for d in meta.dpi]
        chunks.append(_png_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    chunks.append(_png_chunk(b"eXIf", _exif_bytes(exif)[6:]))
    text = dict(meta.text)
    text["Software"] = marking.software
    desc = text.get("Description", "")
    if marking.note not in desc:
        text["Description"] = f"{desc}; {marking.note}" if desc else marking.note
    chunks += [_png_text_chunk(k, v) for k, v in text.items()]
    if meta.xmp:  # iTXt, uncompressed, as Adobe's XMP specification asks
        chunks.append(_png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + meta.xmp))
    with open(path, "wb") as f:
        f.write(data[:ihdr_end])
        f.write(b"".join(chunks))
        f.write(memoryview(data)[ihdr_end:])

"""Decoding: read_image, upright (EXIF orientation applied), alpha split off, refused above
a pixel limit before any pixel is decoded, parser warnings kept as the file's warnings."""

from __future__ import annotations

import contextlib
import io
import re
import struct
import threading
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, TiffTags, UnidentifiedImageError

from restore.errors import ImageTooLarge, UnsupportedMedia
from restore.imageio.exif import _read_exif
from restore.imageio.jpeg import _jpeg_extended_xmp, _jpeg_is_complete
from restore.imageio.picture import ImageMetadata, Picture
from restore.imageio.png import _PNG_XMP_KEY, _png_late_text, _png_text
from restore.imageio.webp import _webp_is_lossless
from restore.imageio.xmp import _upright_xmp, _xmp_with_size

DEFAULT_MAX_PIXELS = 200_000_000

# cv2 decodes the lossless 16-bit capable formats, and complete RGB/gray JPEGs (about 2x
# faster than Pillow plus its array copy at 12 MP); Pillow the rest. Pillow notices a
# truncated JPEG, OpenCV fills it with gray: so a JPEG without its end marker goes to Pillow.
_CV2_FORMATS = frozenset({"PNG", "TIFF"})
_CV2_JPEG_MODES = frozenset({"RGB", "L"})

# The EXIF orientation value -> how to make the pixels upright (matches PIL.ImageOps.exif_transpose).
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def read_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Picture:
    """Decode an image file, upright, with the metadata to carry to its output.

    The header is checked against ``max_pixels`` before any pixel is decoded.

    Raises:
        UnsupportedMedia: empty, corrupt, truncated or not a supported image.
        ImageTooLarge: more than ``max_pixels`` pixels.
    """
    data = path.read_bytes()
    notes: list[str] = []
    with _open(data, max_pixels, notes) as im:
        fmt = str(im.format)
        frames = int(getattr(im, "n_frames", 1))
        if frames > 1:
            notes.append(f"only the first of {frames} frames/pages was colorized")
        with _warnings_into(notes):
            exif, orientation = _read_exif(im, notes)
            late = _png_late_text(data) if fmt == "PNG" else {}
            meta = ImageMetadata(
                exif=exif,
                icc=_rgb_icc(im.info.get("icc_profile")),
                dpi=_dpi(im.info.get("dpi")),
                text=_png_text({**late, **im.info}) if fmt == "PNG" else (),
                lossless=fmt == "WEBP" and _webp_is_lossless(data),
                xmp=_upright_xmp(im.info.get("xmp") or late.get(_PNG_XMP_KEY)),
                iptc=_iptc(im),
                xmp_extended=_upright_xmp(_jpeg_extended_xmp(im)) if fmt == "JPEG" else None,
            )
        pixels: np.ndarray | None = None
        if fmt in _CV2_FORMATS or (
            fmt == "JPEG" and im.mode in _CV2_JPEG_MODES and _jpeg_is_complete(data)
        ):
            pixels = _decode_cv2(data)
            if pixels is not None and _has_alpha(im) and pixels.ndim == 2:
                pixels = None  # OpenCV drops a gray PNG's tRNS transparency; Pillow keeps it
        if pixels is None:
            pixels = _decode_pillow(im)
    del data
    pixels, alpha = _split_alpha(pixels)
    if orientation in _ORIENT:
        pixels = _ORIENT[orientation](pixels)
        alpha = None if alpha is None else _ORIENT[orientation](alpha)
        if meta.dpi and orientation >= 5:
            meta = replace(meta, dpi=(meta.dpi[1], meta.dpi[0]))
    if meta.xmp:
        meta = replace(meta, xmp=_xmp_with_size(meta.xmp, pixels.shape[1], pixels.shape[0]))
    if meta.xmp_extended:
        size = _xmp_with_size(meta.xmp_extended, pixels.shape[1], pixels.shape[0])
        meta = replace(meta, xmp_extended=size)
    return Picture(pixels, alpha, fmt, meta, frames, tuple(notes))


@contextlib.contextmanager
def _open(data: bytes, max_pixels: int, notes: list[str]) -> Iterator[Image.Image]:
    """Pillow's lazy open of in-memory bytes (header only), with our errors and pixel
    limit; the warnings of parsing the header go to ``notes``."""
    if not data:
        raise UnsupportedMedia("empty file (0 bytes)")
    # Our own limit below replaces Pillow's fixed one (it would refuse at 2 x 89 MP).
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, max_pixels)
    try:
        with _warnings_into(notes):
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        # Pillow's own message quotes its limit, not ours (--max-pixels)
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(found[1]) / 1e6:.3g} megapixels, " if found else ""
        raise ImageTooLarge(
            f"{size}over the limit of {max_pixels / 1e6:.3g} megapixels "
            "(raise it with --max-pixels if the memory allows)"
        ) from e
    except UnidentifiedImageError as e:
        raise UnsupportedMedia("not a recognised image (corrupt or unsupported format)") from e
    except (OSError, ValueError, SyntaxError) as e:  # Pillow raises SyntaxError for bad headers
        raise UnsupportedMedia(f"cannot read the image header: {e}") from e
    with im:
        pixels = im.width * im.height
        if pixels > max_pixels:
            raise ImageTooLarge(
                f"{im.width}x{im.height} is {pixels / 1e6:.3g} megapixels, over the limit of "
                f"{max_pixels / 1e6:.3g} (raise it with --max-pixels if the memory allows)"
            )
        if pixels == 0:
            raise UnsupportedMedia("image has no pixels")
        yield im


#: Warnings are process-wide state; reads in several threads take turns to record them.
_warnings_lock = threading.Lock()


@contextlib.contextmanager
def _warnings_into(notes: list[str]) -> Iterator[None]:
    """Record the warnings raised inside (Pillow's "Corrupt EXIF data", ...) into
    ``notes``, the file's warnings in the report, instead of printing them to stderr.
    For short header and metadata parsing only: other reader threads wait meanwhile."""
    with _warnings_lock, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit
        yield
    for w in caught:
        text = str(w.message).strip()
        if text not in notes:
            notes.append(text)


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("LA", "La", "RGBA", "RGBa", "PA") or "transparency" in im.info


def _decode_cv2(data: bytes) -> np.ndarray | None:
    """(H, W) or (H, W, 3|4) RGB(A) uint8/uint16, or None if OpenCV cannot decode it."""
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:  # e.g. over OpenCV's pixel limit: let Pillow try
        return None
    if arr is None:
        return None
    if arr.dtype not in (np.uint8, np.uint16):
        return None  # e.g. float or 32-bit TIFF: let Pillow try, or refuse
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3:
        arr = arr[:, :, 2::-1] if arr.shape[2] == 3 else arr[:, :, [2, 1, 0, 3]]
    return arr


def _decode_pillow(im: Image.Image) -> np.ndarray:
    """(H, W), (H, W, 2) gray + alpha or (H, W, 3|4) RGB(A) uint8 (uint16 for 16-bit gray)."""
    try:
        im.load()
        mode = im.mode
        if mode in ("I;16", "I;16B", "I;16L"):
            return np.asarray(im, dtype=np.uint16)
        if mode in ("1", "L"):
            if "transparency" in im.info:  # a gray key colour: gray + alpha
                return np.asarray(im.convert("LA"))
            return np.asarray(im if mode == "L" else im.convert("L"))
        if mode in ("I", "F"):
            raise UnsupportedMedia(
                f"32-bit {'float' if mode == 'F' else 'integer'} images are not supported"
            )
        return np.asarray(im.convert("RGBA" if _has_alpha(im) else "RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise UnsupportedMedia(f"cannot decode: {e}") from e


def _split_alpha(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        alpha = pixels[:, :, 3]
        if int(alpha.min()) == np.iinfo(alpha.dtype).max:  # fully opaque: no alpha to keep
            return pixels[:, :, :3], None
        return pixels[:, :, :3], alpha
    if pixels.ndim == 3 and pixels.shape[2] == 2:  # gray + alpha
        return pixels[:, :, 0], pixels[:, :, 1]
    return pixels, None


#: Photoshop image resource that holds the IPTC-IIM records (JPEG APP13), and the TIFF tag.
IPTC_RESOURCE, IPTC_TIFF_TAG = 0x0404, 33723


def _iptc(im: Image.Image) -> bytes | None:
    """The IPTC-IIM records of a JPEG (Photoshop resource 0x0404, which Pillow parses out of
    APP13) or a TIFF (tag 33723, bytes or a tuple of ints), if any."""
    if im.format == "JPEG":
        data = im.info.get("photoshop", {}).get(IPTC_RESOURCE)
    elif im.format == "TIFF":
        tags = getattr(im, "tag_v2", None)
        data = None if tags is None else tags.get(IPTC_TIFF_TAG)
        if isinstance(data, tuple) and tags is not None:  # Photoshop writes it as LONGs
            if tags.tagtype.get(IPTC_TIFF_TAG) == TiffTags.LONG:
                data = struct.pack(f"{tags._endian}{len(data)}I", *data)
            else:
                data = bytes(data)
    else:
        return None
    if not isinstance(data, bytes) or not data.startswith(b"\x1c"):  # records start with 0x1C
        return None
    return data


def _rgb_icc(icc: bytes | None) -> bytes | None:
    """The profile if it describes RGB data (colour space signature at byte 16)."""
    if not icc or len(icc) < 132:
        return None
    return icc if icc[16:20] == b"RGB " else None


def _dpi(dpi: Any) -> tuple[float, float] | None:
    try:
        x, y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        return None
    return (x, y) if x > 0 and y > 0 else None

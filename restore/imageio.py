"""Reading and writing still images with their metadata (EXIF, ICC, resolution, PNG text).

Decoding applies the EXIF orientation (pixels come out upright) and refuses images above
a pixel limit before any pixel is decoded (decompression bombs). Encoding keeps the
format given by the output suffix and the bit depth where the format allows it: 8 or 16
bits for PNG and TIFF, 8 bits for JPEG, WebP and BMP.

Pixels are numpy arrays in RGB order:
    gray     (H, W)    uint8 or uint16
    colour   (H, W, 3) uint8 or uint16
    alpha    (H, W)    same dtype as the colour/gray plane, or None
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import ExifTags, Image, TiffImagePlugin, TiffTags, UnidentifiedImageError

from restore.errors import ImageTooLarge, UnsupportedMedia
from restore.imagefiles import FORMATS

log = logging.getLogger(__name__)

SIXTEEN_BIT_FORMATS = frozenset({"PNG", "TIFF"})
DEFAULT_MAX_PIXELS = 200_000_000
JPEG_QUALITY = 95
WEBP_QUALITY = 95

# EXIF tags
ORIENTATION = 0x0112
IMAGE_DESCRIPTION = 0x010E
SOFTWARE = 0x0131
EXIF_IFD = 0x8769
GPS_IFD = 0x8825
INTEROP_IFD = 0xA005
MAKER_NOTE = 0x927C
PIXEL_X_DIMENSION = 0xA002
PIXEL_Y_DIMENSION = 0xA003

# IFD0 tags that describe the old pixel data or its container, not the photo: never carried.
_STRUCTURE_TAGS = frozenset(
    {
        254, 255, 256, 257, 258, 259, 262, 263, 264, 265, 266, 269, 273, 277, 278, 279, 280,
        281, 284, 285, 297, 317, 318, 319, 320, 321, 322, 323, 324, 325, 330, 332, 338, 339,
        340, 341, 347, 513, 514, 529, 530, 531, 532, 700, 33723, 34377, 34675, 37724,
        INTEROP_IFD, ORIENTATION,
    }
)  # fmt: skip
#: The PNG text keyword that holds an XMP packet (iTXt).
_PNG_XMP_KEY = "XML:com.adobe.xmp"
# PNG text keys Pillow puts in ``info`` that are not text we should carry.
_PNG_SKIP_TEXT = frozenset({_PNG_XMP_KEY, "Raw profile type exif", "Raw profile type APP1"})

# cv2 decodes the lossless 16-bit capable formats, and complete RGB/gray JPEGs (about 2x
# faster than Pillow plus its array copy at 12 MP); Pillow the rest. Pillow notices a
# truncated JPEG, OpenCV fills it with gray: so a JPEG without its end marker goes to Pillow.
_CV2_FORMATS = frozenset({"PNG", "TIFF"})
_CV2_JPEG_MODES = frozenset({"RGB", "L"})
_JPEG_EOI = b"\xff\xd9"

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


@dataclass(frozen=True)
class ImageMetadata:
    """What is carried from an input image to its output.

    ``exif`` is IFD0 as {tag: value} with the Exif and GPS sub-IFDs as nested dicts; text
    values are raw bytes (EXIF text is not always ASCII). Treat it as read-only.
    """

    exif: Mapping[int, Any] = field(default_factory=dict)
    icc: bytes | None = None  # an RGB ICC profile; gray/CMYK profiles cannot describe the output
    dpi: tuple[float, float] | None = None
    text: tuple[tuple[str, str], ...] = ()  # PNG tEXt/iTXt chunks
    lossless: bool = False  # WebP: the input was lossless
    xmp: bytes | None = None  # the XMP packet (captions, keywords, people), orientation reset
    # A JPEG's extended XMP (the part of a packet over 64 KiB, in its own segments), as read;
    # the standard packet above names it by its MD5 (xmpNote:HasExtendedXMP)
    xmp_extended: bytes | None = None


@dataclass(frozen=True)
class Picture:
    """A decoded, upright image.

    ``pixels``: (H, W) or (H, W, 3) uint8/uint16 RGB; ``alpha``: (H, W) same dtype or None.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    format: str
    metadata: ImageMetadata
    frames: int = 1
    warnings: tuple[str, ...] = ()

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def bit_depth(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8

    @property
    def is_gray(self) -> bool:
        return self.pixels.ndim == 2


def format_for(path: Path) -> str | None:
    """The image format a file name asks for, or None if the suffix is not an image's."""
    return FORMATS.get(path.suffix.lower())


def supports_16bit(path: Path) -> bool:
    return format_for(path) in SIXTEEN_BIT_FORMATS


# ----------------------------------------------------------------------------------- read


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


def _jpeg_is_complete(data: bytes) -> bool:
    """The JPEG ends with its EOI marker (padding after it allowed)."""
    return data.rstrip(b"\0\r\n ").endswith(_JPEG_EOI)


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


def _read_exif(im: Image.Image, notes: list[str]) -> tuple[dict[int, Any], int]:
    """The EXIF worth carrying (structure tags dropped, text as raw bytes) and the orientation."""
    try:
        # PngImageFile.getexif decodes the whole image to look for an eXIf chunk after the
        # pixels; the base method reads what the header already found (eXIf before IDAT).
        ex = Image.Image.getexif(im) if im.format == "PNG" else im.getexif()
        orientation = int(ex.get(ORIENTATION, 1) or 1)
        carried: dict[int, Any] = {t: _raw(v) for t, v in ex.items() if t not in _STRUCTURE_TAGS}
        for ifd_tag in (EXIF_IFD, GPS_IFD):
            carried.pop(ifd_tag, None)
            sub = ex.get_ifd(ifd_tag)
            sub = {
                t: _raw(v) for t, v in sub.items() if t != INTEROP_IFD and not isinstance(v, dict)
            }
            if sub:
                carried[ifd_tag] = sub
    except Exception as e:  # noqa: BLE001 - any EXIF parser failure: keep the pixels, lose the EXIF
        notes.append(f"unreadable EXIF not carried over ({e})")
        return {}, 1
    return carried, orientation


def _raw(value: Any) -> Any:
    # Pillow decodes EXIF text as latin-1 and would write it back as ASCII with '?' for
    # anything else; bytes are written unchanged, so UTF-8 captions survive. Pure ASCII
    # stays str so tags Pillow does not know keep the ASCII type.
    if isinstance(value, str) and not value.isascii():
        return value.encode("latin-1", "replace")
    if isinstance(value, tuple):
        return tuple(_raw(v) for v in value)
    return value


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


def _xmp_property(name: bytes, value: bytes) -> re.Pattern[bytes]:
    """An XMP property ``name`` whose value matches ``value``, written as an attribute
    (name="v") or an element (<name>v<); group 1 is everything before the value."""
    return re.compile(rb"(" + name + rb"""(?:\s*=\s*["']|>)\s*)""" + value + rb"(?=\s*[\"'<])")


# XMP properties that describe the old pixels: the output is upright, RGB, and must not be
# shown gray again by Lightroom.
_XMP_FIXES = tuple(
    (_xmp_property(name, old), new)
    for name, old, new in (
        (rb"tiff:Orientation", rb"\d+", b"1"),
        (rb"photoshop:ColorMode", rb"[01]", b"3"),
        (rb"crs:ConvertToGrayscale", rb"(?:True|true)", b"False"),
    )
)


def _upright_xmp(xmp: Any) -> bytes | None:
    """The XMP packet with tiff:Orientation 1 (the output pixels are upright), a gray
    photoshop:ColorMode set to RGB, and Camera Raw's ConvertToGrayscale turned off."""
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if not isinstance(xmp, bytes) or not xmp.strip():
        return None
    for pattern, value in _XMP_FIXES:
        xmp = _set_xmp_values(pattern, value, xmp)
    return xmp


_XMP_SIZE_FIELDS = tuple(
    (_xmp_property(name, rb"\d+"), axis)
    for name, axis in (
        (rb"tiff:ImageWidth", 0),
        (rb"tiff:ImageLength", 1),
        (rb"exif:PixelXDimension", 0),
        (rb"exif:PixelYDimension", 1),
    )
)


def _xmp_with_size(xmp: bytes, width: int, height: int) -> bytes:
    """XMP whose pixel-size properties (where present) give the upright image's size: a
    rotated (EXIF orientation 5-8) input's packet still has the sideways one."""
    size = (str(width).encode(), str(height).encode())
    for pattern, axis in _XMP_SIZE_FIELDS:
        xmp = _set_xmp_values(pattern, size[axis], xmp)
    return xmp


def _set_xmp_values(pattern: re.Pattern[bytes], value: bytes, xmp: bytes) -> bytes:
    """``xmp`` with the value of every match of ``pattern`` (see :func:`_xmp_property`)
    replaced by ``value``, taken literally (not as a replacement template)."""
    return pattern.sub(lambda m: m.group(1) + value, xmp)


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


# ---------------------------------------------------------------------------------- write


@dataclass(frozen=True)
class Marking:
    """How an output is marked as machine-made in its metadata."""

    software: str  # EXIF Software / PNG "Software"
    note: str  # appended to the description (EXIF ImageDescription / PNG "Description")


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


def output_exif(
    carried: Mapping[int, Any], width: int, height: int, marking: Marking
) -> Image.Exif:
    """The output's EXIF: the carried tags, upright, with our software and note."""
    ex = Image.Exif()
    for tag, value in carried.items():
        ex[tag] = dict(value) if isinstance(value, Mapping) else value
    ex[ORIENTATION] = 1
    ex[SOFTWARE] = marking.software.encode()
    caption = ex.get(IMAGE_DESCRIPTION, b"")
    caption = (caption.encode() if isinstance(caption, str) else bytes(caption)).rstrip(b"\0 ")
    note = marking.note.encode()
    if note not in caption:
        ex[IMAGE_DESCRIPTION] = caption + b"; " + note if caption else note
    sub = ex.get(EXIF_IFD)
    if isinstance(sub, dict):
        for tag, value in ((PIXEL_X_DIMENSION, width), (PIXEL_Y_DIMENSION, height)):
            if tag in sub:
                sub[tag] = value
    return ex


def _exif_bytes(ex: Image.Exif) -> bytes:
    """TIFF-structured EXIF with the 'Exif\\0\\0' marker (what JPEG and Pillow expect)."""
    return ex.tobytes()


def _to_8bit(a: np.ndarray) -> np.ndarray:
    return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


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


def _drop_maker_note(exif: Image.Exif) -> None:
    sub = exif.get(EXIF_IFD)
    if isinstance(sub, dict):
        sub.pop(MAKER_NOTE, None)


def _tag_size(value: object) -> int:
    """Rough bytes a tag value takes in the TIFF structure."""
    if isinstance(value, bytes | str):
        return len(value)
    if isinstance(value, tuple | list):
        return 8 * len(value)
    return 4


def _fit_exif(exif: Image.Exif, limit: int, notes: list[str]) -> bytes:
    """EXIF bytes of at most ``limit``: as they are, else without the maker note (the usual
    reason for more), else without the largest other tags one at a time (dates, camera,
    exposure and copyright survive an oversized comment or vendor blob). b"" if nothing fits.
    Appends what was dropped to ``notes``."""
    payload = _exif_bytes(exif)
    if len(payload) <= limit:
        return payload
    sub = exif.get(EXIF_IFD)
    if isinstance(sub, dict) and MAKER_NOTE in sub:
        _drop_maker_note(exif)
        notes.append("EXIF maker note dropped (too large for the format)")
        payload = _exif_bytes(exif)
    dropped: list[str] = []
    while len(payload) > limit:
        candidates: list[tuple[int, MutableMapping[int, Any], int]] = [
            (_tag_size(v), exif, t) for t, v in exif.items() if t != EXIF_IFD
        ]
        if isinstance(sub, dict):
            candidates += [(_tag_size(v), sub, t) for t, v in sub.items()]
        if not candidates:
            notes.append("EXIF dropped (too large for the format)")
            return b""
        _, where, tag = max(candidates, key=lambda c: c[0])
        del where[tag]
        dropped.append(ExifTags.TAGS.get(tag, f"0x{tag:04x}"))
        payload = _exif_bytes(exif)
    if dropped:
        notes.append(f"EXIF tags dropped (too large for the format): {', '.join(dropped)}")
    return payload


# -- JPEG: OpenCV encodes (no copy into Pillow's layout); EXIF, ICC and dpi are spliced in.

_JPEG_SEGMENT_MAX = 65533  # payload bytes of one marker segment
_ICC_CHUNK = 65519  # ICC bytes per APP2 segment (after its 14-byte header)
_XMP_JPEG_HEADER = b"http://ns.adobe.com/xap/1.0/\0"


def _write_jpeg(
    path: Path,
    rgb: np.ndarray,
    meta: ImageMetadata,
    exif: Image.Exif,
    notes: list[str],
    subsample_chroma: bool,
) -> None:
    sampling = (
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420
        if subsample_chroma
        else cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444
    )
    ok, buf = cv2.imencode(
        ".jpg",
        cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling],
    )
    if not ok:
        raise UnsupportedMedia("JPEG encoding failed")
    data = bytearray(buf.tobytes())
    # libjpeg starts with SOI and a JFIF APP0 segment; metadata segments follow it.
    if data[2:4] != b"\xff\xe0" or data[6:11] != b"JFIF\0":
        raise UnsupportedMedia("unexpected JPEG layout from the encoder")
    if meta.dpi:
        x, y = (min(65535, max(1, round(v))) for v in meta.dpi)
        data[13:18] = struct.pack(">BHH", 1, x, y)  # units: dots per inch
    app0_end = 4 + struct.unpack(">H", data[4:6])[0]
    payload = _fit_exif(exif, _JPEG_SEGMENT_MAX, notes)
    segments = [_jpeg_segment(0xE1, payload)] if payload else []
    if meta.xmp:
        segments += _xmp_segments(meta.xmp, meta.xmp_extended, notes)
    if meta.icc:
        chunks = [meta.icc[i : i + _ICC_CHUNK] for i in range(0, len(meta.icc), _ICC_CHUNK)]
        if len(chunks) <= 255:
            segments += [
                _jpeg_segment(0xE2, b"ICC_PROFILE\0" + bytes([i + 1, len(chunks)]) + c)
                for i, c in enumerate(chunks)
            ]
        else:
            notes.append("ICC profile dropped (too large for the format)")
    with path.open("wb") as f:
        f.write(data[:app0_end])
        for seg in segments:
            f.write(seg)
        f.write(data[app0_end:])


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


# -- JPEG extended XMP (XMP specification part 3, 1.1.3.1): a packet over 64 KiB goes in
# APP1 segments of its own, each with the MD5 of the whole (GUID), its length and the
# chunk's offset; the standard packet names the GUID in xmpNote:HasExtendedXMP.

_XMP_EXT_HEADER = b"http://ns.adobe.com/xmp/extension/\0"
_XMP_EXT_CHUNK = _JPEG_SEGMENT_MAX - len(_XMP_EXT_HEADER) - 32 - 8
#: Largest extension read: its length field comes from the file, so it is checked against
#: the data that is there before anything is allocated, and capped.
_XMP_EXT_MAX = 16 << 20
_HAS_EXTENDED = _xmp_property(rb"xmpNote:HasExtendedXMP", rb"([0-9A-Fa-f]{32})")
_XPACKET = re.compile(rb"<\?xpacket[^>]*\?>\s*")


def _extension_guid(xmp: bytes) -> bytes | None:
    """The GUID (upper-case hex MD5) of the extension a standard packet names, if any."""
    named = _HAS_EXTENDED.search(xmp)
    return None if named is None else named.group(2).upper()


def _jpeg_extended_xmp(im: Image.Image) -> bytes | None:
    """The extended XMP of a JPEG: the chunks carrying the GUID the standard packet names,
    put together, if they cover it exactly and their MD5 is that GUID; else None."""
    xmp = im.info.get("xmp")
    guid = _extension_guid(xmp) if isinstance(xmp, bytes) else None
    if guid is None:
        return None
    head = len(_XMP_EXT_HEADER)
    sizes: set[int] = set()
    chunks: dict[int, bytes] = {}  # by offset; a repeated segment counts once
    for marker, payload in getattr(im, "applist", []):
        if marker != "APP1" or not payload.startswith(_XMP_EXT_HEADER):
            continue
        if len(payload) < head + 40 or payload[head : head + 32].upper() != guid:
            continue
        size, offset = struct.unpack(">II", payload[head + 32 : head + 40])
        sizes.add(size)
        chunks[offset] = payload[head + 40 :]
    if len(sizes) != 1 or not chunks:
        return None
    size = sizes.pop()
    if size > _XMP_EXT_MAX or sum(len(c) for c in chunks.values()) != size:
        return None
    data, at = bytearray(), 0
    for offset in sorted(chunks):
        if offset != at:
            return None  # a gap or an overlap
        data += chunks[offset]
        at += len(chunks[offset])
    whole = bytes(data)
    return whole if hashlib.md5(whole).hexdigest().upper().encode() == guid else None


_RDF_BODY = re.compile(rb"<rdf:RDF\b[^>]*>(.*)</rdf:RDF>", re.S)
_HAS_EXTENDED_ATTR = re.compile(rb"""\s+xmpNote:HasExtendedXMP\s*=\s*["'][0-9A-Fa-f]{32}["']""")
_HAS_EXTENDED_ELEM = re.compile(
    rb"<xmpNote:HasExtendedXMP>\s*[0-9A-Fa-f]{32}\s*</xmpNote:HasExtendedXMP>"
)


def _merged_xmp(xmp: bytes, extended: bytes) -> bytes | None:
    """One packet holding both: the extension's rdf:Description elements added to the
    standard packet's rdf:RDF (RDF merges descriptions of the same resource), without the
    reference to the extension. None if either is not laid out that way."""
    body = _RDF_BODY.search(extended)
    end = xmp.rfind(b"</rdf:RDF>")
    if body is None or end < 0:
        return None
    xmp = xmp[:end] + body.group(1) + xmp[end:]
    return _HAS_EXTENDED_ELEM.sub(b"", _HAS_EXTENDED_ATTR.sub(b"", xmp))


def _xmp_segments(xmp: bytes, extended: bytes | None, notes: list[str]) -> list[bytes]:
    """APP1 payloads for an XMP packet and its extension (whose GUID the standard packet's
    xmpNote:HasExtendedXMP is set to). A packet that does not fit in one segment becomes the
    extension of a standard packet that only names it."""
    if len(_XMP_JPEG_HEADER) + len(xmp) > _JPEG_SEGMENT_MAX:
        if extended:
            notes.append("extended XMP dropped (the main XMP packet needs its place)")
        extended = _XPACKET.sub(b"", xmp).strip()
        xmp = (
            b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
            b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
            b'rdf:about="" xmlns:xmpNote="http://ns.adobe.com/xmp/note/" '
            b'xmpNote:HasExtendedXMP="' + 32 * b"0" + b'"/></rdf:RDF></x:xmpmeta>'
            b'<?xpacket end="w"?>'
        )
    if not extended:
        return [_jpeg_segment(0xE1, _XMP_JPEG_HEADER + xmp)]
    guid = hashlib.md5(extended).hexdigest().upper().encode()
    if _extension_guid(xmp) is None:
        notes.append("extended XMP dropped (the main XMP packet does not name it)")
        return [_jpeg_segment(0xE1, _XMP_JPEG_HEADER + xmp)]
    # the extension may have changed since it was read (orientation, size): name it anew
    xmp = _HAS_EXTENDED.sub(lambda m: m.group(1) + guid, xmp, count=1)
    segments = [_jpeg_segment(0xE1, _XMP_JPEG_HEADER + xmp)]
    size = struct.pack(">I", len(extended))
    for offset in range(0, len(extended), _XMP_EXT_CHUNK):
        chunk = extended[offset : offset + _XMP_EXT_CHUNK]
        payload = _XMP_EXT_HEADER + guid + size + struct.pack(">I", offset) + chunk
        segments.append(_jpeg_segment(0xE1, payload))
    return segments


# -- PNG: OpenCV encodes (8 and 16 bit); metadata chunks are inserted after IHDR.

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


# -- TIFF: baseline RGB(A), 8 or 16 bit, Deflate with horizontal predictor; the IFD (with
#    the EXIF sub-IFDs and the ICC profile) is serialised by Pillow.

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
    for tag, value in structure.items():
        ifd[tag] = value
    if meta.xmp:
        ifd.tagtype[700] = TiffTags.BYTE
    for tag in (273, 279, 278):
        ifd.tagtype[tag] = TiffTags.LONG
    head = b"II*\0" + struct.pack("<I", 8)
    with open(path, "wb") as f:
        f.write(head)
        f.write(ifd.tobytes(8))
        for s in strips:
            f.write(s)

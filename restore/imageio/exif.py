"""EXIF: the tags carried from an input (container structure dropped, text kept as raw
bytes) and the output's EXIF (upright, marked as colorized, fitted to a size limit)."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from PIL import ExifTags, Image

from restore.imageio.picture import Marking

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

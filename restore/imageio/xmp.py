"""XMP packets (captions, keywords, people), edited as bytes: properties that describe the
old pixels reset, pixel sizes updated, and a JPEG's extended XMP merged back into one packet.

How a JPEG stores a packet over 64 KiB (extended XMP) is in :mod:`restore.imageio.jpeg`.
"""

from __future__ import annotations

import re
from typing import Any


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


# The standard packet names its extension by the extension's MD5 (upper-case hex).
_HAS_EXTENDED = _xmp_property(rb"xmpNote:HasExtendedXMP", rb"([0-9A-Fa-f]{32})")


def _extension_guid(xmp: bytes) -> bytes | None:
    """The GUID (upper-case hex MD5) of the extension a standard packet names, if any."""
    named = _HAS_EXTENDED.search(xmp)
    return None if named is None else named.group(2).upper()


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

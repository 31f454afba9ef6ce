"""JPEG: the end-marker check, the writer (Pillow encodes and places EXIF, ICC, dpi and XMP;
IPTC is added as a segment of its own) and extended XMP (a packet over 64 KiB, in APP1
segments of its own: no maintained library writes it; exiv2 and Pillow refuse such a packet)."""

from __future__ import annotations

import hashlib
import io
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from restore.imageio.exif import _fit_exif
from restore.imageio.picture import ImageMetadata
from restore.imageio.xmp import _HAS_EXTENDED, _extension_guid

JPEG_QUALITY = 95
_JPEG_EOI = b"\xff\xd9"  # end of image marker


def _jpeg_is_complete(data: bytes) -> bool:
    """The JPEG ends with its EOI marker (padding after it allowed)."""
    return data.rstrip(b"\0\r\n ").endswith(_JPEG_EOI)


# -- Writing: Pillow encodes (libjpeg-turbo, the same bytes as OpenCV's encoder) and places
# EXIF, ICC, dpi and a standard XMP packet; it has no place for IPTC or extended XMP, so
# those segments are inserted after the ones Pillow wrote.

_JPEG_SEGMENT_MAX = 65533  # payload bytes of one marker segment
_ICC_SEGMENTS_MAX = 255  # APP2 chunks are numbered in one byte
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
    opts: dict[str, Any] = {"quality": JPEG_QUALITY, "subsampling": 2 if subsample_chroma else 0}
    payload = _fit_exif(exif, _JPEG_SEGMENT_MAX, notes)
    if payload:
        opts["exif"] = payload
    if meta.dpi:
        opts["dpi"] = tuple(min(65535, max(1, round(v))) for v in meta.dpi)
    if meta.icc:
        if len(meta.icc) <= _ICC_SEGMENTS_MAX * _ICC_CHUNK:
            opts["icc_profile"] = meta.icc
        else:
            notes.append("ICC profile dropped (too large for the format)")
    segments = _iptc_segments(meta.iptc, notes) if meta.iptc else []
    if meta.xmp:
        xmp_segments = _xmp_segments(meta.xmp, meta.xmp_extended, notes)
        opts["xmp"] = xmp_segments[0][4 + len(_XMP_JPEG_HEADER) :]
        segments += xmp_segments[1:]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(buf, "JPEG", **opts)
    data = buf.getbuffer()
    at = _after_app_segments(data)
    with path.open("wb") as f:
        f.write(data[:at])
        for seg in segments:
            f.write(seg)
        f.write(data[at:])


def _after_app_segments(data: memoryview) -> int:
    """Offset of the first segment after SOI and the APPn/COM segments that follow it."""
    at = 2
    while data[at] == 0xFF and (0xE0 <= data[at + 1] <= 0xEF or data[at + 1] == 0xFE):
        at += 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]
    return at


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _iptc_segments(iptc: bytes, notes: list[str]) -> list[bytes]:
    """APP13: a Photoshop image resource block holding only the IPTC records (resource
    0x0404, empty name); the other resources (thumbnails of the old picture) are not carried."""
    pad = b"\0" if len(iptc) % 2 else b""
    payload = b"Photoshop 3.0\0" + b"8BIM" + struct.pack(">HHI", 0x0404, 0, len(iptc)) + iptc + pad
    if len(payload) > _JPEG_SEGMENT_MAX:
        notes.append("IPTC dropped (too large for the format)")
        return []
    return [_jpeg_segment(0xED, payload)]


# -- Extended XMP (XMP specification part 3, 1.1.3.1): a packet over 64 KiB goes in
# APP1 segments of its own, each with the MD5 of the whole (GUID), its length and the
# chunk's offset; the standard packet names the GUID in xmpNote:HasExtendedXMP.

_XMP_EXT_HEADER = b"http://ns.adobe.com/xmp/extension/\0"
_XMP_EXT_CHUNK = _JPEG_SEGMENT_MAX - len(_XMP_EXT_HEADER) - 32 - 8
#: Largest extension read: its length field comes from the file, so it is checked against
#: the data that is there before anything is allocated, and capped.
_XMP_EXT_MAX = 16 << 20
_XPACKET = re.compile(rb"<\?xpacket[^>]*\?>\s*")


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

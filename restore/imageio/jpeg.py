"""JPEG: the end-marker check, the writer (OpenCV encodes; EXIF, XMP, ICC and dpi are spliced
into marker segments) and extended XMP (a packet over 64 KiB, in APP1 segments of its own)."""

from __future__ import annotations

import hashlib
import re
import struct
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from restore.errors import UnsupportedMedia
from restore.imageio.exif import _fit_exif
from restore.imageio.picture import ImageMetadata
from restore.imageio.xmp import _HAS_EXTENDED, _extension_guid

JPEG_QUALITY = 95
_JPEG_EOI = b"\xff\xd9"  # end of image marker


def _jpeg_is_complete(data: bytes) -> bool:
    """The JPEG ends with its EOI marker (padding after it allowed)."""
    return data.rstrip(b"\0\r\n ").endswith(_JPEG_EOI)


# -- Writing: OpenCV encodes (no copy into Pillow's layout); EXIF, ICC and dpi are spliced in.

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
    if meta.iptc:
        segments += _iptc_segments(meta.iptc, notes)
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

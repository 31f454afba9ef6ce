"""Reading and writing still images with their metadata (EXIF, ICC, resolution, PNG text).

Decoding applies the EXIF orientation (pixels come out upright) and refuses images above
a pixel limit before any pixel is decoded (decompression bombs). Encoding keeps the
format given by the output suffix and the bit depth where the format allows it: 8 or 16
bits for PNG and TIFF, 8 bits for JPEG, WebP and BMP.

Pixels are numpy arrays in RGB order:
    gray     (H, W)    uint8 or uint16
    colour   (H, W, 3) uint8 or uint16
    alpha    (H, W)    same dtype as the colour/gray plane, or None

The modules, each importing only those above it:
    picture  Picture, ImageMetadata, Marking; which formats a suffix names
    exif     EXIF tags carried in, the output's EXIF, fitting it to a size limit
    xmp      XMP packet edits (orientation, size, merging an extension back)
    png      PNG text chunks and the PNG writer
    jpeg     the JPEG writer, IPTC and extended XMP segments
    tiff     the TIFF writer
    webp     WebP (and BMP) through Pillow
    read     read_image: decode, orientation, alpha, pixel limit, warnings
    write    write_image: picks the format's writer
Names with a leading underscore are private to this package.

Pillow is the metadata library: it parses EXIF, XMP, ICC and IPTC, serialises EXIF and TIFF
directories, and places the metadata in the JPEG and WebP files it encodes. Hand-written
container code remains only where no maintained library does the job: 16-bit RGB PNG
(Pillow cannot encode it, so OpenCV encodes every PNG and the chunks are inserted), TIFF
strips (Pillow cannot encode 16-bit RGB TIFF), text chunks after a PNG's image data,
JPEG IPTC, and extended XMP, which is kept (Lightroom keywords and face regions outgrow
64 KiB; exiv2 and Pillow refuse such a packet in a JPEG).
"""

from __future__ import annotations

from restore.imageio.exif import (
    EXIF_IFD,
    GPS_IFD,
    IMAGE_DESCRIPTION,
    INTEROP_IFD,
    MAKER_NOTE,
    ORIENTATION,
    PIXEL_X_DIMENSION,
    PIXEL_Y_DIMENSION,
    SOFTWARE,
    output_exif,
)
from restore.imageio.jpeg import JPEG_QUALITY
from restore.imageio.picture import (
    SIXTEEN_BIT_FORMATS,
    ImageMetadata,
    Marking,
    Picture,
    format_for,
    supports_16bit,
)
from restore.imageio.read import DEFAULT_MAX_PIXELS, read_image
from restore.imageio.webp import WEBP_QUALITY
from restore.imageio.write import write_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "EXIF_IFD",
    "GPS_IFD",
    "IMAGE_DESCRIPTION",
    "INTEROP_IFD",
    "JPEG_QUALITY",
    "MAKER_NOTE",
    "ORIENTATION",
    "PIXEL_X_DIMENSION",
    "PIXEL_Y_DIMENSION",
    "SIXTEEN_BIT_FORMATS",
    "SOFTWARE",
    "WEBP_QUALITY",
    "ImageMetadata",
    "Marking",
    "Picture",
    "format_for",
    "output_exif",
    "read_image",
    "supports_16bit",
    "write_image",
]

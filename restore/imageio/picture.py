"""The decoded image and what travels with it: pixels, carried metadata, the output's marking.

Pixels are numpy arrays in RGB order (see :mod:`restore.imageio`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from restore.imagefiles import FORMATS

SIXTEEN_BIT_FORMATS = frozenset({"PNG", "TIFF"})


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
    # IPTC-IIM records as stored (captions, keywords, credits of archive software that
    # predates XMP); written to JPEG and TIFF outputs, which have a place for them
    iptc: bytes | None = None
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


@dataclass(frozen=True)
class Marking:
    """How an output is marked as machine-made in its metadata."""

    software: str  # EXIF Software / PNG "Software"
    note: str  # appended to the description (EXIF ImageDescription / PNG "Description")

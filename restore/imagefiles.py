"""Which files are images: the suffixes restore reads and writes, and finding them in trees."""

from __future__ import annotations

from pathlib import Path

#: Pillow format name per (lower-case) suffix; outputs keep their input's suffix.
FORMATS: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
IMAGE_SUFFIXES = frozenset(FORMATS)


def list_images(root: Path) -> list[Path]:
    """All image files below ``root`` (recursive, by suffix), sorted."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())

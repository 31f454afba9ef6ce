"""Colorize one photo from Python with the public API (the pixels `restore photos` writes).

    python examples/colorize_one.py examples/photos/camera.png camera_color.png

Gray, RGB or RGBA, 8 or 16 bits, any size: the output has the input's size and bit depth
(write 16-bit results as .png or .tif), RGB, or RGBA with the alpha kept. Unlike
`restore photos`, no EXIF orientation or other metadata is handled here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2

from restore import Colorizer

TO_RGB = {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGBA}  # OpenCV stores BGR(A)
TO_BGR = {3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}


def main(src: Path, dst: Path) -> None:
    pixels = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)  # (H, W) or (H, W, 3|4), uint8/16
    if pixels is None:
        raise SystemExit(f"cannot read {src}")
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, TO_RGB[pixels.shape[2]])
    colorizer = Colorizer.load()  # the shipped weights, on a GPU if there is one
    rgb = colorizer.colorize(pixels)  # (H, W, 3) or (H, W, 4), pixels' dtype
    if not cv2.imwrite(str(dst), cv2.cvtColor(rgb, TO_BGR[rgb.shape[2]])):
        raise SystemExit(f"cannot write {dst}")
    print(f"{src} -> {dst} ({rgb.shape[1]}x{rgb.shape[0]}, {rgb.dtype})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))

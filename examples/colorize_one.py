"""Colorize one photo from Python, the way `restore photos` does it.

    python examples/colorize_one.py examples/photos/camera.png camera_color.png

Reads the image, takes its full-resolution lightness, runs the generator at the render
size, upsamples the predicted colour and merges it with the original lightness.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from restore import color
from restore.engine import Colorizer, EngineConfig


def main(src: Path, dst: Path) -> None:
    gray = cv2.imread(str(src), cv2.IMREAD_GRAYSCALE)  # (H, W) uint8
    if gray is None:
        raise SystemExit(f"cannot read {src}")
    colorizer = Colorizer.from_weights(None, EngineConfig(device="auto", render_size=256))
    lightness = color.gray_to_l(gray)  # (H, W) float32 L in [0, 100]
    rgb = colorizer.colorize([lightness])[0]  # (H, W, 3) float32 in [0, 1]
    out = np.round(rgb * 255).astype(np.uint8)
    cv2.imwrite(str(dst), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    print(f"{src} -> {dst} ({gray.shape[1]}x{gray.shape[0]})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))

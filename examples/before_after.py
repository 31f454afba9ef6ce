"""Build the README's before/after picture from the bundled sample photos.

    .venv/bin/python examples/before_after.py examples/before_after.jpg [--weights FILE]

Each row: the gray input, then `restore`'s colorization (the Python API, shipped weights
unless --weights), every photo scaled to one row height.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from restore import Colorizer

PHOTOS = ["camera.png", "nasa/rocket_gray.jpg", "coffee_gray.jpg", "chelsea_gray.jpg"]
ROW_HEIGHT = 256


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--weights", type=Path)
    args = ap.parse_args()
    colorizer = Colorizer.load(args.weights)
    folder = Path(__file__).resolve().parent / "photos"
    rows = []
    for name in PHOTOS:
        gray = cv2.imread(str(folder / name), cv2.IMREAD_GRAYSCALE)  # (H, W) uint8
        rgb = colorizer.colorize(gray)  # (H, W, 3) uint8
        pair = np.hstack([cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB), rgb])
        scale = ROW_HEIGHT / pair.shape[0]
        rows.append(cv2.resize(pair, (round(pair.shape[1] * scale), ROW_HEIGHT), cv2.INTER_AREA))
    # two pairs per line, lines padded to the widest
    lines = [np.hstack(rows[i : i + 2]) for i in range(0, len(rows), 2)]
    width = max(x.shape[1] for x in lines)
    lines = [
        np.pad(x, ((0, 0), (0, width - x.shape[1]), (0, 0)), constant_values=255) for x in lines
    ]
    grid = np.vstack(lines)
    cv2.imwrite(
        str(args.out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88]
    )
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]})")


if __name__ == "__main__":
    main()

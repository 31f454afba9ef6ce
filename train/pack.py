"""Pack a random share of a photo folder into a small folder of reduced JPEGs, for a training
run on a machine the data cannot follow whole (a lent GPU takes at most 64 MiB with the
code): ``python -m restore.train.pack DATA OUT [--short-side 192] [--budget-mb 52]``.

Photos are taken in a fixed random order, scaled so their short side is ``--short-side``
(never enlarged) and written as JPEG until the budget is spent. The training crops are then
cut from these, so ``--crop`` must not exceed ``--short-side``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from restore.imagefiles import list_images


def pack(src: Path, out: Path, short_side: int, quality: int, budget: int, seed: int) -> int:
    """Write reduced JPEGs of ``src``'s photos to ``out`` until ``budget`` bytes; the count."""
    out.mkdir(parents=True, exist_ok=True)
    files = list_images(src)
    used = written = 0
    for i in np.random.default_rng(seed).permutation(len(files)):
        path = files[int(i)]
        img = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            continue
        h, w = img.shape[:2]
        scale = short_side / min(h, w)
        if scale < 1.0:
            size = (max(short_side, round(w * scale)), max(short_side, round(h * scale)))
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            continue
        if used + buf.size > budget:
            break
        (out / f"{written:05d}.jpg").write_bytes(buf.tobytes())
        used += buf.size
        written += 1
    return written


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m restore.train.pack", description=__doc__)
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--short-side", type=int, default=192)
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--budget-mb", type=float, default=52.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    n = pack(a.data, a.out, a.short_side, a.quality, int(a.budget_mb * 2**20), a.seed)
    print(f"{n} photos packed into {a.out}")


if __name__ == "__main__":
    main()

"""Photo repair against synthetic damage: ``python -m benchmarks.repair VAL_DIR [--limit N]``.

Each photo's lightness is damaged by ``train/degrade.py`` (the old-print model, a fixed seed
per photo) and repaired by ``restore.repair``; printed: lightness PSNR against the clean
photo after a per-image gain and offset fit (so a global tone change is not counted), for
the damaged input and the repair, the same for the clean photo through the repair, the
detector's precision and recall against the damage's own mask, and ms per photo.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from restore.train.degrade import DEFAULT_DAMAGE, damage

from restore import color
from restore.imagefiles import list_images
from restore.repair import PhotoRepairer, RepairConfig


def fitted_psnr(x: np.ndarray, ref: np.ndarray) -> float:
    """PSNR (peak 100) of ``x`` against ``ref`` after the least-squares gain and offset,
    capped at 60 dB (an untouched photo would otherwise weigh 140 dB in a mean)."""
    a = np.stack([x.ravel(), np.ones(x.size, np.float32)], axis=1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(a, ref.ravel().astype(np.float64), rcond=None)
    err = float(np.mean((a @ coef - ref.ravel()) ** 2))
    return min(60.0, 10 * np.log10(100.0**2 / max(err, 1e-10)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.repair", description=__doc__)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--weights", type=Path, help="detector weights (default: shipped)")
    ap.add_argument("--threshold", type=float, default=RepairConfig.threshold)
    ap.add_argument("--detect-size", type=int, default=RepairConfig.detect_size)
    ap.add_argument("--grain", type=float, default=RepairConfig.denoise, help="--repair-grain")
    ap.add_argument("--grain-weights", type=Path, help="grain estimator (default: shipped)")
    ap.add_argument(
        "--cleanup",
        type=Path,
        help="a cleanup network (train/cleanup.py) instead of non-local means",
    )
    ap.add_argument(
        "--upscale",
        type=float,
        default=1.0,
        help="enlarge each photo (bicubic) before damaging it, so that damage and grain meet "
        "the smoother pixels of a high-resolution scan",
    )
    ap.add_argument(
        "--scan", action="store_true", help="also time the repair of a synthetic 12 MP scan"
    )
    a = ap.parse_args(argv)
    repairer = PhotoRepairer(
        RepairConfig(
            weights=a.weights,
            grain_weights=a.grain_weights,
            cleanup_weights=a.cleanup,
            threshold=a.threshold,
            detect_size=a.detect_size,
            denoise=a.grain,
        )
    )
    rows = []
    tp = found_px = truth_px = 0.0
    for i, path in enumerate(list_images(a.folder)[: a.limit]):
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
        clean = color.rgb_to_l(rgb)
        if a.upscale != 1.0:
            clean = cv2.resize(
                clean, None, fx=a.upscale, fy=a.upscale, interpolation=cv2.INTER_CUBIC
            )
            clean = np.clip(clean, 0.0, 100.0)
        damaged, truth = damage(clean, np.random.default_rng([99, i]), DEFAULT_DAMAGE)
        t0 = time.perf_counter()
        repaired, _ = repairer.repair(damaged)
        ms = 1000 * (time.perf_counter() - t0)
        found = repairer.defect_mask(damaged)
        untouched, _ = repairer.repair(clean)
        tp += float((found & truth).sum())
        found_px += float(found.sum())
        truth_px += float(truth.sum())
        rows.append(
            (
                fitted_psnr(damaged, clean),
                fitted_psnr(repaired, clean),
                fitted_psnr(untouched, clean),
                bool(truth.any()),
                ms,
            )
        )
    spotted = [r for r in rows if r[3]]

    def mean(values: list[float]) -> float:
        return statistics.mean(values) if values else float("nan")

    print(
        f"{len(rows)} photos of {a.folder}, threshold {a.threshold}, detect size "
        f"{a.detect_size}, grain {a.grain}, upscale {a.upscale}"
    )
    print(
        "| damaged dB | repaired dB | gain dB | gain dB, photos with specks or scratches | "
        "clean through repair dB (min) | precision | recall | ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    d, r = mean([x[0] for x in rows]), mean([x[1] for x in rows])
    sd, sr = mean([x[0] for x in spotted]), mean([x[1] for x in spotted])
    clean_db = [x[2] for x in rows]
    print(
        f"| {d:.2f} | {r:.2f} | {r - d:+.2f} | {sr - sd:+.2f} ({len(spotted)} photos) | "
        f"{mean(clean_db):.2f} ({min(clean_db):.2f}) | {tp / max(found_px, 1):.3f} | "
        f"{tp / max(truth_px, 1):.3f} | {statistics.median(x[4] for x in rows):.0f} |"
    )
    if a.scan:
        from benchmarks.inputs import _texture

        scan = _texture(4000, 3000, 5).astype(np.float32) / 2.55
        damaged, _ = damage(scan, np.random.default_rng(5), DEFAULT_DAMAGE)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            _, stats = repairer.repair(damaged)
            times.append(time.perf_counter() - t0)
        print(
            f"12 MP scan (4000x3000, synthetic damage): repair {statistics.median(times):.2f} s "
            f"(median of 3), {100 * stats.filled:.2f} % filled"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

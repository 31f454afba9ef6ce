"""Training the grain estimator (``models.grain.GrainNet``) on photos with synthetic grain.

    python -m restore.train.grain ../shared/data/train --val ../shared/data/val --out RUN

Every crop's lightness is aged by :func:`restore.train.degrade.damage` without its grain and
JPEG (tone, blur, vignetting, specks, scratches: not grain), then gets grain in most crops
(white or clumped, of a strength drawn up to ``GRAIN_MAX``) and JPEG compression in some.
The target is the root mean square of the grain added, so the photo's own texture, edges
and the compression's blocks must read as zero. Resumes from ``RUN/checkpoint.pt``.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from restore.models import GrainNet, GrainNetConfig

from restore import color
from restore.weights import save_grain_estimator

from .defects import LightnessCrops
from .degrade import DEFAULT_DAMAGE, add_grain, damage, jpeg
from .small_loop import SmallRun, fit

log = logging.getLogger(__name__)

#: The old-print damage that is not grain (grain and JPEG are drawn here).
NOT_GRAIN = replace(DEFAULT_DAMAGE, p_grain=0.0, p_jpeg=0.0)
P_GRAIN, GRAIN_MAX = 0.7, 8.0  # share of grainy crops; strongest grain drawn (L units)
P_JPEG, JPEG_QUALITY = 0.3, (50, 95)
CLUMP = (0.5, 1.5)  # blur radius of clumped grain (pixels)


class GrainCrops(LightnessCrops):
    """Random (grainy L, grain) crops. Batch for step s (a pure function of seed and s): L_n
    (B, 1, c, c) float32 in [-1, 1], grain (B,) float32 in L units."""

    def grain_sample(self, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """One (grainy L float32 in [0, 100], grain in L units) crop."""
        aged, _ = damage(self.clean_crop(rng), rng, self.config)
        grain = 0.0
        if rng.random() < P_GRAIN:
            aged, grain = add_grain(aged, rng, float(rng.uniform(0.5, GRAIN_MAX)), CLUMP)
        aged = np.clip(aged, 0.0, 100.0)
        if rng.random() < P_JPEG:
            aged = jpeg(aged, int(rng.integers(*JPEG_QUALITY, endpoint=True)))
        return aged, grain

    def grain_batch(self, step: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step])
        pairs = [self.grain_sample(rng) for _ in range(size)]
        lum = np.stack([p[0] for p in pairs])[:, None]
        grain = np.array([p[1] for p in pairs], np.float32)
        return color.normalize_l(torch.from_numpy(lum)), torch.from_numpy(grain)


def evaluate(model: GrainNet, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """Mean absolute error (L units) over fixed validation batches, and the mean grain
    read on the crops that have none (texture taken for grain)."""
    errors, clean = [], []
    for lum, grain in batches:
        pred = model(lum)
        errors.append((pred - grain).abs())
        clean.append(pred[grain == 0])
    return {
        "mae": round(float(torch.cat(errors).mean()), 4),
        "clean_read": round(float(torch.cat(clean).mean()), 4),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m restore.train.grain", description=__doc__)
    ap.add_argument("data", type=Path)
    ap.add_argument("--val", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--val-every", type=int, default=250)
    ap.add_argument("--checkpoint-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if a.threads:
        torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)

    config = GrainNetConfig()
    model = GrainNet(config)
    train = GrainCrops(a.data, config.patch, a.seed, NOT_GRAIN)
    val = GrainCrops(a.val, config.patch, 1234, NOT_GRAIN)
    val_batches = [val.grain_batch(i, 64) for i in range(8)]

    def export(kind: str, step: int, metrics: dict[str, float]) -> None:
        training = {"steps": step, "data": str(a.data), "grain": "train/grain.py"}
        path = a.out / f"grain_{kind}.safetensors"
        save_grain_estimator(model, path, training=training, metrics=metrics)

    fit(
        model,
        SmallRun(a.out, a.steps, a.lr, a.batch_size, a.val_every, a.checkpoint_every),
        train.grain_batch,
        lambda pred, grain: (pred - grain).abs().mean(),
        lambda: evaluate(model, val_batches),
        export,
        score="mae",
        higher_is_better=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

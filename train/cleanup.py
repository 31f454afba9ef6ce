"""Training the cleanup network (``models.cleanup.CleanupNet``) on photos with synthetic damage.

    python -m restore.train.cleanup ../shared/data/train --val ../shared/data/val --out RUN

Every crop's lightness is aged by :func:`restore.train.degrade.age` without specks,
scratches and cracks (the detector finds those and inpainting fills them): faded tone,
vignetting, blur, a small scan enlarged, grain, salt and pepper, JPEG, each with its own
probability, so some crops stay sharp and clean. The target is the same crop with its tone
and vignetting only: the network restores detail and leaves the tone alone. Resumes from
``RUN/checkpoint.pt``; ``--init`` starts from a committed weights file.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from restore.models import CleanupNet

from restore import color
from restore.weights import load_cleanup, save_cleanup

from .defects import LightnessCrops
from .degrade import DEFAULT_DAMAGE, age
from .small_loop import SmallRun, fit

log = logging.getLogger(__name__)

#: The old-print damage without the defects the detector fills, detail damage more often.
CLEANUP_DAMAGE = replace(
    DEFAULT_DAMAGE,
    p_specks=0.0,
    p_scratches=0.0,
    p_cracks=0.0,
    p_blur=0.45,
    p_grain=0.6,
    grain_sigma=(0.5, 8.0),
    p_jpeg=0.35,
    p_rescale=0.2,
    p_impulse=0.1,
)


class CleanupCrops(LightnessCrops):
    """Random (damaged L, faded L) crops. Batch for step s (a pure function of seed and s):
    both (B, 1, c, c) float32 normalised to [-1, 1]."""

    def pair(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        clean = self.clean_crop(rng)
        if rng.random() < 0.5:
            clean = clean[:, ::-1]
        aged = age(np.ascontiguousarray(clean), rng, self.config)
        return aged.image, aged.faded

    def pair_batch(self, step: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step])
        pairs = [self.pair(rng) for _ in range(size)]
        x = np.stack([p[0] for p in pairs])[:, None]
        y = np.stack([p[1] for p in pairs])[:, None]
        return color.normalize_l(torch.from_numpy(x)), color.normalize_l(torch.from_numpy(y))


def psnr_l(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """(B,) PSNR (peak 100 L) of normalised L batches (B, 1, H, W)."""
    err = ((x - ref) * 50.0).square().flatten(1).mean(1).clamp_min(1e-6)
    return 10 * torch.log10(100.0**2 / err)


def evaluate(
    model: CleanupNet, batches: list[tuple[torch.Tensor, torch.Tensor]]
) -> dict[str, float]:
    """Mean PSNR gain over the damaged crops (dB), and the PSNR of crops whose detail was not
    damaged through the network (how nearly it leaves a clean print alone)."""
    gains, clean = [], []
    for x, y in batches:
        before, after = psnr_l(x, y), psnr_l(model(x), y)
        untouched = (x - y).abs().flatten(1).amax(1) < 1e-6
        gains.append((after - before)[~untouched])
        clean.append(after[untouched].clamp_max(60.0))
    return {
        "gain_db": round(float(torch.cat(gains).mean()), 4),
        "clean_db": round(float(torch.cat(clean).mean()), 3) if torch.cat(clean).numel() else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m restore.train.cleanup", description=__doc__)
    ap.add_argument("data", type=Path)
    ap.add_argument("--val", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--val-every", type=int, default=250)
    ap.add_argument("--checkpoint-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--init", type=Path, help="start from a cleanup weights file")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if a.threads:
        torch.set_num_threads(a.threads)
    model = load_cleanup(a.init)[0] if a.init else CleanupNet()
    train = CleanupCrops(a.data, a.crop, a.seed, CLEANUP_DAMAGE)
    val = CleanupCrops(a.val, a.crop, 1234, CLEANUP_DAMAGE)
    val_batches = [val.pair_batch(i, 32) for i in range(4)]
    training = {"data": str(a.data), "crop": a.crop, "damage": "train/cleanup.py CLEANUP_DAMAGE"}

    def export(kind: str, step: int, metrics: dict[str, float]) -> None:
        path = a.out / f"cleanup_{kind}.safetensors"
        save_cleanup(model, path, training={"steps": step, **training}, metrics=metrics)

    fit(
        model,
        SmallRun(a.out, a.steps, a.lr, a.batch_size, a.val_every, a.checkpoint_every),
        train.pair_batch,
        lambda pred, target: (pred - target).abs().mean(),
        lambda: evaluate(model, val_batches),
        export,
        score="gain_db",
        higher_is_better=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Training the defect detector (``models.defects.DefectNet``) on photos with synthetic damage.

    python -m restore.train.defects ../shared/data/train --val ../shared/data/val --out RUN

Every crop's lightness is damaged by :func:`restore.train.degrade.damage` (the colorizer's
old-print model, here with more specks and scratches); the target is the damage's own mask
of the pixels covered by specks and scratches, so grain, blur, fading and JPEG must not be
flagged. A share of crops is left without specks and scratches so clean photos pass. Resumes
from ``RUN/checkpoint.pt``; ``--init`` starts from a committed weights file.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from restore.models import DefectNet, DefectNetConfig

from restore import color
from restore.imagefiles import list_images
from restore.weights import load_detector, save_detector

from .degrade import DEFAULT_DAMAGE, DamageConfig, damage
from .small_loop import SmallRun, fit

log = logging.getLogger(__name__)

#: The old-print damage with specks, scratches and cracks more often, so most crops teach them.
DETECTOR_DAMAGE = replace(DEFAULT_DAMAGE, p_specks=0.6, p_scratches=0.5, p_cracks=0.4)


class LightnessCrops:
    """Random (damaged L, mask) crops from a photo folder; L kept as uint8 after first use.

    Batch for step s (a pure function of seed and s): L_n (B, 1, c, c) float32 in [-1, 1],
    mask (B, 1, c, c) float32 in {0, 1}.
    """

    def __init__(self, root: Path, crop: int, seed: int, config: DamageConfig) -> None:
        self.files = list_images(root)
        if not self.files:
            raise FileNotFoundError(f"no images under {root}")
        self.crop, self.seed, self.config = crop, seed, config
        self._cache: dict[int, np.ndarray | None] = {}

    def lightness(self, i: int) -> np.ndarray | None:
        """(H, W) uint8 L*2.55 of file ``i`` (None if unreadable or smaller than a crop)."""
        if i not in self._cache:
            img = cv2.imread(str(self.files[i]), cv2.IMREAD_COLOR)
            if img is None or min(img.shape[:2]) < self.crop:
                self._cache[i] = None
            else:
                rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
                self._cache[i] = np.round(color.rgb_to_l(rgb) * 2.55).astype(np.uint8)
        return self._cache[i]

    def clean_crop(self, rng: np.random.Generator) -> np.ndarray:
        """A random crop of a random photo's L (float32 in [0, 100])."""
        while True:
            lum = self.lightness(int(rng.integers(len(self.files))))
            if lum is not None:
                break
        h, w = lum.shape
        y, x = int(rng.integers(h - self.crop + 1)), int(rng.integers(w - self.crop + 1))
        return lum[y : y + self.crop, x : x + self.crop].astype(np.float32) / 2.55

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One (damaged L float32 in [0, 100], bool mask) crop."""
        clean = self.clean_crop(rng)
        if rng.random() < 0.5:
            clean = clean[:, ::-1]
        return damage(np.ascontiguousarray(clean), rng, self.config)

    def batch(self, step: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step])
        pairs = [self.sample(rng) for _ in range(size)]
        lum = np.stack([p[0] for p in pairs])[:, None]
        mask = np.stack([p[1] for p in pairs])[:, None].astype(np.float32)
        return color.normalize_l(torch.from_numpy(lum)), torch.from_numpy(mask)


def loss_fn(logits: torch.Tensor, mask: torch.Tensor, pos_weight: float) -> torch.Tensor:
    """Weighted BCE (defects are a few per cent of pixels) plus soft Dice over the batch."""
    bce = F.binary_cross_entropy_with_logits(
        logits, mask, pos_weight=torch.tensor(pos_weight, device=logits.device)
    )
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * mask).sum() + 1) / (p.sum() + mask.sum() + 1)
    return bce + dice


def evaluate(
    model: DefectNet, batches: list[tuple[torch.Tensor, torch.Tensor]]
) -> dict[str, float]:
    """Precision, recall and F1 of sigmoid > 0.5 over fixed validation batches, and the
    share of pixels flagged on crops without specks or scratches."""
    tp = fp = fn = 0.0
    clean_flagged, clean_pixels = 0.0, 0.0
    for lum, mask in batches:
        pred = (model(lum) > 0).float()
        tp += float((pred * mask).sum())
        fp += float((pred * (1 - mask)).sum())
        fn += float(((1 - pred) * mask).sum())
        clean = mask.flatten(1).sum(1) == 0
        clean_flagged += float(pred[clean].sum())
        clean_pixels += float(pred[clean].numel())
    precision = tp / max(tp + fp, 1.0)
    recall = tp / max(tp + fn, 1.0)
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / max(precision + recall, 1e-9), 4),
        "clean_flagged": round(clean_flagged / max(clean_pixels, 1.0), 6),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m restore.train.defects", description=__doc__)
    ap.add_argument("data", type=Path)
    ap.add_argument("--val", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--pos-weight", type=float, default=4.0)
    ap.add_argument("--val-every", type=int, default=250)
    ap.add_argument("--checkpoint-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--init", type=Path, help="start from a detector weights file")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if a.threads:
        torch.set_num_threads(a.threads)
    model = DefectNet(DefectNetConfig())
    if a.init:
        model, _ = load_detector(a.init)
    train = LightnessCrops(a.data, a.crop, a.seed, DETECTOR_DAMAGE)
    val = LightnessCrops(a.val, 256, 1234, DETECTOR_DAMAGE)
    val_batches = [val.batch(i, 16) for i in range(4)]
    training = {"data": str(a.data), "crop": a.crop, "damage": "train/degrade.py"}

    def export(kind: str, step: int, metrics: dict[str, float]) -> None:
        path = a.out / f"defects_{kind}.safetensors"
        save_detector(model, path, training={"steps": step, **training}, metrics=metrics)

    fit(
        model,
        SmallRun(a.out, a.steps, a.lr, a.batch_size, a.val_every, a.checkpoint_every),
        train.batch,
        lambda logits, mask: loss_fn(logits, mask, a.pos_weight),
        lambda: evaluate(model, val_batches),
        export,
        score="f1",
        higher_is_better=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

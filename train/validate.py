"""Validation pass: metrics via restore.evaluate, a sample grid PNG, and a metrics log."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import cv2
import numpy as np
from restore.models import UNetGenerator

from restore import color
from restore.engine import Colorizer, EngineConfig
from restore.evaluate import colorize_u8, evaluate, read_truth_images
from restore.imagefiles import list_images

from .config import TrainConfig

GRID_IMAGES = 6
GRID_HEIGHT = 160


class Validator:
    """Colorizes the first ``val_images`` validation images (sorted, fixed) at render size 256."""

    def __init__(self, config: TrainConfig, out_dir: Path) -> None:
        assert config.val_dir is not None
        self.files = list_images(Path(config.val_dir))[: config.val_images]
        self.out = out_dir
        self.precision = config.precision

    def run(self, model: UNetGenerator, step: int) -> dict[str, float]:
        t0 = time.time()
        colorizer = Colorizer(
            copy.deepcopy(model).cpu().eval(),
            EngineConfig(device="cpu", precision=self.precision, render_size=256, batch_size=1),
        )
        scores, summary = evaluate(colorizer, read_truth_images(self.files))
        summary["step"] = step
        summary["seconds"] = time.time() - t0
        with (self.out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(summary) + "\n")
        self.grid(colorizer, self.out / f"val_{step:07d}.png")
        return summary

    def grid(self, colorizer: Colorizer, path: Path) -> None:
        """Rows of gray input / output / truth for the first few validation images."""
        rows = []
        for _, truth in read_truth_images(self.files[:GRID_IMAGES]):
            pred = colorize_u8(colorizer, truth)
            gray = np.repeat(color.l_to_gray(color.rgb_to_l(truth))[..., None], 3, axis=2)
            row = np.concatenate([gray, pred, truth], axis=1)
            w = round(row.shape[1] * GRID_HEIGHT / row.shape[0])
            rows.append(cv2.resize(row, (w, GRID_HEIGHT), interpolation=cv2.INTER_AREA))
        if not rows:
            return
        width = max(r.shape[1] for r in rows)
        rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
        img = np.round(np.concatenate(rows, axis=0) * 255).astype(np.uint8)
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))

"""The grain estimator's training data and script (``python -m restore.train.grain``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from restore.train.grain import NOT_GRAIN, GrainCrops
from restore.train.grain import main as train_grain

from restore.weights import load_grain_estimator

from .conftest import photo_folder


def test_grain_crops_carry_the_grain_they_were_given(tmp_path: Path) -> None:
    crops = GrainCrops(photo_folder(tmp_path / "data"), 64, 3, NOT_GRAIN)
    lum, grain = crops.grain_batch(0, 48)
    assert lum.shape == (48, 1, 64, 64) and lum.dtype == torch.float32
    assert float(lum.min()) >= -1.0 and float(lum.max()) <= 1.0
    assert grain.shape == (48,) and bool((grain >= 0).all()) and float(grain.max()) <= 8.0
    assert 0 < int((grain == 0).sum()) < 48  # some crops clean, most grainy
    again, same = crops.grain_batch(0, 48)
    assert torch.equal(lum, again) and torch.equal(grain, same)  # a function of the step
    # a grainy crop is rougher than the clean ones: the target follows the picture
    rough = lum[:, 0].diff(dim=-1).abs().mean(dim=(1, 2))
    assert float(rough[grain > 3].mean()) > float(rough[grain == 0].mean())


def test_a_short_run_exports_an_estimator_that_loads(tmp_path: Path) -> None:
    data = photo_folder(tmp_path / "data")
    out = tmp_path / "run"
    args = [str(data), "--val", str(data), "--out", str(out), "--steps", "4", "--batch-size", "4"]
    assert train_grain([*args, "--val-every", "2"]) == 0
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4]
    model, info = load_grain_estimator(out / "grain_best.safetensors")
    assert info["training"]["steps"] in (2, 4) and "mae" in info["metrics"]
    reading = model(torch.zeros(2, 1, 64, 64))
    assert reading.shape == (2,) and bool(np.isfinite(reading.detach().numpy()).all())

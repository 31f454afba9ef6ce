"""The small repair networks' shared training loop (``train/small_loop.py``), through the
defect detector's script: a run exports, checkpoints and resumes where it stopped."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import torch
from restore.train.defects import main as train_defects

from restore.weights import load_detector

from .conftest import synthetic_photo


def test_a_detector_run_resumes_where_it_stopped(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        rgb = synthetic_photo(256, 256, seed=i)
        cv2.imwrite(str(data / f"p{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out = tmp_path / "run"
    args = [str(data), "--val", str(data), "--out", str(out), "--batch-size", "2"]
    args += ["--crop", "64", "--val-every", "2", "--checkpoint-every", "1"]
    assert train_defects([*args, "--steps", "4"]) == 0
    first = torch.load(out / "checkpoint.pt", weights_only=True)
    assert first["step"] == 4
    # the same run asked for more: nothing is redone, the schedule is the saved one
    assert train_defects([*args, "--steps", "4"]) == 0
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4]
    model, info = load_detector(out / "defects_latest.safetensors")
    assert info["training"]["steps"] == 4 and "f1" in info["metrics"]
    assert model(torch.zeros(1, 1, 64, 64)).shape == (1, 1, 64, 64)

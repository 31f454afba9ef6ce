"""Shared fixtures: synthetic media and a narrow random generator (no ../shared data)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from restore.models import GeneratorConfig, UNetGenerator

from restore.weights import save_generator

torch.set_num_threads(int(os.environ.get("RESTORE_TEST_THREADS", "2")))


def synthetic_photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """(h, w, 3) uint8 RGB with smooth colour gradients and a few shapes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack(
        [
            128 + 100 * np.sin(xx / (w / 3.0) + rng.random() * 6),
            128 + 100 * np.cos(yy / (h / 2.0) + rng.random() * 6),
            128 + 80 * np.sin((xx + yy) / (w / 4.0)),
        ],
        axis=-1,
    )
    img[h // 4 : h // 2, w // 4 : w // 2] = rng.integers(0, 255, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def photo_folder(folder: Path, n: int = 6, h: int = 96, w: int = 128) -> Path:
    """``folder`` made and filled with ``n`` synthetic JPEG photos (a trainer's data)."""
    folder.mkdir()
    for i in range(n):
        rgb = synthetic_photo(h, w, seed=i)
        cv2.imwrite(str(folder / f"p{i}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A narrow, randomly initialised generator saved in the shipped format."""
    torch.manual_seed(0)
    model = UNetGenerator(GeneratorConfig(decoder_channels=(16, 16, 8, 8, 8)))
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_generator(model, path, training={"steps": 0, "data": "random init (tests)"})
    return path

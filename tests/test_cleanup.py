"""The cleanup network (grain, blur, JPEG): its training data and script, and how the repair
stage runs it on pictures of any size."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
from restore.models import CleanupNet, CleanupNetConfig
from restore.train.cleanup import CLEANUP_DAMAGE, CleanupCrops
from restore.train.cleanup import main as train_cleanup
from restore.train.degrade import DEFAULT_DAMAGE, age, damage

from restore import color
from restore.repair import PhotoRepairer, RepairConfig
from restore.weights import load_cleanup, save_cleanup

from .conftest import photo_folder, synthetic_photo


def test_age_keeps_the_faded_print_and_draws_as_damage_does() -> None:
    clean = color.rgb_to_l(synthetic_photo(64, 80, seed=2).astype(np.float32) / 255)
    for seed in range(12):
        aged = age(clean, np.random.default_rng(seed))
        image, mask = damage(clean, np.random.default_rng(seed))
        assert np.array_equal(aged.image, image) and np.array_equal(aged.mask, mask)
    # with only the tone damaged, the faded print is the damaged one
    tone_only = replace(
        DEFAULT_DAMAGE, p_tone=1.0, p_blur=0, p_grain=0, p_jpeg=0, p_specks=0, p_scratches=0
    )
    aged = age(clean, np.random.default_rng(0), tone_only)
    assert np.array_equal(aged.image, aged.faded) and not np.array_equal(aged.faded, clean)
    # salt and pepper and a small scan enlarged change detail, not the faded print
    detail = replace(tone_only, p_rescale=1.0, p_impulse=1.0, impulse=(0.05, 0.05))
    aged = age(clean, np.random.default_rng(0), detail)
    assert float((np.abs(aged.image - aged.faded) > 30).mean()) > 0.02


def test_cleanup_crops_pair_damage_with_its_faded_target(tmp_path: Path) -> None:
    crops = CleanupCrops(photo_folder(tmp_path / "data"), 64, 3, CLEANUP_DAMAGE)
    x, y = crops.pair_batch(0, 32)
    assert x.shape == y.shape == (32, 1, 64, 64) and x.dtype == torch.float32
    same = (x - y).abs().flatten(1).amax(1) < 1e-6
    assert 0 < int(same.sum()) < 32  # some crops keep their detail, most lose some
    again, _ = crops.pair_batch(0, 32)
    assert torch.equal(x, again)  # a function of the step


def test_a_short_run_exports_a_network_that_loads(tmp_path: Path) -> None:
    data = photo_folder(tmp_path / "data")
    out = tmp_path / "run"
    args = [str(data), "--val", str(data), "--out", str(out), "--steps", "4", "--batch-size", "4"]
    assert train_cleanup([*args, "--crop", "64", "--val-every", "2"]) == 0
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4]
    model, info = load_cleanup(out / "cleanup_best.safetensors")
    assert info["training"]["steps"] in (2, 4) and "gain_db" in info["metrics"]
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 32, 32)


def test_an_untrained_network_changes_nothing() -> None:
    x = torch.rand(2, 1, 32, 64) * 2 - 1
    assert torch.equal(CleanupNet()(x), x)


def randomised(tmp_path: Path) -> Path:
    """A cleanup network with random weights (every layer active) saved to a file."""
    torch.manual_seed(0)
    net = CleanupNet(CleanupNetConfig(channels=(4, 8, 8)))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return save_cleanup(net.eval(), tmp_path / "cleanup.safetensors")


def test_large_pictures_run_in_tiles_without_seams(tmp_path: Path) -> None:
    weights = randomised(tmp_path)
    repairer = PhotoRepairer(RepairConfig(cleanup_weights=weights, runtime="torch"))
    rng = np.random.default_rng(1)
    picture = cv2.GaussianBlur(rng.uniform(0, 100, (640, 1100)).astype(np.float32), (0, 0), 2)
    tiled = repairer.clean(picture)  # larger than a tile
    assert tiled.shape == picture.shape and tiled.dtype == np.float32
    with torch.no_grad():
        whole = repairer.cleaner(color.normalize_l(torch.from_numpy(picture)[None, None]))
    whole = color.denormalize_l(whole)[0, 0].numpy()
    inner = (slice(40, -40), slice(40, -40))  # the borders differ by their padding only
    assert float(np.abs(tiled - whole)[inner].max()) < 1e-3
    assert float(np.abs(tiled - picture).mean()) > 1.0  # the network did change it
    half = repairer.clean(picture, strength=0.5)
    np.testing.assert_allclose(half, picture + 0.5 * (tiled - picture), atol=1e-3)

"""The training recipe on a few generated images: the loss falls, resume is exact."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import cv2
import pytest
import torch
from restore.models import GeneratorConfig
from restore.train.config import TrainConfig
from restore.train.loop import Trainer, quality_score

from restore.weights import load_generator

from .conftest import synthetic_photo

SLIM = GeneratorConfig(decoder_channels=(16, 16, 8, 8, 8))


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for i in range(6):
        folder = root / "sub" if i % 2 else root
        cv2.imwrite(str(folder / f"p{i}.jpg"), synthetic_photo(72, 96, seed=i)[..., ::-1])
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "notes.txt").write_text("ignored")
    return root


def _config(photo_dir: Path, out: Path, **kw: object) -> TrainConfig:
    base = TrainConfig(
        data_dir=photo_dir,
        out_dir=out,
        generator=SLIM,
        crop=32,
        batch_size=4,
        gan_batch_size=4,
        l1_steps=3,
        gan_steps=3,
        precision="fp32",
        log_every=1,
        checkpoint_every=2,
        val_every=10_000,
        cache_mb=16,
    )
    return replace(base, **kw)


def test_l1_loss_falls(photo_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = _config(photo_dir, tmp_path / "run", l1_steps=40, gan_steps=0, lr_l1=2e-3)
    trainer = Trainer(cfg)
    trainer.run()
    rows = list(csv.DictReader((tmp_path / "run" / "losses.csv").open()))
    losses = [float(r["l1"]) for r in rows]
    assert len(losses) == 40
    assert sum(losses[-8:]) / 8 < 0.7 * sum(losses[:8]) / 8


def test_gan_phase_logs_adversarial_losses(photo_dir: Path, tmp_path: Path) -> None:
    trainer = Trainer(_config(photo_dir, tmp_path / "run"))
    trainer.run()
    rows = list(csv.DictReader((tmp_path / "run" / "losses.csv").open()))
    assert [r["phase"] for r in rows] == ["l1"] * 3 + ["gan"] * 3
    assert all(float(r["d"]) > 0 and float(r["g_adv"]) > 0 for r in rows[3:])


def _state_equal(a: dict, b: dict) -> None:
    for key in ("G", "G_ema", "D"):
        for k in a[key]:
            torch.testing.assert_close(a[key][k], b[key][k], rtol=0, atol=0, msg=f"{key}.{k}")
    for key in ("opt_l1", "opt_g", "opt_d"):
        for pid, st in a[key]["state"].items():
            for k, v in st.items():
                torch.testing.assert_close(v, b[key]["state"][pid][k], rtol=0, atol=0)
    assert a["step"] == b["step"]


def test_kill_and_resume_equals_uninterrupted_run(photo_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    straight = Trainer(_config(photo_dir, tmp_path / "a"))
    straight.run()

    torch.manual_seed(0)
    first = Trainer(_config(photo_dir, tmp_path / "b"))
    first.run(stop_after=4)  # crosses into the GAN phase, checkpoints, then "dies"
    assert (tmp_path / "b" / "checkpoint.pt").exists()
    del first
    torch.manual_seed(123)  # a new process has other RNG state: resume must restore it
    resumed = Trainer(_config(photo_dir, tmp_path / "b"))
    assert resumed.load_checkpoint()
    assert resumed.step == 4
    resumed.run()
    _state_equal(straight.state(), resumed.state())


def test_checkpoint_write_is_atomic(
    photo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = Trainer(_config(photo_dir, tmp_path / "run"))
    trainer.run(stop_after=2)
    good = (tmp_path / "run" / "checkpoint.pt").read_bytes()

    def boom(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint()
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == good


def test_validation_writes_metrics_grid_and_weights(photo_dir: Path, tmp_path: Path) -> None:
    cfg = _config(
        photo_dir,
        tmp_path / "run",
        val_dir=photo_dir,
        val_every=3,
        val_images=3,
        l1_steps=3,
        gan_steps=0,
    )
    trainer = Trainer(cfg)
    trainer.run()
    out = tmp_path / "run"
    assert (out / "metrics.jsonl").read_text().count("\n") == 1
    assert (out / "val_0000003.png").stat().st_size > 0
    model, info = load_generator(out / "g_latest.safetensors")
    assert info.metadata["training"]["steps"] == 3
    assert "psnr" in info.metadata["metrics"]
    # The file is the model that was scored: G_ema with recomputed BatchNorm statistics.
    saved = model.stem[1].running_mean
    scored = trainer.export_model().stem[1].running_mean
    torch.testing.assert_close(saved, scored.half().float(), atol=1e-3, rtol=1e-3)
    assert not torch.allclose(saved, trainer.G_ema.stem[1].running_mean.half().float())
    # continuing from exported weights starts at their step count
    cont = Trainer(
        replace(
            cfg,
            out_dir=tmp_path / "cont",
            init_g=out / "g_latest.safetensors",
            init_d=out / "d_latest.safetensors",
            l1_steps=3,
            gan_steps=2,
            val_dir=None,
        )
    )
    assert cont.step == 3
    cont.run()
    assert cont.step == 5


def test_recalibrated_bn_statistics_are_those_of_the_model_on_training_batches(
    photo_dir: Path,
) -> None:
    from restore.models import UNetGenerator
    from restore.train.data import CropSampler
    from restore.train.loop import BN_STEP_OFFSET, recalibrate_bn

    torch.manual_seed(0)
    model = UNetGenerator(SLIM).to(memory_format=torch.channels_last).eval()
    bn = model.stem[1]
    bn.running_mean.fill_(5.0)  # stale statistics, as copied from another set of weights
    sampler = CropSampler(photo_dir, 32, seed=0)
    recalibrate_bn(model, sampler, batches=3, batch_size=4, device=torch.device("cpu"))
    assert not model.training and bn.momentum == 0.1
    with torch.no_grad():
        conv_out = [model.stem[0](sampler.batch(BN_STEP_OFFSET + i, 4)[0]) for i in range(3)]
    expected = torch.stack([c.mean(dim=(0, 2, 3)) for c in conv_out]).mean(0)
    torch.testing.assert_close(bn.running_mean, expected, atol=1e-4, rtol=1e-4)


def test_quality_score_penalises_psnr_below_gray() -> None:
    good = {"colourfulness_ratio": 0.7, "psnr": 23.0, "psnr_gray": 22.5}
    loud = {"colourfulness_ratio": 1.2, "psnr": 20.0, "psnr_gray": 22.5}
    assert quality_score(good) > quality_score(loud)


def test_rebalanced_training_runs_and_records_its_strength(photo_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = _config(
        photo_dir,
        tmp_path / "run",
        l1_steps=4,
        gan_steps=2,
        rebalance=1.0,
        val_dir=photo_dir,
        val_images=2,
        val_every=6,
        bn_batches=1,
    )
    trainer = Trainer(cfg)
    assert trainer.l1.strength == 1.0
    assert trainer.l1.weights.max() > trainer.l1.weights.min()
    trainer.run()
    _, info = load_generator(tmp_path / "run" / "g_latest.safetensors")
    assert info.metadata["training"]["rebalance"] == 1.0

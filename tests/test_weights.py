"""The safetensors weights format: round trip, and clear refusal of anything else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from restore.models import GeneratorConfig, PatchDiscriminator, UNetGenerator
from safetensors.torch import save_file

from restore.errors import WeightsError
from restore.weights import (
    load_discriminator,
    load_generator,
    read_info,
    save_discriminator,
    save_generator,
)

SLIM = GeneratorConfig(decoder_channels=(16, 16, 8, 8, 8))


def test_round_trip_rebuilds_the_model_from_metadata(tmp_path: Path) -> None:
    torch.manual_seed(0)
    g = UNetGenerator(SLIM).eval()
    path = save_generator(
        g, tmp_path / "g.safetensors", training={"steps": 123}, metrics={"psnr": 24.0}
    )
    loaded, info = load_generator(path)
    assert info.config == SLIM
    assert info.metadata["training"]["steps"] == 123
    assert info.identity["sha256"] and len(info.identity["sha256"]) == 64
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        # fp16 storage: outputs agree to fp16 precision, parameters come back as fp32
        torch.testing.assert_close(loaded(x), g(x), atol=5e-3, rtol=0)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())


def test_fp16_storage_is_small(tmp_path: Path) -> None:
    g = UNetGenerator(SLIM)
    path = save_generator(g, tmp_path / "g.safetensors")
    n = sum(p.numel() for p in g.state_dict().values())
    assert path.stat().st_size < n * 2 + 64_000


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        load_generator(tmp_path / "nope.safetensors")


def test_corrupt_file_is_refused(tmp_path: Path) -> None:
    good = save_generator(UNetGenerator(SLIM), tmp_path / "g.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError, match="not a readable"):
        load_generator(bad)
    pickle_like = tmp_path / "model.pth"
    pickle_like.write_bytes(b"\x80\x04\x95garbage")
    with pytest.raises(WeightsError):
        load_generator(pickle_like)


def test_foreign_safetensors_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(WeightsError, match="not a restore colorizer"):
        load_generator(foreign)


def _rewrite_meta(src: Path, dst: Path, **changes: str) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
    meta.update(changes)
    save_file(load_file(str(src)), str(dst), metadata=meta)


def test_future_version_and_other_normalisation_are_refused(tmp_path: Path) -> None:
    good = save_generator(UNetGenerator(SLIM), tmp_path / "g.safetensors")
    _rewrite_meta(good, tmp_path / "v9.safetensors", format_version="9")
    with pytest.raises(WeightsError, match="version"):
        read_info(tmp_path / "v9.safetensors")
    _rewrite_meta(good, tmp_path / "n.safetensors", normalisation=json.dumps({"L": "L/100"}))
    with pytest.raises(WeightsError, match="normalisation"):
        read_info(tmp_path / "n.safetensors")


def test_tensors_not_matching_metadata_are_refused(tmp_path: Path) -> None:
    good = save_generator(UNetGenerator(SLIM), tmp_path / "g.safetensors")
    other = GeneratorConfig(decoder_channels=(32, 16, 8, 8, 8)).to_dict()
    _rewrite_meta(
        good,
        tmp_path / "m.safetensors",
        architecture=json.dumps({"name": "unet-resnet18", **other}),
    )
    with pytest.raises(WeightsError, match="do not match"):
        load_generator(tmp_path / "m.safetensors")


def test_discriminator_round_trip(tmp_path: Path) -> None:
    d = PatchDiscriminator().eval()
    path = save_discriminator(d, tmp_path / "d.safetensors", steps=7)
    d2 = load_discriminator(path).eval()
    x, ab = torch.randn(1, 1, 64, 64), torch.randn(1, 2, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(d2(x, ab), d(x, ab), atol=2e-2, rtol=0)
    with pytest.raises(WeightsError):
        load_discriminator(save_generator(UNetGenerator(SLIM), tmp_path / "g.safetensors"))


def test_defect_detector_round_trip(tmp_path: Path) -> None:
    from restore.models import DefectNet, DefectNetConfig

    from restore.weights import load_detector, save_detector

    net = DefectNet(DefectNetConfig(channels=(4, 8))).eval()
    path = save_detector(net, tmp_path / "det.safetensors", metrics={"f1": 0.5})
    net2, info = load_detector(path)
    assert net2.config == net.config and info["metrics"] == {"f1": 0.5}
    x = torch.randn(1, 1, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(net2(x), net(x), atol=2e-2, rtol=0)
    with pytest.raises(WeightsError, match="defect-detector"):
        load_detector(save_discriminator(PatchDiscriminator(), tmp_path / "d.safetensors", steps=1))


def test_grain_estimator_round_trip(tmp_path: Path) -> None:
    from restore.models import GrainNet, GrainNetConfig

    from restore.weights import load_detector, load_grain_estimator, save_grain_estimator

    net = GrainNet(GrainNetConfig(channels=(4, 8), patch=32)).eval()
    path = save_grain_estimator(net, tmp_path / "g.safetensors", metrics={"mae": 0.4})
    net2, info = load_grain_estimator(path)
    assert net2.config == net.config and info["metrics"] == {"mae": 0.4}
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        out = net2(x)
        torch.testing.assert_close(out, net(x), atol=2e-2, rtol=0)
    assert out.shape == (3,) and bool((out >= 0).all())
    with pytest.raises(WeightsError, match="defect-detector"):
        load_detector(path)


def test_shipped_weights_load_and_describe_themselves() -> None:
    """The committed generator is found by default, rebuilds itself and records its training."""
    from restore.weights import default_weights

    path = default_weights()
    assert path.name == "restore_g.safetensors" and path.is_file()
    model, info = load_generator()
    assert info.metadata["training"]["steps"] > 0
    assert {"psnr", "psnr_gray", "colourfulness_ratio"} <= set(info.metadata["metrics"])
    with torch.no_grad():
        out = model(torch.zeros(1, 1, 64, 96))
    assert out.shape == (1, 2, 64, 96)
    d = load_discriminator(path.with_name("restore_d.safetensors"))
    assert d(torch.zeros(1, 1, 64, 64), torch.zeros(1, 2, 64, 64)).shape == (1, 1, 6, 6)


def test_chroma_gain_is_stored_applied_and_checked(tmp_path: Path) -> None:
    import numpy as np

    from restore.engine import Colorizer, EngineConfig

    torch.manual_seed(0)
    g = UNetGenerator(SLIM).eval()
    plain = save_generator(g, tmp_path / "plain.safetensors")
    gained = save_generator(g, tmp_path / "gained.safetensors", inference={"chroma_gain": 1.5})
    assert read_info(plain)[0].chroma_gain == 1.0
    assert read_info(gained)[0].chroma_gain == 1.5
    assert read_info(gained)[0].identity["chroma_gain"] == 1.5
    x = np.random.default_rng(0).uniform(0, 100, (64, 64)).astype(np.float32)
    base = Colorizer.from_weights(plain, EngineConfig(device="cpu")).predict([x])[0]
    out = Colorizer.from_weights(gained, EngineConfig(device="cpu", saturation=2.0))
    np.testing.assert_allclose(out.predict([x])[0], np.clip(3 * base, -110, 110), atol=1e-3)
    _rewrite_meta(gained, tmp_path / "bad.safetensors", inference=json.dumps({"chroma_gain": -1}))
    with pytest.raises(WeightsError, match="chroma_gain"):
        read_info(tmp_path / "bad.safetensors")


def test_calibrate_tool_writes_the_gain_and_keeps_training_metadata(tmp_path: Path) -> None:
    from restore.train.calibrate import main as calibrate

    src = save_generator(UNetGenerator(SLIM), tmp_path / "g.safetensors", training={"steps": 9})
    calibrate([str(src), "--gain", "1.3", "--out", str(tmp_path / "c.safetensors")])
    info = read_info(tmp_path / "c.safetensors")[0]
    assert info.chroma_gain == 1.3 and info.metadata["training"]["steps"] == 9

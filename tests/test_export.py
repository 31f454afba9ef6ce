"""ONNX export: the file runs in another runtime (OpenVINO reads ONNX) and gives what the
PyTorch generator gives, at shapes other than the example's, with its calibration built in."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from restore.models import GeneratorConfig, UNetGenerator

from restore import colorbins
from restore.cli import main
from restore.weights import load_generator, save_generator

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
ov = pytest.importorskip("openvino")


def _run_onnx(path: Path, x: torch.Tensor) -> np.ndarray:
    core = ov.Core()
    compiled = core.compile_model(core.read_model(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled(x.numpy())[0]


def _torch(weights: Path, x: torch.Tensor, temperature: float | None = None) -> np.ndarray:
    model, info = load_generator(weights)
    model.eval()
    model.temperature = info.temperature if temperature is None else temperature
    with torch.no_grad():
        return (model(x) * info.chroma_gain).numpy()


def _shapes() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.rand(s, generator=g) * 2 - 1 for s in [(1, 1, 64, 96), (3, 1, 128, 32)]]


def test_exported_regression_generator_matches_pytorch_with_its_gain(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = UNetGenerator(GeneratorConfig(decoder_channels=(16, 16, 8, 8, 8)))
    model.train()
    with torch.no_grad():  # BatchNorm statistics other than the identity, so folding shows
        model(torch.rand(4, 1, 64, 64) * 2 - 1)
    weights = save_generator(
        model.eval(), tmp_path / "g.safetensors", inference={"chroma_gain": 1.5}
    )
    out = tmp_path / "sub" / "g.onnx"
    result = CliRunner().invoke(main, ["export", "--onnx", str(out), "--weights", str(weights)])
    assert result.exit_code == 0, result.output
    onnx.checker.check_model(str(out))
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert float(meta["chroma_gain"]) == 1.5
    assert json.loads(meta["normalisation"])["L"] == "L/50-1"
    assert not list(out.parent.glob(".*.tmp"))
    for x in _shapes():
        ours, ref = _run_onnx(out, x), _torch(weights, x)
        assert ours.shape == (x.shape[0], 2, *x.shape[2:])
        assert np.abs(ref).max() > 0.01  # a gain of 1.5 on nothing would pass anything
        np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_exported_classes_generator_decodes_with_the_chosen_vividness(tmp_path: Path) -> None:
    from restore.export import export_onnx

    torch.manual_seed(2)
    g = UNetGenerator(GeneratorConfig.classes(len(colorbins.gamut_bins())))
    g.bin_ab.copy_(torch.from_numpy(colorbins.normalised_centres()))
    weights = save_generator(g.eval(), tmp_path / "c.safetensors")
    x = _shapes()[1]
    outs = {}
    for vivid in (0.62, 0.1):
        path = tmp_path / f"c{vivid}.onnx"
        meta = export_onnx(path, weights, vividness=vivid)
        assert float(meta["temperature"]) == pytest.approx(1 - vivid)
        outs[vivid] = _run_onnx(path, x)
        np.testing.assert_allclose(outs[vivid], _torch(weights, x, 1 - vivid), atol=1e-4)
    assert not np.allclose(outs[0.62], outs[0.1], atol=1e-3)

"""The fused oneDNN runner computes the generator's function."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from restore.models import GeneratorConfig, UNetGenerator

from restore import fused
from restore.engine import Colorizer, EngineConfig, fold_batchnorm

pytestmark = pytest.mark.skipif(not fused.available(), reason="no oneDNN in this build")


def _model(decoder: tuple[int, ...] = (256, 128, 64, 32, 16)) -> UNetGenerator:
    """A randomly initialised generator with non-trivial BatchNorm statistics, folded."""
    torch.manual_seed(0)
    model = UNetGenerator(GeneratorConfig(decoder_channels=decoder)).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return fold_batchnorm(model)


# (batch, height, width): a stage that takes the sub-pixel path at every size, a 32-pixel
# side (the deepest stage is one pixel: plain path), non-square both ways.
SHAPES = [(2, 64, 96), (1, 32, 64), (3, 96, 32)]


@pytest.mark.parametrize(("batch", "height", "width"), SHAPES)
def test_fp32_matches_the_model_everywhere_including_the_border(
    batch: int, height: int, width: int
) -> None:
    model = _model()
    runner = fused.FusedGenerator(model, torch.float32)
    x = torch.rand(batch, 1, height, width) * 2 - 1
    with torch.inference_mode():
        want = model(x)
        got = runner(x)
    assert got.shape == want.shape and got.dtype == torch.float32
    diff = (got - want).abs()
    # the one-pixel frame is where the sub-pixel form needs its exact correction
    assert diff[..., 0, :].max() < 1e-4 and diff[..., -1, :].max() < 1e-4
    assert diff[..., :, 0].max() < 1e-4 and diff[..., :, -1].max() < 1e-4
    assert diff.max() < 1e-4


def test_sub_pixel_stages_are_the_thin_ones() -> None:
    runner = fused.FusedGenerator(_model(), torch.float32)
    assert [b.sub_pixel for b in runner.decoder] == [False, False, False, True, True]


def test_bf16_matches_the_model_under_autocast() -> None:
    model = _model()
    runner = fused.FusedGenerator(model, torch.bfloat16)
    x = torch.rand(2, 1, 64, 96) * 2 - 1
    with torch.inference_mode():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            want = model(x).float()
        got = runner(x)
    diff = (got - want).abs()
    assert diff.mean() < 5e-3 and diff.max() < 0.1


def test_needs_a_folded_eval_model() -> None:
    model = UNetGenerator(GeneratorConfig(decoder_channels=(16, 16, 8, 8, 8)))
    with pytest.raises(ValueError, match="eval"):
        fused.FusedGenerator(model.train())
    with pytest.raises(ValueError, match="folded"):
        fused.FusedGenerator(model.eval())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_engine_runs_fused_by_default_with_the_eager_outputs(
    tiny_weights: Path, precision: str
) -> None:
    cfg = EngineConfig(device="cpu", precision=precision)
    fast = Colorizer.from_weights(tiny_weights, cfg)
    eager = Colorizer.from_weights(
        tiny_weights, EngineConfig(**{**cfg.__dict__, "runtime": "eager"})
    )
    assert isinstance(fast.runner, fused.FusedGenerator)
    rng = np.random.default_rng(1)
    maps = [rng.uniform(0, 100, (64, 96)).astype(np.float32) for _ in range(3)]
    tol = 1e-3 if precision == "fp32" else 2.0  # ab units of [-110, 110]
    for a, b in zip(fast.predict(maps), eager.predict(maps), strict=True):
        assert a.shape == b.shape == (64, 96, 2)
        assert np.abs(a - b).max() < tol


def test_engine_rejects_an_unknown_runtime() -> None:
    with pytest.raises(ValueError, match="runtime"):
        EngineConfig(runtime="onnx")

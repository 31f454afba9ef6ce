"""The fused oneDNN runner computes the generator's function."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from restore.models import GeneratorConfig, UNetGenerator

from restore import fused
from restore.engine import Colorizer, EngineConfig, cpu_runner, fold_batchnorm

needs_onednn = pytest.mark.skipif(not fused.available(), reason="no oneDNN in this build")
needs_bf16 = pytest.mark.skipif(
    not fused.available(torch.bfloat16), reason="no oneDNN bf16 on this CPU"
)


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


# (decoder, batch, height, width). The shipped decoder takes the sub-pixel path in its
# two thin stages; the narrow one in all five, including at a 32-pixel side, where the
# deepest stage's input is one pixel wide (the plain path of a sub-pixel stage).
SHAPES = [
    ((256, 128, 64, 32, 16), 2, 64, 96),
    ((256, 128, 64, 32, 16), 3, 96, 32),
    ((16, 16, 8, 8, 8), 1, 32, 64),
    ((16, 16, 8, 8, 8), 2, 64, 96),
    ((64, 64, 64, 64, 48), 1, 64, 64),  # a last stage too wide for the phase tail
]


@pytest.fixture(params=["the stem's output into the workspace", "every conv output into it"])
def conv_into_workspace(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both ways a convolution's output is made: into the workspace (zeroed, then added
    into) or allocated by oneDNN. By default only the stem's goes to the workspace."""
    into = request.param.startswith("every")
    if into:
        monkeypatch.setattr(fused, "CONV_INTO_WORKSPACE_BYTES", 0)
    return into


@needs_onednn
@pytest.mark.parametrize(("decoder", "batch", "height", "width"), SHAPES)
def test_fp32_matches_the_model_everywhere_including_the_border(
    decoder: tuple[int, ...], batch: int, height: int, width: int, conv_into_workspace: bool
) -> None:
    model = _model(decoder)
    runner = fused.FusedGenerator(model, torch.float32)
    x = torch.rand(batch, 1, height, width) * 2 - 1
    with torch.inference_mode():
        want = model(x)
        got = runner(x)
    assert got.shape == want.shape and got.dtype == torch.float32
    diff = (got - want).abs()
    # the one-pixel frame is where the sub-pixel form needs its exact correction (without
    # it the border is off by ~1e-2); float rounding alone stays below 1e-6
    assert diff[..., 0, :].max() < 1e-5 and diff[..., -1, :].max() < 1e-5
    assert diff[..., :, 0].max() < 1e-5 and diff[..., :, -1].max() < 1e-5
    assert diff.max() < 1e-5


@needs_onednn
def test_sub_pixel_stages_are_the_thin_ones() -> None:
    runner = fused.FusedGenerator(_model(), torch.float32)
    assert [b.sub is not None for b in runner.decoder] == [False, False, False, True]
    assert runner.tail.block.sub is not None  # the last stage: on the phases
    wide = fused.FusedGenerator(_model((64, 64, 64, 64, 48)), torch.float32)
    assert wide.tail.block.sub is None  # (its plain path)


@needs_bf16
def test_bf16_matches_the_model_under_autocast(conv_into_workspace: bool) -> None:
    model = _model()
    runner = fused.FusedGenerator(model, torch.bfloat16)
    x = torch.rand(2, 1, 64, 96) * 2 - 1
    with torch.inference_mode():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            want = model(x).float()
        got = runner(x)
        again = runner(x)  # from reused buffers
    diff = (got - want).abs()  # tanh units: 0.01 is about 1 ab unit
    assert diff.mean() < 1e-3 and diff.max() < 0.03
    assert torch.equal(got, again)


@needs_onednn
def test_large_conv_outputs_go_to_the_workspace(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = fused.FusedGenerator(_model(), torch.float32)
    x = torch.rand(2, 1, 64, 96) * 2 - 1
    runner(x)
    few = runner.workspace().nbytes()
    monkeypatch.setattr(fused, "CONV_INTO_WORKSPACE_BYTES", 0)
    runner(torch.rand(1, 1, 64, 96))  # another shape: a fresh workspace
    runner(x)
    assert runner.workspace().nbytes() > few


@needs_onednn
def test_needs_a_folded_eval_model() -> None:
    model = UNetGenerator(GeneratorConfig(decoder_channels=(16, 16, 8, 8, 8)))
    with pytest.raises(ValueError, match="eval"):
        fused.FusedGenerator(model.train())
    with pytest.raises(ValueError, match="folded"):
        fused.FusedGenerator(model.eval())


@needs_onednn
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


@pytest.mark.parametrize(("height", "width"), [(128, 224), (33, 47), (1, 1), (2, 5)])
def test_max_pool_after_relu_is_torch_max_pool_bit_for_bit(height: int, width: int) -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 8, height, width).relu().to(torch.bfloat16)
    x = x.contiguous(memory_format=torch.channels_last)
    want = torch.nn.functional.max_pool2d(x, 3, 2, 1)
    assert torch.equal(fused._max_pool_after_relu(x), want)


@needs_bf16
def test_two_threads_calling_one_runner_get_the_single_threaded_results(
    conv_into_workspace: bool,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    runner = fused.FusedGenerator(_model((16, 16, 8, 8, 8)), torch.bfloat16)
    inputs = [torch.rand(2, 1, 64, 96) * 2 - 1 for _ in range(6)]
    alone = [runner(x) for x in inputs]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(runner, inputs))
    assert all(torch.equal(a, b) for a, b in zip(alone, together, strict=True))


def test_cpu_runner_falls_back_to_torchscript(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model((16, 16, 8, 8, 8))
    cfg = EngineConfig(device="cpu")
    # fp16 has no fused path; a build without oneDNN neither
    assert isinstance(cpu_runner(model, torch.float16, cfg), torch.jit.ScriptModule)
    monkeypatch.setattr(fused, "available", lambda dtype=torch.float32: False)
    assert isinstance(cpu_runner(model, torch.float32, cfg), torch.jit.ScriptModule)
    assert cpu_runner(model, torch.float32, replace(cfg, runtime="eager")) is model


def test_workspace_hands_a_buffer_out_again_only_once_every_view_of_it_is_gone() -> None:
    ws = fused.Workspace()
    ws.begin((1,))
    a = ws.take((2, 3, 4, 5), torch.float32)
    assert a.shape == (2, 3, 4, 5) and a.is_contiguous(memory_format=torch.channels_last)
    view = a.permute(0, 2, 3, 1)
    del a
    b = ws.take((2, 3, 4, 5), torch.float32)  # `view` still uses the first buffer
    assert b.data_ptr() != view.data_ptr() and ws.allocated == 2
    first = view.data_ptr()
    del view
    small = ws.take((2, 5), torch.bfloat16, channels_last=False)  # fits the free one
    assert small.data_ptr() == first and small.is_contiguous() and ws.allocated == 2
    del small
    assert ws.take((2, 3, 4, 5), torch.float32).data_ptr() == first
    assert ws.allocated == 2 and ws.nbytes() == 2 * 2 * 3 * 4 * 5 * 4
    ws.begin((2,))  # another input shape: the buffers of the last one are let go
    assert ws.buffers() == 0


@needs_onednn
def test_runner_reuses_its_workspace_and_never_overwrites_an_output_still_held() -> None:
    model = _model()
    runner = fused.FusedGenerator(model, torch.float32)
    x1, x2 = (torch.rand(2, 1, 64, 96) * 2 - 1 for _ in range(2))
    with torch.inference_mode():
        want1 = model(x1)
    first = runner(x1)
    made = runner.workspace().allocated
    second = runner(x2)  # `first` is held: its buffer must not be reused
    assert torch.allclose(first, want1, atol=1e-5)
    assert runner.workspace().allocated <= made + 1
    del first, second
    settled = runner.workspace().allocated
    for _ in range(2):
        again = runner(x1)
        assert torch.allclose(again, want1, atol=1e-5)
        del again
    assert runner.workspace().allocated == settled  # nothing new once under way
    runner(torch.rand(2, 1, 64, 64) * 2 - 1)  # a new shape: only its buffers are kept
    assert runner.workspace().buffers() <= made  # not the last shape's as well


@needs_onednn
def test_engine_lets_the_calling_threads_workspace_go() -> None:
    col = Colorizer(_model(), EngineConfig(device="cpu", precision="fp32"))
    assert isinstance(col.runner, fused.FusedGenerator)
    col.predict([np.full((64, 96), 50.0, np.float32)])
    assert col.runner.workspace().buffers() > 0
    col.release_workspace()
    assert col.runner.workspace().buffers() == 0


@needs_onednn
def test_a_block_that_would_overwrite_a_skip_feature_is_refused() -> None:
    model = _model()
    model.layer2[0].downsample = None  # its input, layer1's output, is a skip feature
    with pytest.raises(ValueError, match="downsampling"):
        fused.FusedGenerator(model, torch.float32)

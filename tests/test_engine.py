"""The inference engine and `restore eval`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from restore import color
from restore.cli import main
from restore.engine import Colorizer, EngineConfig, render_shape, resolve_device, resolve_precision
from restore.evaluate import score_image

from .conftest import synthetic_photo


@pytest.mark.parametrize(
    "h,w,size,expected",
    [
        (480, 640, 256, (256, 352)),
        (640, 480, 256, (352, 256)),
        (100, 100, 256, (256, 256)),
        (200, 4000, 256, (256, 1024)),
        (33, 47, 64, (64, 96)),
    ],
)
def test_render_shape_keeps_aspect_in_multiples_of_32(
    h: int, w: int, size: int, expected: tuple
) -> None:
    assert render_shape(h, w, size) == expected


def test_colorize_keeps_full_resolution_and_lightness(tiny_weights: Path) -> None:
    engine = Colorizer.from_weights(
        tiny_weights, EngineConfig(device="cpu", precision="fp32", render_size=64, batch_size=2)
    )
    sizes = [(61, 83), (120, 90), (64, 64)]
    lights = [
        color.rgb_to_l(synthetic_photo(h, w, seed=i).astype(np.float32) / 255)
        for i, (h, w) in enumerate(sizes)
    ]
    outs = engine.colorize_lightness(lights)
    for lightness, out in zip(lights, outs, strict=True):
        assert out.shape == (*lightness.shape, 3) and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
        # full-resolution detail comes from the input: L of the output equals the input's L
        assert np.abs(color.rgb_to_l(out) - lightness).mean() < 1.0


@pytest.mark.parametrize("sizes", [[(80, 100)] * 3, [(80, 100), (100, 80), (64, 200)]])
def test_batching_does_not_change_results(tiny_weights: Path, sizes: list[tuple[int, int]]) -> None:
    # Mixed sizes too: a photo's colours must not depend on which photos share its batch
    # (the Ray engine and --threads group files differently from a plain run).
    cfg = EngineConfig(device="cpu", precision="fp32", render_size=64, batch_size=3)
    engine = Colorizer.from_weights(tiny_weights, cfg)
    lights = [
        color.rgb_to_l(synthetic_photo(h, w, seed=i).astype(np.float32) / 255)
        for i, (h, w) in enumerate(sizes)
    ]
    together = engine.ab_full(lights)
    alone = [engine.ab_full([x])[0] for x in lights]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)


def test_device_and_precision_resolution() -> None:
    import torch

    cpu, cuda = resolve_device("cpu"), torch.device("cuda")  # no GPU needed to resolve
    assert cpu.type == "cpu"
    assert resolve_precision("fp32", cpu) == torch.float32
    assert resolve_precision("bf16", cpu) == torch.bfloat16
    assert resolve_precision("fp16", cpu) == torch.float16
    assert resolve_precision("auto", cpu) in (torch.bfloat16, torch.float32)
    assert resolve_precision("auto", cuda) == torch.float16


def test_scores_perfect_and_gray() -> None:
    truth = synthetic_photo(64, 64).astype(np.float32) / 255
    perfect = score_image("x", truth, truth)
    assert perfect.psnr == pytest.approx(100.0) and perfect.delta_e < 1e-3
    assert perfect.colourfulness == pytest.approx(perfect.colourfulness_truth)
    gray = np.repeat(color.l_to_gray(color.rgb_to_l(truth))[..., None], 3, axis=2)
    sc = score_image("x", truth, gray)
    assert sc.psnr == pytest.approx(sc.psnr_gray, abs=0.05)
    assert sc.colourfulness < 1.0 < sc.colourfulness_truth


def test_eval_command_table_and_json(tiny_weights: Path, tmp_path: Path) -> None:
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"t{i}.png"), synthetic_photo(64, 80, seed=i)[..., ::-1])
    out = tmp_path / "scores.json"
    res = CliRunner().invoke(
        main,
        [
            "eval",
            str(tmp_path),
            "--weights",
            str(tiny_weights),
            "--render-size",
            "64",
            "--device",
            "cpu",
            "--json",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "mean" in res.output and "colourfulness / truth" in res.output
    data = json.loads(out.read_text())
    assert len(data["images"]) == 3 and data["mean"]["n"] == 3
    assert data["weights"]["sha256"]
    args = ["eval", str(tmp_path), "--weights", str(tiny_weights), "--render-size", "64"]
    res = CliRunner().invoke(main, [*args, "--skip", "1", "--limit", "1", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert [s["name"] for s in json.loads(out.read_text())["images"]] == ["t1.png"]


def test_eval_refuses_foreign_weights(tmp_path: Path) -> None:
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"nonsense")
    res = CliRunner().invoke(main, ["eval", str(tmp_path), "--weights", str(bad)])
    assert res.exit_code == 1 and "not a readable" in res.output


def test_batchnorm_folding_keeps_outputs() -> None:
    import copy

    import torch
    from restore.models import GeneratorConfig, UNetGenerator

    from restore.engine import fold_batchnorm

    torch.manual_seed(0)
    model = UNetGenerator(GeneratorConfig(decoder_channels=(16, 16, 8, 8, 8)))
    for m in model.modules():  # non-trivial statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    model.eval()
    x = torch.randn(2, 1, 64, 96)
    with torch.no_grad():
        ref = model(x)
        folded = fold_batchnorm(copy.deepcopy(model))
        out = folded(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError):
        fold_batchnorm(model.train())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_openvino_gives_the_eager_outputs_for_any_batch_and_size(
    tiny_weights: Path, precision: str
) -> None:
    """Rare shapes run on OpenVINO's dynamic model, repeated ones on a model compiled for
    them; every batch size and render shape, on either, called again or from another
    thread, must match the eager generator."""
    import threading

    from restore.ov_runner import OpenVINORunner

    cfg = EngineConfig(device="cpu", precision=precision)
    fast = Colorizer.from_weights(tiny_weights, cfg)
    eager = Colorizer.from_weights(tiny_weights, replace(cfg, runtime="eager"))
    assert isinstance(fast.runner, OpenVINORunner)
    assert eager.runner is eager.model
    rng = np.random.default_rng(0)
    shapes_seen = [[(64, 96)], [(96, 64)], [(32, 32), (32, 32)], [(64, 96)], [(64, 96)] * 2]
    shapes_seen += [[(64, 96)]] * 3
    tol = 1e-3 if precision == "fp32" else 0.06 * 110
    for shapes in shapes_seen:
        maps = [rng.uniform(0, 100, s).astype(np.float32) for s in shapes]
        for a, b in zip(fast.predict(maps), eager.predict(maps), strict=True):
            assert a.shape == (*b.shape[:2], 2)
            np.testing.assert_allclose(a, b, atol=tol)
    # the dynamic model, then (1, 1, 64, 96) on its third call; (2, 1, 64, 96) stayed rare
    assert fast.runner.compiles == 2
    maps = [rng.uniform(0, 100, (64, 96)).astype(np.float32)]
    other: list[np.ndarray] = []
    t = threading.Thread(target=lambda: other.extend(fast.predict(maps)))
    t.start()
    t.join()
    np.testing.assert_array_equal(other[0], fast.predict(maps)[0])


def test_openvino_keeps_a_bounded_number_of_compiled_shapes(tiny_weights: Path) -> None:
    from restore.ov_runner import OpenVINORunner

    model = Colorizer.from_weights(tiny_weights, EngineConfig(runtime="eager")).model
    runner = OpenVINORunner(model, max_shapes=2, static_after=2)
    for w in (32, 32, 64, 64, 96, 96):
        runner(torch.zeros(1, 1, 32, w))
    assert list(runner._static) == [(1, 1, 32, 64), (1, 1, 32, 96)]
    assert runner.compiles == 4  # dynamic, then 32, 64 and 96 wide
    assert len(runner._local.requests) == 3  # the dropped model's request went with it
    runner(torch.zeros(1, 1, 32, 32))  # still a frequent shape: compiled again
    assert runner.compiles == 5 and (1, 1, 32, 32) in runner._static


def test_without_openvino_the_engine_runs_pytorch(
    tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from restore import ov_runner

    monkeypatch.setattr(ov_runner, "available", lambda: False)
    col = Colorizer.from_weights(tiny_weights, EngineConfig(device="cpu"))
    assert col.runner is col.model


def test_thread_plan_prefers_parallel_single_threaded_calls_on_cpu() -> None:
    from restore.runtime import plan_threads

    assert (plan_threads(2).workers, plan_threads(2).intra_op) == (2, 1)
    assert (plan_threads(1).workers, plan_threads(1).intra_op) == (1, 1)
    assert (plan_threads(16).workers, plan_threads(16).intra_op) == (4, 4)
    assert (plan_threads(8, cuda=True).workers, plan_threads(8, cuda=True).intra_op) == (1, 8)


def test_refine_keeps_colour_edges_that_follow_lightness_and_damps_rainbows() -> None:
    from restore.engine import refine_ab

    h, w = 64, 96
    lightness = np.full((h, w), 40.0, np.float32)
    lightness[:, 48:] = 80.0  # a luminance edge ...
    ab = np.zeros((h, w, 2), np.float32)
    ab[:, :48] = (40.0, 20.0)  # ... with a colour edge on it: kept
    ab[:, 48:] = (-30.0, 10.0)
    out = refine_ab(lightness, ab, 8)
    np.testing.assert_allclose(out[:, [20, 76]], ab[:, [20, 76]], atol=0.5)
    step = out[:, 48] - out[:, 47]  # still a step at the edge, not a ramp
    assert (np.abs(step) > 2 / 3 * np.abs(ab[:, 48] - ab[:, 47])).all()
    # Hue rotating across a region of even tone (what the generator paints on textures),
    # a turn every 24 pixels.
    flat = np.full((h, w), 60.0, np.float32)
    angle = np.broadcast_to(np.linspace(0, 8 * np.pi, w, dtype=np.float32), (h, w))
    rainbow = np.stack([40 * np.cos(angle), 40 * np.sin(angle)], -1)
    damped = refine_ab(flat, rainbow.astype(np.float32), 8)
    chroma = np.hypot(damped[..., 0], damped[..., 1])
    assert chroma[:, 16:-16].mean() < 0.5 * 40


def test_engine_applies_refine_to_the_raw_prediction_unless_radius_is_zero(
    tiny_weights: Path,
) -> None:
    from restore.engine import refine_ab

    raw = Colorizer.from_weights(tiny_weights, EngineConfig(device="cpu", refine_radius=0))
    refined = Colorizer.from_weights(tiny_weights, EngineConfig(device="cpu", refine_radius=8))
    x = np.random.default_rng(0).uniform(0, 100, (64, 96)).astype(np.float32)
    want = refine_ab(x, raw.predict([x])[0], 8)
    np.testing.assert_allclose(refined.predict([x])[0], want, atol=1e-4)
    assert not np.allclose(want, raw.predict([x])[0], atol=1e-2)


def test_predict_from_several_threads_at_once_matches_serial(tiny_weights: Path) -> None:
    """The pipelines call the frozen generator from several threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    col = Colorizer.from_weights(tiny_weights, EngineConfig(device="cpu", precision="bf16"))
    rng = np.random.default_rng(1)
    jobs = [
        [rng.uniform(0, 100, shape).astype(np.float32)] * n
        for shape, n in [((64, 96), 1), ((96, 64), 3), ((32, 32), 2), ((64, 64), 4)] * 3
    ]
    serial = [col.predict(j) for j in jobs]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(col.predict, jobs))
    # A shape's first calls run on the dynamic-shape model, later ones on its own: their
    # bf16 kernels round differently, far below one 8-bit level (about 0.4 ab units).
    for a, b in zip(serial, parallel, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(x, y, atol=0.1)


def test_saturation_scales_the_predicted_colours_and_zero_gives_gray(tiny_weights: Path) -> None:
    x = np.random.default_rng(2).uniform(0, 100, (64, 96)).astype(np.float32)
    base = Colorizer.from_weights(tiny_weights, EngineConfig(device="cpu")).predict([x])[0]
    assert np.abs(base).max() > 0.1  # the tiny generator does colour this
    double = Colorizer.from_weights(tiny_weights, EngineConfig(device="cpu", saturation=2.0))
    np.testing.assert_allclose(double.predict([x])[0], np.clip(2 * base, -110, 110), atol=1e-3)
    gray = Colorizer.from_weights(tiny_weights, EngineConfig(device="cpu", saturation=0.0))
    rgb = gray.colorize_lightness([x])[0]
    assert np.abs(rgb - rgb.mean(-1, keepdims=True)).max() < 1e-3
    with pytest.raises(ValueError, match="saturation"):
        EngineConfig(saturation=-0.5)

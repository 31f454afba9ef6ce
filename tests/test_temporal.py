"""Temporal colour stabilisation: still colours settle, cuts and moving objects keep theirs."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from restore.cli import main
from restore.video import Batch, FrameItem
from restore.video.temporal import ColourStabilizer, StabilizeConfig, stabilizer
from tests.media import Clip, frame_times, video_frames, write_clip

H, W = 64, 96
BG_AB = np.array([5.0, -30.0], np.float32)
OBJ_AB = np.array([60.0, 40.0], np.float32)
BOTH = [pytest.param(True, id="flow"), pytest.param(False, id="still")]


def textured_l(level: float, phase: float = 0.0) -> np.ndarray:
    """(H, W) float32 L in [0, 100]: ``level`` plus a smooth pattern (the flow needs texture)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    return (level + 8 * np.sin(xx / 5 + phase) * np.cos(yy / 7)).astype(np.float32)


def noisy_ab(mean: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 2) float32: a flat colour plus per-frame noise, like a flickering prediction."""
    return (mean + rng.normal(0, sigma, (H, W, 2))).astype(np.float32)


def mean_step(frames: list[np.ndarray]) -> float:
    """Mean |Δab| between consecutive frames."""
    return float(
        np.mean([np.abs(b - a).mean() for a, b in zip(frames[:-1], frames[1:], strict=True)])
    )


@pytest.mark.parametrize("flow", BOTH)
def test_still_scene_with_flickering_prediction_settles(flow: bool) -> None:
    rng = np.random.default_rng(0)
    base = textured_l(50)
    state = ColourStabilizer(StabilizeConfig(flow=flow))
    raw, out = [], []
    for _ in range(30):
        lightness = base + rng.normal(0, 0.3, base.shape).astype(np.float32)  # grain
        ab = noisy_ab(BG_AB, 6.0, rng)
        raw.append(ab)
        out.append(state.step(lightness, ab))
    assert mean_step(out[10:]) < 0.35 * mean_step(raw[10:])
    # steadier and closer to the true colour, not pulled anywhere else
    err_raw = np.mean([np.abs(a - BG_AB).mean() for a in raw[10:]])
    err_out = np.mean([np.abs(a - BG_AB).mean() for a in out[10:]])
    assert err_out < 0.5 * err_raw
    assert state.cuts == 0


@pytest.mark.parametrize("flow", BOTH)
def test_a_scene_cut_resets_to_the_new_shots_prediction(flow: bool) -> None:
    rng = np.random.default_rng(1)
    state = ColourStabilizer(StabilizeConfig(flow=flow))
    for _ in range(10):  # shot A: bright, warm
        state.step(textured_l(70), noisy_ab(np.float32([40, 40]), 2.0, rng))
    first_b = noisy_ab(np.float32([-40, -40]), 2.0, rng)
    out = state.step(textured_l(25, phase=2.0), first_b)  # shot B: dark, cold
    np.testing.assert_array_equal(out, first_b)  # its own prediction, nothing of shot A
    assert state.cuts == 1
    nxt = noisy_ab(np.float32([-40, -40]), 2.0, rng)
    out = state.step(textured_l(25, phase=2.0), nxt)
    assert np.abs(out - np.float32([-40, -40])).max() < 8  # shot B settles on its own colour


@pytest.mark.parametrize("flow", BOTH)
def test_a_moving_bright_object_keeps_its_colour_and_leaves_no_trail(flow: bool) -> None:
    rng = np.random.default_rng(2)
    state = ColourStabilizer(StabilizeConfig(flow=flow))
    size, y0, step = 14, 20, 4
    for i in range(16):
        x0 = 4 + step * i
        lightness = textured_l(30)
        lightness[y0 : y0 + size, x0 : x0 + size] = 85
        ab = noisy_ab(BG_AB, 1.0, rng)
        ab[y0 : y0 + size, x0 : x0 + size] = OBJ_AB
        out = state.step(lightness, ab)
    inside = out[y0 + 2 : y0 + size - 2, x0 + 2 : x0 + size - 2]
    assert np.abs(inside - OBJ_AB).max() < 3  # its own colour, not the background's
    behind = out[y0 : y0 + size, x0 - 3 * step : x0 - 1]  # where it was 1-3 frames ago
    assert np.abs(behind - BG_AB).max() < 6  # background again: no smear


def test_with_flow_panned_content_settles_along_its_motion() -> None:
    yy, xx = np.mgrid[0:H, 0 : W + 100].astype(np.float32)
    scene = np.sin(xx / 6) * np.cos(yy / 9) + 0.5 * np.sin(xx / 17 + yy / 11)  # wider than W
    shift, inner = 3, slice(8, -8)

    def pan(flow: bool) -> tuple[float, float]:
        """Output / raw: flicker along the motion, error of the last frame."""
        rng = np.random.default_rng(6)
        state = ColourStabilizer(StabilizeConfig(flow=flow))
        raw, out = [], []
        for i in range(25):
            view = scene[:, 90 - shift * i : 90 - shift * i + W]  # the camera pans left
            truth = np.stack([25 * view, np.full_like(view, -10)], axis=-1)
            ab = (truth + rng.normal(0, 6, truth.shape)).astype(np.float32)
            raw.append(ab)
            out.append(state.step((50 + 15 * view).astype(np.float32), ab))

        def along(fr: list[np.ndarray]) -> float:
            pairs = zip(fr[10:-1], fr[11:], strict=True)
            return float(
                np.mean([np.abs(b[:, shift:] - a[:, :-shift])[:, inner].mean() for a, b in pairs])
            )

        error = np.abs(out[-1] - truth)[:, inner].mean() / np.abs(raw[-1] - truth)[:, inner].mean()
        return along(out) / along(raw), float(error)

    flicker, error = pan(flow=True)
    assert flicker < 0.3 and error < 0.5
    flicker_still, _ = pan(flow=False)
    assert flicker < 0.5 * flicker_still  # what the flow is for


def test_output_is_a_new_array_within_the_predictions_range() -> None:
    rng = np.random.default_rng(3)
    state = ColourStabilizer()
    for _ in range(5):
        ab = noisy_ab(BG_AB, 20.0, rng).clip(-110, 110)
        keep = ab.copy()
        out = state.step(textured_l(50), ab)
        assert out is not ab and out.dtype == np.float32 and out.shape == ab.shape
        np.testing.assert_array_equal(ab, keep)
        assert out.min() >= -110 and out.max() <= 110


def test_strength_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="strength"):
        StabilizeConfig(strength=1.0)


def _batches(n_frames: int, sizes: list[int], rng: np.random.Generator) -> list[Batch]:
    """Batches of FrameItems with full-size L (2x render size) and ab at render size."""
    frame = av.VideoFrame(16, 16, "rgb24")
    batches, pts = [], 0
    for size in sizes:
        batch = Batch(passengers=[])
        for _ in range(size):
            full = np.repeat(np.repeat(textured_l(50), 2, axis=0), 2, axis=1)
            batch.items.append(FrameItem(frame, pts, 1, full, noisy_ab(BG_AB, 5.0, rng)))
            pts += 1
        batches.append(batch)
    assert pts == n_frames
    return batches


def test_stage_yields_every_batch_and_frame_in_order() -> None:
    rng = np.random.default_rng(4)
    batches = _batches(11, [4, 0, 4, 3], rng)  # an empty batch: passengers only
    first_ab = batches[0].items[0].ab
    seen = list(stabilizer(StabilizeConfig())(iter(batches)))
    assert [id(b) for b in seen] == [id(b) for b in batches]
    pts = [it.pts for b in seen for it in b.items]
    assert pts == list(range(11))
    assert all(it.ab is not None and it.ab.shape == (H, W, 2) for b in seen for it in b.items)
    np.testing.assert_array_equal(seen[0].items[0].ab, first_ab)  # the first frame as predicted
    last = seen[-1].items[-1].ab
    assert last is not None and np.abs(last - BG_AB).mean() < 2.5  # smoothed (noise sigma 5)


def test_stage_starts_afresh_for_each_film() -> None:
    rng = np.random.default_rng(5)
    stage = stabilizer(StabilizeConfig())
    list(stage(iter(_batches(4, [4], rng))))
    second = _batches(2, [2], rng)
    predicted = second[0].items[0].ab
    assert predicted is not None
    predicted = predicted.copy()
    out = list(stage(iter(second)))
    np.testing.assert_array_equal(out[0].items[0].ab, predicted)  # nothing from film one


def test_stage_refuses_a_frame_without_ab() -> None:
    batch = Batch(items=[FrameItem(av.VideoFrame(16, 16, "rgb24"), 0, 1, textured_l(50))])
    with pytest.raises(RuntimeError, match="without ab"):
        list(stabilizer()(iter([batch])))


# ----------------------------------------------------------------------------- CLI

FAST = ["--render-size", "64", "--batch-size", "4", "--device", "cpu", "--preset", "ultrafast",
        "--threads", "1"]  # fmt: skip


def test_cli_video_with_and_without_stabilisation(tmp_path: Path, tiny_weights: Path) -> None:
    src = write_clip(tmp_path / "film.mp4", Clip(frames=12))
    outputs = {}
    for flag in ("--stabilize", "--no-stabilize"):
        dst = tmp_path / f"out{flag}.mp4"
        result = CliRunner().invoke(
            main,
            ["video", str(src), "-o", str(dst), "--weights", str(tiny_weights), *FAST, flag],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        assert frame_times(dst) == frame_times(src)
        outputs[flag] = video_frames(dst)
    on, off = outputs["--stabilize"], outputs["--no-stabilize"]
    assert len(on) == len(off) == 12
    assert np.abs(on[0].astype(int) - off[0]).max() <= 1  # first frame: nothing to hold yet
    assert any(
        not np.array_equal(a, b) for a, b in zip(on[1:], off[1:], strict=True)
    )  # the stage ran


def test_cli_stabilizer_defaults_are_the_configs() -> None:
    from restore.cli.video import video

    for name in ("strength", "motion", "cut"):
        option = next(p for p in video.params if p.name == f"stabilize_{name}")
        assert option.default == getattr(StabilizeConfig, name), name
    result = CliRunner().invoke(main, ["video", "--help"])
    assert result.exit_code == 0 and "--no-stabilize" in result.output


def test_cli_refuses_strength_of_one(tmp_path: Path, tiny_weights: Path) -> None:
    src = write_clip(tmp_path / "film.mp4", Clip(frames=2))
    args = ["video", str(src), "--weights", str(tiny_weights), "--stabilize-strength", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2


def test_cli_cut_threshold_reaches_the_stabiliser(
    tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import restore.video.job as job  # where the film job builds the stage

    seen: list[StabilizeConfig] = []
    real = job.stabilizer

    def spy(config: StabilizeConfig) -> object:
        seen.append(config)
        return real(config)

    monkeypatch.setattr(job, "stabilizer", spy)
    src = write_clip(tmp_path / "film.mp4", Clip(frames=2))
    args = ["video", str(src), "--weights", str(tiny_weights), "--stabilize-cut", "3.5"]
    args += ["--stabilize-motion", "6", "-o", str(tmp_path / "out")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert [(c.cut, c.motion, c.strength) for c in seen] == [(3.5, 6.0, 0.9)]
    bad = CliRunner().invoke(main, [*args[:3], "--stabilize-cut", "0"])
    assert bad.exit_code == 2

"""Dirt removal: a speck on one frame is filled from its neighbours, moving things and
cuts are left alone, and `restore video --repair` keeps frames, timestamps and audio."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from restore.cli import main
from restore.video.dirt import DirtConfig, DirtRemover
from tests.media import Audio, Clip, frame_times, packets, video_frames, write_clip
from tests.test_video import FAST


def background(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = cv2.GaussianBlur(rng.normal(50, 20, (120, 160)).astype(np.float32), (0, 0), 2)
    return np.clip(x, 0, 100).astype(np.float32)


def moving_square(n: int) -> list[np.ndarray]:
    """(120, 160) float32 L frames: a bright square moving 4 px a frame over a textured scene."""
    frames = []
    for i in range(n):
        f = background(0)
        f[40:60, 20 + 4 * i : 40 + 4 * i] = 90
        frames.append(f)
    return frames


DEFAULT = DirtConfig()


def run(
    frames: list[np.ndarray], config: DirtConfig = DEFAULT
) -> tuple[list[np.ndarray], DirtRemover[np.ndarray]]:
    d: DirtRemover[np.ndarray] = DirtRemover(config, lambda x: x)
    out: list[np.ndarray] = []
    for f in frames:
        out += d.push(f)
    return out + d.flush(), d


def test_a_speck_on_one_frame_is_filled_and_the_moving_square_is_kept() -> None:
    frames = moving_square(12)
    frames[5][80:84, 100:103] = 5  # dark dirt, frame 5 only
    before = [f.copy() for f in frames]
    out, d = run(frames)
    assert [id(f) for f in out] == [id(f) for f in frames]  # in place, in order, none lost
    assert abs(out[5][80:84, 100:103].mean() - background(0)[80:84, 100:103].mean()) < 2
    for i, (o, b) in enumerate(zip(out, before, strict=True)):
        changed = np.abs(o - b) > 0.5
        if i != 5:
            assert not changed.any()  # the square moved but nothing was taken for dirt
        else:
            assert changed.sum() <= 4 * 3 + 2 * (4 + 3) + 4  # the speck and its one-pixel rim
    assert d.stats.frames == 12 and d.stats.filled > 0


def test_frames_beside_a_cut_are_left_alone() -> None:
    a, b = background(0), background(7)
    frames = [a.copy(), a.copy(), b.copy(), b.copy()]
    frames[1][10:13, 10:13] = 99  # a spike on the frame before the cut: no next neighbour
    out, _ = run(frames)
    assert out[1][10:13, 10:13].min() == 99


def test_restore_video_repair_removes_a_speck_and_keeps_frames_timestamps_and_audio(
    tmp_path: Path, tiny_weights: Path
) -> None:
    clip = Clip(width=128, height=96, frames=12, specks=((6, 60, 90, 6),), audio=(Audio(),))
    src = write_clip(tmp_path / "reel.mp4", clip)
    args = ["video", str(src), "--weights", str(tiny_weights), *FAST, "--no-stabilize"]
    plain = tmp_path / "plain.mp4"
    assert CliRunner().invoke(main, [*args, "-o", str(plain)]).exit_code == 0
    report = tmp_path / "r.json"
    result = CliRunner().invoke(main, [*args, "--repair", "--report", str(report)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "reel_restored.mp4"
    assert frame_times(out) == frame_times(src)
    assert packets(out, "audio") == packets(src, "audio")
    speck = (slice(61, 65), slice(91, 95))
    dark = video_frames(plain, "gray")[6][speck].mean()
    fixed = video_frames(out, "gray")[6][speck].mean()
    neighbour = video_frames(out, "gray")[5][speck].mean()
    assert dark < 30 and abs(fixed - neighbour) < 15
    entry = json.loads(report.read_text())["files"][0]
    assert entry["dirt"]["frames"] == 12 and entry["dirt"]["filled"] > 0
    assert entry["deflicker"]["frames"] == 12


def test_repair_only_film_is_black_and_white_with_the_speck_gone(
    tmp_path: Path, tiny_weights: Path
) -> None:
    clip = Clip(width=128, height=96, frames=12, specks=((6, 60, 90, 6),), audio=(Audio(),))
    src = write_clip(tmp_path / "reel.mp4", clip)
    args = ["video", str(src), "--weights", str(tiny_weights), *FAST]
    refused = CliRunner().invoke(main, [*args, "--no-colorize"])
    assert refused.exit_code == 2 and "--repair" in refused.output
    result = CliRunner().invoke(main, [*args, "--repair", "--no-colorize"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "reel_restored.mp4"
    assert frame_times(out) == frame_times(src)
    assert packets(out, "audio") == packets(src, "audio")
    planes = video_frames(out, "yuv420p")  # (H * 3/2, W): Y, then U and V
    chroma = np.concatenate([p[96:] for p in planes]).astype(int)
    assert np.abs(chroma - 128).max() <= 1  # neutral: black and white
    speck = (slice(61, 65), slice(91, 95))
    frames = video_frames(out, "gray")
    assert abs(frames[6][speck].mean() - frames[5][speck].mean()) < 15


def test_film_grain_is_averaged_away_and_the_moving_square_kept() -> None:
    clean = moving_square(10)
    rng = np.random.default_rng(3)
    grainy = [np.clip(f + rng.normal(0, 3.0, f.shape), 0, 100).astype(np.float32) for f in clean]
    out, d = run([g.copy() for g in grainy], DirtConfig(remove_dirt=False, grain=1.0))

    def err(frames: list[np.ndarray]) -> float:  # the first and last have one neighbour only
        pairs = zip(frames[1:-1], clean[1:-1], strict=True)
        return float(np.sqrt(np.mean([np.mean((f - c) ** 2) for f, c in pairs])))

    assert err(out) < 0.75 * err(grainy)  # most of a 3-frame average's gain (0.58)
    assert d.stats.grain == pytest.approx(3.0, rel=0.25)
    for o, c in zip(out[1:-1], clean[1:-1], strict=True):  # no ghost of the moving square
        assert abs(float(o[40:60].mean()) - float(c[40:60].mean())) < 1.5
    # without grain reduction the frames pass as they came
    same, _ = run([g.copy() for g in grainy], DirtConfig(remove_dirt=False))
    assert all(np.array_equal(a, b) for a, b in zip(same, grainy, strict=True))


def test_restore_video_repair_grain_alone_reports_the_grain_and_keeps_timestamps(
    tmp_path: Path, tiny_weights: Path
) -> None:
    src = write_clip(tmp_path / "reel.mp4", Clip(width=128, height=96, frames=8, audio=(Audio(),)))
    report = tmp_path / "r.json"
    args = ["video", str(src), "--weights", str(tiny_weights), *FAST, "--report", str(report)]
    result = CliRunner().invoke(main, [*args, "--repair-grain", "1", "--no-colorize"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "reel_restored.mp4"
    assert frame_times(out) == frame_times(src)
    assert packets(out, "audio") == packets(src, "audio")
    entry = json.loads(report.read_text())["files"][0]
    assert entry["dirt"]["frames"] == 8 and "grain" in entry["dirt"]
    assert "deflicker" not in entry  # only what was asked for ran

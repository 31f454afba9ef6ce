"""Flicker removal: per-frame brightness steadied within a shot, cuts and fades respected,
frames, timestamps and audio kept through `restore video --deflicker`."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from restore.cli import main
from restore.video.deflicker import Deflicker, DeflickerConfig
from tests.media import Audio, Clip, frame_times, packets, video_frames, write_clip
from tests.test_video import FAST


def scene(seed: int, mean: float) -> np.ndarray:
    """(48, 64) float32 L: a smooth random picture around ``mean``."""
    rng = np.random.default_rng(seed)
    x = cv2.GaussianBlur(rng.normal(0, 20, (48, 64)).astype(np.float32), (0, 0), 3)
    return np.clip(mean + x * 3, 0, 100).astype(np.float32)


def run(frames: list[np.ndarray]) -> list[np.ndarray]:
    d: Deflicker[np.ndarray] = Deflicker(DeflickerConfig(), lambda x: x)
    out: list[np.ndarray] = []
    for f in frames:
        out += d.push(f)
    return out + d.flush()


def test_flicker_within_a_shot_is_flattened_and_every_frame_comes_back_in_order() -> None:
    rng = np.random.default_rng(1)
    base = scene(0, 50)
    frames = [np.clip(base * rng.uniform(0.8, 1.2), 0, 100).astype(np.float32) for _ in range(40)]
    ids = [id(f) for f in frames]
    before = np.std([f.mean() for f in frames])
    out = run(frames)
    assert [id(f) for f in out] == ids  # corrected in place, none lost or reordered
    assert np.std([f.mean() for f in out]) < before / 3


def test_a_cut_starts_a_new_window_and_a_fade_passes() -> None:
    rng = np.random.default_rng(2)
    a, b = scene(0, 35), scene(5, 65)
    frames = [a * rng.uniform(0.9, 1.1) for _ in range(20)]
    frames += [np.clip(b * rng.uniform(0.9, 1.1), 0, 100) for _ in range(20)]
    frames = [f.astype(np.float32) for f in frames]
    means_in = [float(f.mean()) for f in frames]
    out = run(frames)
    # each shot keeps its own brightness: nothing of the other shot leaks across the cut
    assert abs(np.mean([f.mean() for f in out[:20]]) - np.mean(means_in[:20])) < 1.0
    assert abs(np.mean([f.mean() for f in out[20:]]) - np.mean(means_in[20:])) < 1.0
    assert abs(out[19].mean() - out[20].mean()) > 20
    # a steady fade (the light halves over 30 frames) is followed, not flattened
    fade = [(scene(9, 60) * (1.0 - i / 60)).astype(np.float32) for i in range(30)]
    want = [float(f.mean()) for f in fade]
    got = [float(f.mean()) for f in run(fade)]
    assert max(abs(g - w) for g, w in zip(got[6:-6], want[6:-6], strict=True)) < 0.5


def test_restore_video_deflicker_keeps_frames_timestamps_and_audio(
    tmp_path: Path, tiny_weights: Path
) -> None:
    gains = np.random.default_rng(3).uniform(0.75, 1.15, 30)
    clip = Clip(frames=30, flicker=tuple(gains), audio=(Audio(seconds=1.2),))
    src = write_clip(tmp_path / "reel.mp4", clip)
    args = ["video", str(src), "--weights", str(tiny_weights), *FAST, "--no-stabilize"]
    report = tmp_path / "r.json"
    result = CliRunner().invoke(main, [*args, "--deflicker", "--report", str(report)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "reel_restored.mp4"
    assert frame_times(out) == frame_times(src)
    assert packets(out, "audio") == packets(src, "audio")
    luma_in = [float(f.mean()) for f in video_frames(src, "gray")]
    luma_out = [float(f.mean()) for f in video_frames(out, "gray")]
    assert np.std(luma_out) < np.std(luma_in) / 2
    entry = json.loads(report.read_text())["files"][0]
    assert entry["deflicker"]["frames"] == 30 and entry["deflicker"]["shots"] >= 1
    assert entry["deflicker"]["correction"] > 1.0

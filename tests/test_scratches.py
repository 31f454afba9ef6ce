"""Vertical line scratches: a thin full-height line is repaired, wide or short vertical
things and the frame's edges are left alone, and `restore video --remove-scratches` reports it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from restore.cli import main
from restore.video.scratches import ScratchConfig, remove_line_scratches
from tests.media import Clip, frame_times, video_frames, write_clip
from tests.test_dirt import background
from tests.test_video import FAST


def scene() -> np.ndarray:
    """(120, 160) float32 L: texture, a wide pole (8 px) and a thin stick down half the frame."""
    x = background(1)
    x[:, 120:128] = 85  # a pole, full height but wide
    x[:60, 40:42] = 90  # a thin stick that ends within the frame
    return x


def test_a_bright_and_a_dark_line_scratch_are_repaired_and_the_rest_kept() -> None:
    clean = scene()
    scratched = clean.copy()
    scratched[:, 70:72] += 25  # bright, 2 px
    scratched[:, 100] -= 20  # dark, 1 px
    out = scratched.copy()
    columns = remove_line_scratches(out, ScratchConfig())
    assert 3 <= columns <= 3 + 4  # the lines and at most a one-pixel rim each side
    assert np.abs(out - clean)[:, 68:74].mean() < 0.25 * np.abs(scratched - clean)[:, 68:74].mean()
    assert (
        np.abs(out - clean)[:, 98:103].mean() < 0.25 * np.abs(scratched - clean)[:, 98:103].mean()
    )
    changed = np.flatnonzero(np.abs(out - scratched).max(axis=0) > 0)
    assert set(changed) <= set(range(69, 73)) | set(range(99, 102))  # pole, stick untouched


def test_a_clean_frame_and_its_edges_are_left_alone() -> None:
    clean = scene()
    clean[:, :2] -= 15  # darkened outer columns, as scaling and encoding leave them
    out = clean.copy()
    assert remove_line_scratches(out, ScratchConfig()) == 0
    assert np.array_equal(out, clean)


def test_restore_video_remove_scratches_reports_and_keeps_timestamps(
    tmp_path: Path, tiny_weights: Path
) -> None:
    src = write_clip(tmp_path / "reel.mp4", Clip(width=128, height=96, frames=6, line=(60, 2)))
    report = tmp_path / "r.json"
    args = ["video", str(src), "--weights", str(tiny_weights), *FAST, "--report", str(report)]
    result = CliRunner().invoke(main, [*args, "--remove-scratches", "--no-colorize"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "reel_restored.mp4"
    assert frame_times(out) == frame_times(src)
    entry = json.loads(report.read_text())["files"][0]
    assert entry["dirt"]["scratched_frames"] == 6 and entry["dirt"]["frames"] == 6
    clean = write_clip(tmp_path / "clean.mp4", Clip(width=128, height=96, frames=6))
    truth = video_frames(clean, "gray")[3].astype(float)
    before, after = video_frames(src, "gray")[3], video_frames(out, "gray")[3]
    line = (slice(None), slice(60, 62))
    assert np.abs(before[line] - truth[line]).mean() > 30
    assert np.abs(after[line] - truth[line]).mean() < 6


def test_scratches_alone_align_no_neighbours(monkeypatch: pytest.MonkeyPatch) -> None:
    from restore.video import dirt

    def no_flow(*args: object) -> None:
        raise AssertionError("optical flow computed for scratch removal alone")

    monkeypatch.setattr(dirt, "_reduced", no_flow)
    frames = [scene() for _ in range(3)]
    for f in frames:
        f[:, 70:72] += 25
    stage: dirt.DirtRemover[np.ndarray] = dirt.DirtRemover(
        dirt.DirtConfig(remove_dirt=False, scratches=ScratchConfig()), lambda x: x
    )
    out = [done for f in frames for done in stage.push(f)] + stage.flush()
    assert [id(f) for f in out] == [id(f) for f in frames]  # each handed on at once, in order
    assert stage.stats.scratched == 3 and stage.stats.frames == 3

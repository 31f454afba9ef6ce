"""`restore video`: frames, timestamps, sound and every other stream survive colorization."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from restore import color
from restore.buffers import ArrayPool
from restore.cli import main
from restore.engine import Colorizer, EngineConfig, render_shape
from restore.errors import OutputPathError, UnsupportedMedia
from restore.jobs import TEMP_MARK
from restore.video import Batch, EncodeConfig, colorize_video, plan
from tests.media import Audio, Clip, frame_times, packets, video_frames, write_clip

FAST = ["--render-size", "64", "--batch-size", "4", "--device", "cpu", "--preset", "ultrafast",
        "--threads", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def colorizer(tiny_weights: Path) -> Colorizer:
    return Colorizer.from_weights(
        tiny_weights, EngineConfig(device="cpu", render_size=64, batch_size=4)
    )


def run_cli(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["video", *map(str, args)], catch_exceptions=False)
    return result.exit_code, result.output


def chroma_spread(path: Path) -> float:
    """Largest distance of any chroma sample from neutral: 0 for a black-and-white video."""
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        spread = 0.0
        for plane in frame.planes[1:3]:
            rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            spread = max(spread, float(np.abs(rows[:, : plane.width].astype(int) - 128).max()))
        return spread


# ----------------------------------------------------------------------------- streams


def test_mp4_with_aac_keeps_frames_timestamps_audio_and_metadata(
    tmp_path: Path, tiny_weights: Path
) -> None:
    src = write_clip(
        tmp_path / "film.mp4",
        Clip(
            audio=[Audio(language="eng")],
            metadata={"title": "Reel 1", "creation_time": "1931-05-02T10:00:00.000000Z"},
        ),
    )
    report = tmp_path / "report.json"
    code, out = run_cli(src, "--weights", tiny_weights, "--report", report, *FAST)
    assert code == 0, out

    dst = tmp_path / "film_restored.mp4"
    assert frame_times(dst) == frame_times(src)  # same count, every pts kept
    assert len(frame_times(dst)) == 25
    assert packets(dst, "audio") == packets(src, "audio")  # copied bit for bit, same pts
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        assert b.metadata["title"] == "Reel 1"
        assert b.metadata["creation_time"] == a.metadata["creation_time"]
        assert b.streams.audio[0].metadata.get("language") == "eng"
        assert abs(b.duration - a.duration) <= 1000  # microseconds
        vs = b.streams.video[0]
        assert (vs.codec_context.name, vs.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (vs.codec_context.width, vs.codec_context.height) == (96, 64)
    assert chroma_spread(dst) > 2  # it was colorized, not just re-encoded

    data = json.loads(report.read_text())
    assert data["exit_code"] == 0 and data["totals"]["done"] == 1
    entry = data["files"][0]
    assert entry["frames"] == 25 and entry["duration"] == pytest.approx(1.0)
    assert {
        "index": 1,
        "type": "audio",
        "codec": "aac",
        "action": "copied",
        "language": "eng",
    } in entry["streams"]


def test_mkv_two_audio_tracks_subtitles_chapters_rotation(
    tmp_path: Path, tiny_weights: Path
) -> None:
    clip = Clip(
        width=80,
        height=48,
        frames=20,
        audio=[Audio(language="eng"), Audio(rate=44100, language="fra", hz=330)],
        subtitles=[(100, 400, "Hello"), (500, 300, "World")],
        subtitle_language="deu",
        chapters_ms=[(0, 400, "Opening"), (400, 800, "End")],
        rotation=90,
        metadata={"title": "Two tracks"},
    )
    src = write_clip(tmp_path / "film.mkv", clip)
    dst = tmp_path / "out" / "colour.mkv"
    code, out = run_cli(src, "-o", dst, "--weights", tiny_weights, *FAST)
    assert code == 0, out

    assert frame_times(dst) == frame_times(src)
    assert packets(dst, "audio") == packets(src, "audio")
    subs = packets(dst, "subtitle")
    assert subs == packets(src, "subtitle") and [p[0] for p in subs[0]] == [b"Hello", b"World"]
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        assert [s.metadata.get("language") for s in b.streams.audio] == ["eng", "fra"]
        assert b.streams.subtitles[0].metadata.get("language") == "deu"
        assert b.metadata["title"] == "Two tracks"
        assert [(c["start"], c["end"], c["metadata"]) for c in b.chapters()] == [
            (c["start"], c["end"], c["metadata"]) for c in a.chapters()
        ]
        assert len(b.chapters()) == 2
        assert next(b.decode(video=0)).rotation == 90  # players turn it as they did the input


def test_variable_frame_rate_survives(tmp_path: Path, colorizer: Colorizer) -> None:
    pts = [0, 40, 80, 200, 240, 400, 410, 420, 430, 700, 1000, 1033]
    src = write_clip(
        tmp_path / "vfr.mp4", Clip(pts=pts, time_base=Fraction(1, 1000), audio=[Audio()])
    )
    dst = tmp_path / "vfr_out.mp4"
    result = colorize_video(src, dst, colorizer, EncodeConfig(preset="ultrafast"))
    assert frame_times(dst) == [Fraction(p, 1000) for p in pts] == frame_times(src)
    assert result.frames == len(pts)
    assert packets(dst, "audio") == packets(src, "audio")
    assert result.warnings == []


def test_odd_dimensions_are_padded_by_one_pixel(tmp_path: Path, colorizer: Colorizer) -> None:
    # x264 holds odd sizes only in 4:4:4; the input is 4:4:4, the output plays everywhere (4:2:0).
    src = write_clip(tmp_path / "odd.mkv", Clip(width=65, height=49, frames=6, pix_fmt="yuv444p"))
    dst = tmp_path / "odd_out.mkv"
    result = colorize_video(src, dst, colorizer, EncodeConfig(preset="ultrafast"))
    assert result.size == (66, 50)
    assert any("padded to 66x50" in w for w in result.warnings)
    assert frame_times(dst) == frame_times(src)
    before = video_frames(src)
    after = video_frames(dst)
    assert after[0].shape == (50, 66, 3)
    # The picture is not shifted or rescaled: lightness matches pixel for pixel.
    for a, b in zip(before, after, strict=True):
        la = color.rgb_to_l(color.to_float_rgb(a))
        lb = color.rgb_to_l(color.to_float_rgb(b[:49, :65]))
        assert np.abs(la - lb).mean() < 2.5
        # the extra column and row repeat the last ones
        full = color.rgb_to_l(color.to_float_rgb(b))
        assert np.abs(full[:49, 65] - full[:49, 64]).mean() < 3
        assert np.abs(full[49, :65] - full[48, :65]).mean() < 3


def test_full_range_input_keeps_its_tones(tmp_path: Path, colorizer: Colorizer) -> None:
    # Y=40 / Y=200 in full range; read as limited range they would come out darker / clipped.
    src = write_clip(
        tmp_path / "jpeg_range.mp4", Clip(frames=4, pix_fmt="yuvj420p", levels=(40, 200))
    )
    dst = tmp_path / "jpeg_range_out.mp4"
    colorize_video(src, dst, colorizer, EncodeConfig(preset="ultrafast"))
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.color_range == 1  # limited, tagged
        assert c.streams.video[0].codec_context.colorspace == 1  # BT.709
    out = video_frames(dst)[1]
    lightness = color.rgb_to_l(color.to_float_rgb(out))
    expected = color.gray_to_l(np.array([40, 200], np.uint8))
    assert abs(float(np.median(lightness[:, 8:40])) - expected[0]) < 1.5
    assert abs(float(np.median(lightness[:, 56:88])) - expected[1]) < 1.5


# ----------------------------------------------------------------------------- damage


def test_truncated_file_colorizes_what_decodes_and_warns(
    tmp_path: Path, tiny_weights: Path
) -> None:
    whole = write_clip(tmp_path / "whole.mkv", Clip(frames=50, audio=[Audio(seconds=2.0)]))
    data = whole.read_bytes()
    src = tmp_path / "cut.mkv"
    src.write_bytes(data[: int(len(data) * 0.6)])
    whole.unlink()
    decodable = frame_times(src)
    assert 5 < len(decodable) < 50

    report = tmp_path / "r.json"
    code, out = run_cli(src, "--weights", tiny_weights, "--report", report, *FAST)
    assert code == 0, out
    assert frame_times(tmp_path / "cut_restored.mkv") == decodable
    entry = json.loads(report.read_text())["files"][0]
    assert entry["status"] == "done" and entry["frames"] == len(decodable)
    assert any(
        w.startswith(f"decoding stopped at frame {len(decodable)}") for w in entry["warnings"]
    )
    assert "decoding stopped" in out


def test_unreadable_file_fails_and_the_rest_goes_on(tmp_path: Path, tiny_weights: Path) -> None:
    folder = tmp_path / "reels"
    folder.mkdir()
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 8)
    write_clip(folder / "good.mp4", Clip(frames=5))
    report = tmp_path / "r.json"
    code, out = run_cli(folder, "--weights", tiny_weights, "--report", report, *FAST)
    assert code == 1, out
    files = {Path(f["input"]).name: f for f in json.loads(report.read_text())["files"]}
    assert files["broken.mp4"]["status"] == "failed" and files["broken.mp4"]["error"]
    assert files["good.mp4"]["status"] == "done"
    assert (tmp_path / "reels_restored" / "good.mp4").is_file()
    assert not (tmp_path / "reels_restored" / "broken.mp4").exists()


def test_library_raises_unsupported_media_for_a_non_video(
    tmp_path: Path, colorizer: Colorizer
) -> None:
    src = tmp_path / "notes.mp4"
    src.write_text("not a film")
    with pytest.raises(UnsupportedMedia):
        colorize_video(src, tmp_path / "out.mp4", colorizer)


# ----------------------------------------------------------------------------- job behaviour


def test_interrupt_leaves_no_partial_output(
    tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_clip(tmp_path / "film.mp4", Clip(frames=30, audio=[Audio()]))
    calls = {"n": 0}
    real = Colorizer.render

    def interrupted(
        self: Colorizer, lightness: list[np.ndarray], pool: ArrayPool | None = None
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, lightness, pool)

    monkeypatch.setattr(Colorizer, "render", interrupted)
    code, out = run_cli(src, "--weights", tiny_weights, *FAST)
    assert code == 130, out
    assert calls["n"] == 3
    assert not (tmp_path / "film_restored.mp4").exists()
    assert [p.name for p in tmp_path.iterdir() if TEMP_MARK in p.name] == []

    monkeypatch.setattr(Colorizer, "render", real)
    code, out = run_cli(src, "--weights", tiny_weights, *FAST)  # the re-run does the file
    assert code == 0, out
    assert frame_times(tmp_path / "film_restored.mp4") == frame_times(src)


def test_rerun_skips_finished_outputs_unless_overwrite(tmp_path: Path, tiny_weights: Path) -> None:
    src = write_clip(tmp_path / "a.mkv", Clip(frames=4))
    report = tmp_path / "r.json"
    assert run_cli(src, "--weights", tiny_weights, *FAST)[0] == 0
    out = tmp_path / "a_restored.mkv"
    stamp = out.stat().st_mtime_ns
    assert run_cli(src, "--weights", tiny_weights, "--report", report, *FAST)[0] == 0
    assert json.loads(report.read_text())["totals"]["skipped"] == 1
    assert out.stat().st_mtime_ns == stamp
    code, _ = run_cli(src, "--weights", tiny_weights, "--overwrite", "--report", report, *FAST)
    assert code == 0 and json.loads(report.read_text())["totals"]["done"] == 1
    # the folder walk does not take our own output for an input
    assert [t.input for t in plan([tmp_path]).tasks] == [src]


def test_audio_the_container_cannot_hold_is_reencoded_not_dropped(
    tmp_path: Path, tiny_weights: Path
) -> None:
    src = write_clip(
        tmp_path / "opus.mkv",
        Clip(frames=25, audio=[Audio(codec="libopus")], subtitles=[(0, 500, "Hi")]),
    )
    dst = tmp_path / "film.avi"
    report = tmp_path / "r.json"
    code, out = run_cli(src, "-o", dst, "--weights", tiny_weights, "--report", report, *FAST)
    assert code == 0, out
    entry = json.loads(report.read_text())["files"][0]
    actions = {(s["type"], s["action"]) for s in entry["streams"]}
    assert actions == {("video", "colorized"), ("audio", "re-encoded"), ("subtitle", "dropped")}
    assert any("re-encoded as" in w for w in entry["warnings"])
    assert any("subtitle stream #2" in w and "left out" in w for w in entry["warnings"])
    assert len(frame_times(dst)) == 25
    with av.open(str(dst)) as c:
        audio = c.streams.audio[0]
        assert audio.codec_context.name in ("mp3", "mp3float", "aac")
        seconds = sum(p[2] for p in packets(dst, "audio")[0])
        assert abs(float(seconds) - 1.0) < 0.1


def test_temporal_stage_sees_every_frame_in_order_and_its_ab_is_used(
    tmp_path: Path, colorizer: Colorizer
) -> None:
    src = write_clip(tmp_path / "film.mp4", Clip(frames=10, audio=[Audio()]))
    seen: list[int] = []

    def gray_stage(batches: Iterator[Batch]) -> Iterator[Batch]:
        held: list[Batch] = []
        for batch in batches:  # holds one batch back, as a look-ahead filter would
            for item in batch.items:
                small = render_shape(*item.lightness.shape, colorizer.config.render_size)
                assert item.ab is not None and item.ab.shape == (*small, 2)
                seen.append(item.pts)
                item.ab = np.zeros_like(item.ab)
            held.append(batch)
            if len(held) > 1:
                yield held.pop(0)
        yield from held

    dst = tmp_path / "gray.mp4"
    colorize_video(src, dst, colorizer, EncodeConfig(preset="ultrafast"), stage=gray_stage)
    with av.open(str(src)) as c:
        tb = c.streams.video[0].time_base
    assert [p * tb for p in seen] == frame_times(src)  # all ten, in order
    assert chroma_spread(dst) <= 2  # the stage's ab (none) reached the encoder
    assert frame_times(dst) == frame_times(src)
    assert packets(dst, "audio") == packets(src, "audio")


def test_frames_stream_through_a_bounded_pipeline(
    tmp_path: Path, colorizer: Colorizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import restore.video.pipeline as pipeline

    src = write_clip(tmp_path / "long.mkv", Clip(width=64, height=48, frames=200))
    decoded = {"n": 0}
    real = pipeline.frame_lightness

    def counting(frame: av.VideoFrame, out: np.ndarray | None = None) -> np.ndarray:
        decoded["n"] += 1
        return real(frame, out)

    monkeypatch.setattr(pipeline, "frame_lightness", counting)
    pools: list[ArrayPool] = []

    class Recorded(ArrayPool):
        def __init__(self) -> None:
            super().__init__()
            pools.append(self)

    monkeypatch.setattr(pipeline, "ArrayPool", Recorded)
    ahead: list[int] = []

    def watch(batches: Iterator[Batch]) -> Iterator[Batch]:
        seen = 0
        for batch in batches:
            seen += len(batch.items)
            ahead.append(decoded["n"] - seen)  # frames read but not yet past this point
            yield batch

    result = colorize_video(
        src, tmp_path / "o.mkv", colorizer, EncodeConfig(preset="ultrafast"), stage=watch
    )
    assert result.frames == 200 and len(ahead) == 50
    assert max(ahead) <= 2 * colorizer.config.batch_size  # the reader never runs ahead
    # Each frame's L, and its L and ab at render size, come from recycled buffers: as many as
    # are alive at once (a few batches), not three per frame.
    (pool,) = pools
    assert 0 < pool.allocated <= 3 * 8 * colorizer.config.batch_size < 3 * 200


# ----------------------------------------------------------------------------- usage


def test_missing_default_weights_is_a_clear_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESTORE_WEIGHTS", str(tmp_path / "none.safetensors"))
    src = write_clip(tmp_path / "a.mp4", Clip(frames=2))
    result = CliRunner().invoke(main, ["video", str(src)])
    assert result.exit_code == 2
    assert "--weights" in result.output and "none.safetensors" in result.output


def test_unknown_codec_is_a_usage_error(tmp_path: Path, tiny_weights: Path) -> None:
    src = write_clip(tmp_path / "a.mp4", Clip(frames=2))
    code, out = run_cli(src, "--weights", tiny_weights, "--codec", "nosuchcodec")
    assert code == 2 and "nosuchcodec" in out


def pairs(paths: list[Path], output: Path | None = None) -> list[tuple[Path, Path | None]]:
    return [(t.input, t.output) for t in plan(paths, output).tasks]


def test_films_are_planned_by_the_photo_rules(tmp_path: Path) -> None:
    films = tmp_path / "films"
    (films / "day1").mkdir(parents=True)
    for name in ("day1/a.mp4", "b.mkv", "b_restored.mkv", ".hidden.mp4", "notes.txt"):
        (films / name).write_bytes(b"x")
    (films / f".c{TEMP_MARK}-1.mp4").write_bytes(b"x")

    # a folder is mirrored beside itself: an archive folder is only read
    mirror = (tmp_path / "films_restored").resolve()
    assert pairs([films]) == [
        (films / "b.mkv", mirror / "b.mkv"),
        (films / "day1/a.mp4", mirror / "day1/a.mp4"),
    ]
    assert [(t.input.name, t.skip is not None) for t in plan([films]).passed_over] == [
        ("notes.txt", True)
    ]
    out = tmp_path / "colour"
    assert pairs([films], out) == [
        (films / "b.mkv", out / "b.mkv"),
        (films / "day1/a.mp4", out / "day1/a.mp4"),
    ]
    assert pairs([films / "b.mkv"]) == [(films / "b.mkv", films / "b_restored.mkv")]
    assert pairs([films / "b.mkv"], out / "x.mov") == [(films / "b.mkv", out / "x.mov")]
    with pytest.raises(OutputPathError):
        plan([films], out / "x.mp4")  # one file name for a folder of films
    with pytest.raises(OutputPathError):
        plan([films], films)  # the input folder itself
    # an output that would overwrite an input fails that film only
    (problem,) = [t.problem for t in plan([films / "b.mkv"], films / "b.mkv").tasks]
    assert problem is not None and "overwrite an input" in problem
    # two films that would write the same output: the second is failed, not lost
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "b.mkv").write_bytes(b"x")
    tasks = plan([films, tmp_path / "more"], out).tasks
    assert [t.problem is not None for t in tasks] == [False, False, True]
    # an output folder inside the input folder is not walked on the next run
    (films / "colour").mkdir()
    (films / "colour" / "b.mkv").write_bytes(b"x")
    assert [s for s, _ in pairs([films], films / "colour")] == [
        films / "b.mkv",
        films / "day1/a.mp4",
    ]


def test_a_film_planned_to_fail_is_reported_and_the_others_done(
    tmp_path: Path, tiny_weights: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_clip(tmp_path / "a" / "x.mp4", Clip(frames=2))
    write_clip(tmp_path / "b" / "x.mp4", Clip(frames=2))
    report = tmp_path / "r.json"
    code, _ = run_cli(tmp_path / "a", tmp_path / "b", "-o", tmp_path / "out", "--weights",
                      tiny_weights, "--report", report, *FAST)  # fmt: skip
    totals = json.loads(report.read_text())["totals"]
    assert code == 1 and totals["done"] == 1 and totals["failed"] == 1
    assert (tmp_path / "out" / "x.mp4").is_file()


def test_parallel_generator_calls_keep_frames_and_order(
    tmp_path: Path, tiny_weights: Path, colorizer: Colorizer
) -> None:
    src = write_clip(tmp_path / "in.mp4", Clip(width=64, height=48, frames=37))
    parallel = Colorizer.from_weights(
        tiny_weights, EngineConfig(device="cpu", render_size=64, batch_size=4, workers=3)
    )
    encode = EncodeConfig(preset="ultrafast", threads=1)
    one = colorize_video(src, tmp_path / "one.mp4", colorizer, encode)
    three = colorize_video(src, tmp_path / "three.mp4", parallel, encode)
    assert one.frames == three.frames == 37
    assert frame_times(tmp_path / "three.mp4") == frame_times(src)
    a, b = video_frames(tmp_path / "one.mp4"), video_frames(tmp_path / "three.mp4")
    diff = max(int(np.abs(x.astype(int) - y).max()) for x, y in zip(a, b, strict=True))
    assert diff == 0


def test_stages_get_the_render_size_lightness_the_generator_saw(
    tmp_path: Path, colorizer: Colorizer
) -> None:
    src = write_clip(tmp_path / "s.mp4", Clip(width=96, height=80, frames=6))
    seen: list[int] = []

    def spy(batches: Iterator[Batch]) -> Iterator[Batch]:
        for batch in batches:
            for it in batch.items:
                assert it.small is not None and it.ab is not None
                assert it.small.shape == it.ab.shape[:2]
                np.testing.assert_array_equal(it.small, colorizer.downsize(it.lightness))
                seen.append(1)
            yield batch

    colorize_video(src, tmp_path / "o.mp4", colorizer, EncodeConfig(preset="ultrafast"), stage=spy)
    assert len(seen) == 6


def test_every_frame_keeps_its_own_lightness(tmp_path: Path, colorizer: Colorizer) -> None:
    """Frames pass through queues and threads in batches: each output frame must carry its
    own input frame's lightness, not a neighbour's."""
    src = write_clip(tmp_path / "in.mp4", Clip(width=64, height=48, frames=60))
    dst = tmp_path / "out.mp4"
    colorize_video(src, dst, colorizer, EncodeConfig(preset="ultrafast", crf=0))
    ins, outs = video_frames(src), video_frames(dst)
    assert len(ins) == len(outs) == 60
    for i, (a, b) in enumerate(zip(ins, outs, strict=True)):
        la, lb = (color.rgb_to_l(color.to_float_rgb(x)) for x in (a, b))
        own = float(np.abs(la - lb).mean())
        assert own < 2.0, (i, own)
        if i + 8 < len(ins):  # the gradient moves: another frame's L is far off
            other = float(np.abs(color.rgb_to_l(color.to_float_rgb(ins[i + 8])) - lb).mean())
            assert other > 2 * own + 1.0, (i, own, other)


def test_free_heap_pages_are_released_as_the_film_goes(
    tmp_path: Path, colorizer: Colorizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import restore.video.pipeline as pipeline

    calls: list[int] = []
    monkeypatch.setattr(pipeline, "RELEASE_EVERY", 8)
    monkeypatch.setattr(pipeline, "release_free_memory", lambda: calls.append(1))
    src = write_clip(tmp_path / "in.mp4", Clip(width=64, height=48, frames=40))
    colorize_video(src, tmp_path / "out.mp4", colorizer, EncodeConfig(preset="ultrafast"))
    assert len(calls) == 40 // 8  # batches of 4: once every 8 frames


def test_a_file_without_video_fails_and_leaves_no_folder_behind(
    tmp_path: Path, tiny_weights: Path
) -> None:
    src = tmp_path / "voice.m4a"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("aac", rate=48000)
        for i in range(5):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.rate, frame.pts = 48000, i * 1024
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    code, text = run_cli(src, "-o", tmp_path / "out.m4a", "--weights", tiny_weights, *FAST)
    assert code == 1 and "video" in text
    assert not (tmp_path / "out.m4a").exists()  # the output folder made for it is gone again


def test_a_film_another_live_job_is_writing_is_skipped(tmp_path: Path, tiny_weights: Path) -> None:
    from restore import jobs

    src = write_clip(tmp_path / "a.mp4", Clip(frames=2))
    dst = tmp_path / "a_restored.mp4"
    other = jobs.claim(dst)  # an overlapping cron run working on it
    assert other is not None
    report = tmp_path / "r.json"
    code, _ = run_cli(src, "--weights", tiny_weights, "--report", report, *FAST)
    entry = json.loads(report.read_text())["files"][0]
    assert code == 0 and entry["status"] == "skipped" and entry["reason"] == jobs.BUSY
    assert not dst.exists()
    other.release()
    code, _ = run_cli(src, "--weights", tiny_weights, *FAST)
    assert code == 0 and dst.exists()


def test_a_dead_runs_partial_film_is_removed_and_the_film_made(
    tmp_path: Path, tiny_weights: Path
) -> None:
    from restore.jobs import temp_path_for

    src = write_clip(tmp_path / "a.mp4", Clip(frames=3))
    dst = tmp_path / "a_restored.mp4"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid whose process has ended: what kill -9 leaves
    partial = temp_path_for(dst, dead.pid)
    partial.write_bytes(b"half a film")
    code, out = run_cli(src, "--weights", tiny_weights, *FAST)
    assert code == 0, out
    assert not partial.exists() and dst.is_file()
    assert "removed 1 unfinished" in out

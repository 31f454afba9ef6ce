"""The Ray engine (`--engine ray`) on a local two-CPU cluster started once for the module."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import ray
from click.testing import CliRunner, Result
from PIL import Image

from restore import photos
from restore.cli import main
from restore.cluster import RayOptions
from restore.cluster import photos as cluster_photos
from restore.cluster import video as cluster_video
from restore.jobs import FileResult, Status, claim, temp_path_for
from restore.plan import Task
from restore.startup import EngineOptions
from restore.video import EncodeConfig, VideoResult
from restore.video.items import Window
from restore.video.job import VideoJobConfig
from restore.video.segments import plan_segments
from tests.conftest import synthetic_photo
from tests.media import Audio, Clip, frame_times, packets, video_frames, write_clip

FAST = ["--render-size", "64", "--device", "cpu", "--precision", "fp32"]
ON_RAY = ["--engine", "ray", "--ray-workers", "2", "--ray-cpus-per-worker", "1"]


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    # Workers unpickle the test's worker classes by value: they cannot import `tests`.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20)
    yield
    ray.shutdown()


def gray(h: int, w: int, seed: int) -> np.ndarray:
    return cv2.cvtColor(synthetic_photo(h, w, seed), cv2.COLOR_RGB2GRAY)


@pytest.fixture
def album(tmp_path: Path) -> Path:
    root = tmp_path / "album"
    (root / "1925" / "summer").mkdir(parents=True)
    Image.fromarray(gray(40, 56, 0)).save(root / "a.jpg")
    Image.fromarray(gray(48, 32, 1)).save(root / "1925" / "b.png")
    Image.fromarray(gray(64, 64, 2)).save(root / "1925" / "summer" / "c.tif")
    Image.fromarray(synthetic_photo(30, 44, 3)).save(root / "1925" / "d.jpg")
    (root / "1925" / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["photos", *map(str, args)])


def files_below(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}


def test_photos_on_ray_equal_the_local_run(album: Path, tmp_path: Path, tiny_weights: Path) -> None:
    local = invoke(album, "-o", tmp_path / "local", "--weights", tiny_weights, *FAST)
    assert local.exit_code == 1, local.output  # broken.jpg
    report = tmp_path / "report.json"
    on_ray = invoke(
        album, "-o", tmp_path / "ray", "--weights", tiny_weights, *FAST, *ON_RAY,
        "--report", report,
    )  # fmt: skip
    assert on_ray.exit_code == 1, on_ray.output
    ours, theirs = files_below(tmp_path / "ray"), files_below(tmp_path / "local")
    assert (
        ours.keys() == theirs.keys() == {"a.jpg", "1925/b.png", "1925/summer/c.tif", "1925/d.jpg"}
    )
    for name, path in ours.items():
        a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(int)
        b = cv2.imread(str(theirs[name]), cv2.IMREAD_UNCHANGED).astype(int)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1, name
    data = json.loads(report.read_text())
    statuses = {Path(f["input"]).name: f["status"] for f in data["files"]}
    assert statuses == {
        "a.jpg": "done", "b.png": "done", "c.tif": "done", "d.jpg": "done", "broken.jpg": "failed"
    }  # fmt: skip
    assert data["weights"] is not None

    again = invoke(
        album, "-o", tmp_path / "ray", "--weights", tiny_weights, *FAST, *ON_RAY,
        "--report", report,
    )  # fmt: skip
    assert again.exit_code == 1  # broken.jpg still fails; the rest is skipped as finished
    statuses = {Path(f["input"]).name: f["status"] for f in json.loads(report.read_text())["files"]}
    assert statuses == {
        "a.jpg": "skipped", "b.png": "skipped", "c.tif": "skipped", "d.jpg": "skipped",
        "broken.jpg": "failed",
    }  # fmt: skip


class DiesOnce(cluster_photos.PhotoWorker):
    """Dies mid-file the first time any worker of its kind is called, leaving a partial
    output and a claim lock file, as a worker killed by the out-of-memory killer would."""

    marker: Path

    def run(self, tasks: list[Task]) -> list[FileResult]:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            return super().run(tasks)
        os.close(fd)
        out = tasks[0].output
        assert out is not None
        assert claim(out) is not None  # held by this process until it dies
        temp_path_for(out).write_bytes(b"half an image")
        os._exit(1)


def test_a_killed_worker_leaves_no_partial_file_and_the_job_completes(
    album: Path, tmp_path: Path, tiny_weights: Path
) -> None:
    planned = photos.plan([album], tmp_path / "out")
    worker = type("DiesOnceHere", (DiesOnce,), {"marker": tmp_path / "died"})
    engine = EngineOptions(tiny_weights, "cpu", "fp32", "openvino", None, 64, False, 1.0, 1)
    results: list[FileResult] = []
    cluster_photos.run(
        planned.tasks,
        engine,
        photos.PhotosConfig(),
        RayOptions(workers=2, cpus_per_worker=1),
        ray,
        results.append,
        worker_class=worker,
    )
    assert (tmp_path / "died").exists()
    by_name = {r.input.name: r.status for r in results}
    assert len(results) == len(planned.tasks) == 5
    assert by_name == {
        "a.jpg": Status.DONE, "b.png": Status.DONE, "c.tif": Status.DONE,
        "d.jpg": Status.DONE, "broken.jpg": Status.FAILED,
    }  # fmt: skip
    left = [p.name for p in (tmp_path / "out").rglob("*") if "restore-partial" in p.name]
    assert left == []


def test_unloadable_weights_stop_the_job_as_a_usage_error(album: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    r = invoke(album, "-o", tmp_path / "out", "--weights", bad, *FAST, *ON_RAY)
    assert r.exit_code == 2, r.output
    assert not (tmp_path / "out" / "a.jpg").exists()


def test_without_ray_the_ray_engine_says_how_to_install_it(
    album: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("restore.cluster.ray_available", lambda: False)
    r = invoke(album, "-o", tmp_path / "out", *ON_RAY)
    assert r.exit_code == 2
    assert "pip install 'restore[ray]'" in r.output


def test_threads_with_the_ray_engine_is_a_usage_error(album: Path, tmp_path: Path) -> None:
    r = invoke(album, "-o", tmp_path / "out", *ON_RAY, "--threads", "1")
    assert r.exit_code == 2 and "--ray-cpus-per-worker" in r.output
    assert not (tmp_path / "out").exists()  # refused before any work


# -------------------------------------------------------------------------------- video

VIDEO_FAST = ["--render-size", "64", "--batch-size", "4", "--device", "cpu", "--preset",
              "ultrafast"]  # fmt: skip
SEGMENTS = ["--ray-segment-seconds", "1"]


def run_video(*args: object) -> Result:
    return CliRunner().invoke(main, ["video", *map(str, args)], catch_exceptions=False)


@pytest.fixture
def film(tmp_path: Path) -> Path:
    """3 s at 25 fps, a keyframe every 10 frames, two audio tracks, subtitles, chapters."""
    clip = Clip(
        width=80,
        height=48,
        frames=75,
        gop=10,
        audio=[Audio(language="eng", seconds=3.0), Audio(rate=44100, language="fra", hz=330)],
        subtitles=[(100, 400, "Hello"), (1500, 800, "World")],
        chapters_ms=[(0, 1200, "Opening"), (1200, 3000, "End")],
        metadata={"title": "Reel 2"},
    )
    return write_clip(tmp_path / "film.mkv", clip)


def test_video_on_ray_equals_the_local_run(film: Path, tmp_path: Path, tiny_weights: Path) -> None:
    # Lossless video, so the comparison sees the colours, not two encoders' rounding.
    common = ["--weights", tiny_weights, *VIDEO_FAST, "--codec", "ffv1"]
    local, on_ray = tmp_path / "local.mkv", tmp_path / "ray.mkv"
    assert run_video(film, "-o", local, *common).exit_code == 0
    report = tmp_path / "report.json"
    r = run_video(film, "-o", on_ray, *common, *ON_RAY, *SEGMENTS, "--report", report)
    assert r.exit_code == 0, r.output

    entry = json.loads(report.read_text())["files"][0]
    assert entry["segments"] == 3 and entry["frames"] == 75
    assert entry["duration"] == pytest.approx(3.0)
    assert frame_times(on_ray) == frame_times(local) == frame_times(film)
    assert packets(on_ray, "audio") == packets(film, "audio")
    assert packets(on_ray, "subtitle") == packets(film, "subtitle")
    with av.open(str(film)) as a, av.open(str(on_ray)) as b:
        assert b.metadata["title"] == "Reel 2"
        assert [s.metadata.get("language") for s in b.streams.audio] == ["eng", "fra"]
        assert [(c["start"], c["end"]) for c in b.chapters()] == [
            (c["start"], c["end"]) for c in a.chapters()
        ]
    # The stored planes: RGB would magnify a one-level chroma step several times.
    ours, theirs = video_frames(on_ray, "yuv420p"), video_frames(local, "yuv420p")
    worst = max(
        int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(ours, theirs, strict=True)
    )
    assert worst <= 2
    assert not list(tmp_path.glob(".*restore-segments"))  # joined: the segments are gone


def test_h264_segments_join_into_one_stream(film: Path, tmp_path: Path, tiny_weights: Path) -> None:
    local, out = tmp_path / "local.mp4", tmp_path / "ray.mp4"
    assert run_video(film, "-o", local, "--weights", tiny_weights, *VIDEO_FAST).exit_code == 0
    r = run_video(film, "-o", out, "--weights", tiny_weights, *VIDEO_FAST, *ON_RAY, *SEGMENTS)
    assert r.exit_code == 0, r.output
    assert frame_times(out) == frame_times(local) == frame_times(film)
    assert packets(out, "audio") == packets(local, "audio")
    assert len(video_frames(out)) == 75  # every packet decodes
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"

    report = tmp_path / "again.json"
    again = run_video(film, "-o", out, "--weights", tiny_weights, *VIDEO_FAST, *ON_RAY,
                      "--report", report)  # fmt: skip
    assert again.exit_code == 0
    assert json.loads(report.read_text())["files"][0]["status"] == "skipped"


class CountsSegments(cluster_video.VideoWorker):
    """Records each segment it is sent; with ``fail_on`` set, that segment fails."""

    log: Path
    fail_on: int | None = None

    def segment(self, src: Path, dst: Path, window: Window) -> VideoResult | str:
        index = int(dst.stem)
        with open(self.log, "a") as f:
            f.write(f"{index}\n")
        if index == self.fail_on:
            return "the disk was full"
        return super().segment(src, dst, window)


def test_an_interrupted_film_reuses_its_finished_segments(
    film: Path, tmp_path: Path, tiny_weights: Path
) -> None:
    dst = tmp_path / "out.mkv"
    engine = EngineOptions(tiny_weights, "cpu", "fp32", "openvino", 4, 64, False, 1.0, 1)
    config = VideoJobConfig(encode=EncodeConfig(preset="ultrafast"))
    options = RayOptions(workers=2, cpus_per_worker=1)
    log = tmp_path / "calls.txt"

    def attempt(fail_on: int | None) -> list[FileResult]:
        worker = type("Worker", (CountsSegments,), {"log": log, "fail_on": fail_on})
        results: list[FileResult] = []
        cluster_video.run([Task(film, dst)], engine, config, options, ray, results.append,
                          segment_seconds=1.0, worker_class=worker)  # fmt: skip
        return results

    (first,) = attempt(fail_on=1)
    assert first.status == Status.FAILED and "the disk was full" in (first.error or "")
    assert not dst.exists()
    assert sorted(map(int, log.read_text().split())) == [0, 1, 2]
    log.unlink()

    (second,) = attempt(fail_on=None)
    assert second.status == Status.DONE, second.error
    assert log.read_text().split() == ["1"]  # segments 0 and 2 were reused
    assert frame_times(dst) == frame_times(film)
    assert not list(tmp_path.glob(".*restore-segments"))


@pytest.mark.parametrize("gop, starts", [(10, [None, 0.8, 2.0]), (250, [None])])
def test_segments_start_on_keyframes_and_cover_the_film(
    tmp_path: Path, gop: int, starts: list[float | None]
) -> None:
    src = write_clip(tmp_path / "film.mp4", Clip(frames=75, gop=gop))
    windows = plan_segments(src, seconds=1.0)
    with av.open(str(src)) as c:
        tb = c.streams.video[0].time_base
        keys = {p.pts for p in c.demux(video=0) if p.is_keyframe}
    got = [None if w.start is None else float(w.start * tb) for w in windows]
    assert got[0] is None and all(w.start in keys for w in windows[1:])
    assert got == pytest.approx(starts)  # the keyframe at or before each whole second
    assert [w.end for w in windows[:-1]] == [w.start for w in windows[1:]]  # contiguous
    assert windows[-1].end is None


class DiesOnFirstSegment(cluster_video.VideoWorker):
    """Dies mid-segment the first time any worker of its kind is called, leaving a partial
    segment file behind."""

    marker: Path

    def segment(self, src: Path, dst: Path, window: Window) -> VideoResult | str:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            return super().segment(src, dst, window)
        os.close(fd)
        temp_path_for(dst).write_bytes(b"half a segment")
        os._exit(1)


def test_a_killed_video_worker_is_replaced_and_the_film_completes(
    film: Path, tmp_path: Path, tiny_weights: Path
) -> None:
    dst = tmp_path / "out.mkv"
    engine = EngineOptions(tiny_weights, "cpu", "fp32", "openvino", 4, 64, False, 1.0, 1)
    worker = type("Worker", (DiesOnFirstSegment,), {"marker": tmp_path / "died"})
    results: list[FileResult] = []
    cluster_video.run(
        [Task(film, dst)],
        engine,
        VideoJobConfig(encode=EncodeConfig(preset="ultrafast")),
        RayOptions(workers=2, cpus_per_worker=1),
        ray,
        results.append,
        segment_seconds=1.0,
        worker_class=worker,
    )
    assert (tmp_path / "died").exists()
    (result,) = results
    assert result.status == Status.DONE, result.error
    assert frame_times(dst) == frame_times(film)
    assert [p.name for p in tmp_path.rglob("*") if "restore-partial" in p.name] == []
    assert not list(tmp_path.glob(".*restore-segments"))

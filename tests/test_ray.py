"""The Ray engine (`--engine ray`) on a local two-CPU cluster started once for the module."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

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
from restore.jobs import FileResult, Status, claim, temp_path_for
from restore.startup import EngineOptions
from tests.conftest import synthetic_photo

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

    def run(self, tasks: list[photos.PhotoTask]) -> list[FileResult]:
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

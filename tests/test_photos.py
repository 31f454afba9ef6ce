"""The photos job: planning outputs, full-resolution merge, resume after interruption."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from restore import color, jobs, photos
from restore.engine import Colorizer, EngineConfig
from restore.errors import OutputPathError
from restore.jobs import TEMP_MARK, FileResult, Status
from restore.plan import Task, remove_stale_temps
from tests.conftest import synthetic_photo


def gray(h: int, w: int, seed: int = 0) -> np.ndarray:
    return cv2.cvtColor(synthetic_photo(h, w, seed), cv2.COLOR_RGB2GRAY)


def make_tree(root: Path) -> list[Path]:
    """A small nested collection: gray and colour, several formats and sizes."""
    files = [
        root / "a.jpg",
        root / "1930s" / "b.png",
        root / "1930s" / "wedding" / "c.tif",
        root / "1930s" / "wedding" / "d.webp",
        root / "e.bmp",
    ]
    for i, f in enumerate(files):
        f.parent.mkdir(parents=True, exist_ok=True)
        pixels = (
            synthetic_photo(40 + 8 * i, 64 - 4 * i, seed=i) if i % 2 else gray(48, 40 + 8 * i, i)
        )
        Image.fromarray(pixels).save(f)
    (root / "notes.txt").write_text("not a photo")
    (root / ".hidden").mkdir()
    Image.fromarray(gray(20, 20)).save(root / ".hidden" / "x.jpg")
    Image.fromarray(gray(20, 20)).save(root / "._a.jpg")  # a macOS resource fork's name
    return files


@pytest.fixture(scope="module")
def colorizer(tiny_weights: Path) -> Colorizer:
    config = EngineConfig(device="cpu", precision="fp32", render_size=64, batch_size=3)
    return Colorizer.from_weights(tiny_weights, config)


def run_all(tasks: tuple[Task, ...], colorizer: Colorizer, **kw: object) -> list[FileResult]:
    results: list[FileResult] = []
    photos.run(tasks, colorizer, photos.PhotosConfig(**kw), results.append)  # type: ignore[arg-type]
    return results


def temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if TEMP_MARK in p.name]


# ----------------------------------------------------------------------------- planning


def test_plan_mirrors_the_tree_beside_the_folder(tmp_path: Path) -> None:
    files = make_tree(tmp_path / "scans")
    p = photos.plan([tmp_path / "scans"])
    out_root = (tmp_path / "scans_restored").resolve()
    assert [t.input for t in p.tasks] == sorted(files, key=lambda f: (len(f.parts), f))
    for t in p.tasks:
        assert t.problem is None
        assert t.output == out_root / t.input.relative_to(tmp_path / "scans")
    assert p.output_roots == (out_root,)


def test_plan_never_walks_its_own_outputs(tmp_path: Path) -> None:
    files = make_tree(tmp_path / "scans")
    out = tmp_path / "scans" / "colour"  # an output folder inside the input
    out.mkdir()
    Image.fromarray(gray(8, 8)).save(out / "a.jpg")
    Image.fromarray(gray(8, 8)).save(tmp_path / "scans" / "a_restored.jpg")  # beside a.jpg
    (tmp_path / "scans" / "1930s_restored").mkdir()  # beside 1930s/
    Image.fromarray(gray(8, 8)).save(tmp_path / "scans" / "1930s_restored" / "b.png")
    (tmp_path / "scans" / f".a{TEMP_MARK}-1.jpg").write_bytes(b"partial")
    p = photos.plan([tmp_path / "scans"], out)
    assert sorted(t.input for t in p.tasks) == sorted(files)
    assert all(t.output is not None and t.output.is_relative_to(out) for t in p.tasks)


def test_plan_for_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jpg", tmp_path / "b.PNG"
    for f in (a, b):
        Image.fromarray(gray(8, 8)).save(f, format="JPEG" if f == a else "PNG")
    assert [t.output for t in photos.plan([a, b]).tasks] == [
        tmp_path / "a_restored.jpg",
        tmp_path / "b_restored.PNG",
    ]
    assert [t.output for t in photos.plan([a, b], tmp_path / "out").tasks] == [
        tmp_path / "out" / "a.jpg",
        tmp_path / "out" / "b.PNG",
    ]
    assert photos.plan([a], tmp_path / "colour.jpg").tasks[0].output == tmp_path / "colour.jpg"
    (tmp_path / "notes.txt").write_text("x")
    assert photos.plan([tmp_path / "notes.txt"]).tasks == ()


def test_plan_refuses_to_overwrite_inputs(tmp_path: Path) -> None:
    make_tree(tmp_path / "scans")
    with pytest.raises(OutputPathError, match="is the input folder"):
        photos.plan([tmp_path / "scans"], tmp_path / "scans")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="existing file"):
        photos.plan([tmp_path / "scans"], tmp_path / "file")
    # Two folders with the same layout into one output: the second copy is failed, not lost.
    make_tree(tmp_path / "more")
    p = photos.plan([tmp_path / "scans", tmp_path / "more"], tmp_path / "out")
    problems = [t for t in p.tasks if t.problem]
    assert len(problems) == 5 and all("also the output of" in t.problem for t in problems)
    # The same file through two arguments is done once.
    assert len(photos.plan([tmp_path / "scans", tmp_path / "scans" / "a.jpg"]).tasks) == 5


# ------------------------------------------------------------------------------- pixels


def test_merge_full_equals_full_size_upsample_then_merge() -> None:
    rng = np.random.default_rng(0)
    lightness = rng.uniform(0, 100, (203, 157)).astype(np.float32)
    ab = rng.uniform(-60, 60, (64, 50, 2)).astype(np.float32)
    ref = color.merge_l_ab(lightness, Colorizer.upsample_ab(ab, 203, 157))
    for dtype in (np.uint8, np.uint16):
        top = np.iinfo(dtype).max
        got = color.merge_full(lightness, ab, dtype)
        assert got.dtype == dtype and got.shape == (203, 157, 3)
        np.testing.assert_allclose(got / top, ref, atol=1.5 / top + 1e-4)


def test_merge_full_in_strips(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    lightness = rng.uniform(0, 100, (50, 40)).astype(np.float32)
    ab = rng.uniform(-60, 60, (32, 32, 2)).astype(np.float32)
    whole = color.merge_full(lightness, ab, np.uint16)
    monkeypatch.setattr(color, "STRIP_PIXELS", 7 * 40)  # 7 rows per strip
    np.testing.assert_array_equal(color.merge_full(lightness, ab, np.uint16), whole)


def test_lightness_of_colour_is_its_luminance() -> None:
    rgb = synthetic_photo(30, 20)
    np.testing.assert_allclose(color.lightness_of(rgb), color.rgb_to_l(rgb / 255.0), atol=1e-3)
    g = gray(30, 20)
    np.testing.assert_allclose(color.lightness_of(g), color.gray_to_l(g))


# ---------------------------------------------------------------------------------- run


def test_run_keeps_size_depth_and_lightness(tmp_path: Path, colorizer: Colorizer) -> None:
    make_tree(tmp_path / "in")
    g16 = (gray(36, 52, 7).astype(np.uint16) * 257) ^ 0x55  # uses the low byte too
    cv2.imwrite(str(tmp_path / "in" / "deep.png"), g16)
    cv2.imwrite(str(tmp_path / "in" / "deep.tif"), np.dstack([g16] * 3))
    p = photos.plan([tmp_path / "in"], tmp_path / "out")
    results = run_all(p.tasks, colorizer)
    assert [r.status for r in results] == [Status.DONE] * 7, [r.error for r in results]
    for r in results:
        src = cv2.imread(str(r.input), cv2.IMREAD_UNCHANGED)
        out = cv2.imread(str(r.output), cv2.IMREAD_UNCHANGED)
        assert out.shape[:2] == src.shape[:2] and out.ndim == 3
        assert out.dtype == src.dtype  # 16-bit stays 16-bit
        if src.ndim == 2 and r.input.suffix in (".png", ".tif", ".bmp"):
            # The output's lightness is the input's: colour is added, detail is not lost.
            top = np.iinfo(src.dtype).max
            l_out = color.rgb_to_l(out[..., ::-1] / top)
            np.testing.assert_allclose(l_out, color.gray_to_l(src), atol=0.05 if top > 255 else 0.6)
        assert r.extra["bit_depth"] == (16 if src.dtype == np.uint16 else 8)


def test_free_heap_pages_are_released_as_the_run_goes(
    tmp_path: Path, colorizer: Colorizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(photos, "RELEASE_EVERY", 3)
    monkeypatch.setattr(photos, "release_free_memory", lambda: calls.append(1))
    make_tree(tmp_path / "in")
    p = photos.plan([tmp_path / "in"], tmp_path / "out")
    results = run_all(p.tasks, colorizer)
    assert len(results) == 5 and len(calls) == 5 // 3


def test_second_run_skips_and_newer_inputs_are_redone(tmp_path: Path, colorizer: Colorizer) -> None:
    make_tree(tmp_path / "in")
    p = photos.plan([tmp_path / "in"])
    assert {r.status for r in run_all(p.tasks, colorizer)} == {Status.DONE}
    assert {r.status for r in run_all(p.tasks, colorizer)} == {Status.SKIPPED}
    replaced = p.tasks[2].input  # the user replaced this scan
    later = p.tasks[2].output.stat().st_mtime + 5  # type: ignore[union-attr]
    os.utime(replaced, (later, later))
    again = run_all(p.tasks, colorizer)
    assert [r.input for r in again if r.status is Status.DONE] == [replaced]
    assert {r.status for r in run_all(p.tasks, colorizer, overwrite=True)} == {Status.DONE}
    future = p.tasks[0].input.stat().st_mtime + 86400 * 365  # a scanner with a wrong clock
    os.utime(p.tasks[0].input, (future, future))
    done = [r.input for r in run_all(p.tasks, colorizer) if r.status is Status.DONE]
    assert done == [p.tasks[0].input]
    assert {r.status for r in run_all(p.tasks, colorizer)} == {Status.SKIPPED}  # not every night


def test_a_bad_file_is_reported_and_the_run_goes_on(tmp_path: Path, colorizer: Colorizer) -> None:
    make_tree(tmp_path / "in")
    (tmp_path / "in" / "b_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (tmp_path / "in" / "c_empty.png").write_bytes(b"")
    results = run_all(photos.plan([tmp_path / "in"]).tasks, colorizer)
    failed = {r.input.name: r.error for r in results if r.status is Status.FAILED}
    assert set(failed) == {"b_corrupt.jpg", "c_empty.png"}
    assert "empty file" in failed["c_empty.png"]
    assert sum(r.status is Status.DONE for r in results) == 5
    assert not (tmp_path / "in_restored" / "c_empty.png").exists()


def _ctrl_c_while_writing(monkeypatch: pytest.MonkeyPatch, nth: int) -> None:
    """Make the ``nth`` output write leave half a file behind and raise KeyboardInterrupt."""
    real_write = photos.write_image
    calls: list[Path] = []

    def write_then_ctrl_c(path: Path, *args: object, **kw: object) -> list[str]:
        calls.append(path)
        if len(calls) == nth:
            path.write_bytes(b"half an image")
            raise KeyboardInterrupt
        return real_write(path, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(photos, "write_image", write_then_ctrl_c)


def test_interrupted_run_leaves_no_partial_file_and_resumes(
    tmp_path: Path, colorizer: Colorizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path / "in")
    p = photos.plan([tmp_path / "in"])
    real_write = photos.write_image
    _ctrl_c_while_writing(monkeypatch, nth=3)
    results: list[FileResult] = []
    with pytest.raises(KeyboardInterrupt):
        photos.run(p.tasks, colorizer, photos.PhotosConfig(), results.append)
    out_root = tmp_path / "in_restored"
    finished = sorted(x for x in out_root.rglob("*") if x.is_file())
    assert finished == sorted(r.output for r in results) and len(finished) == 2  # type: ignore[type-var]
    assert temps(out_root) == []
    for f in finished:
        Image.open(f).load()  # complete, decodable files only

    monkeypatch.setattr(photos, "write_image", real_write)
    again = run_all(p.tasks, colorizer)
    assert [r.status for r in again].count(Status.SKIPPED) == 2
    assert [r.status for r in again].count(Status.DONE) == 3
    assert temps(out_root) == []


def test_kill_9_mid_write_then_rerun_completes(tmp_path: Path, tiny_weights: Path) -> None:
    """A real SIGKILL while the second output is half written (no cleanup code can run)."""
    make_tree(tmp_path / "in")
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from restore import photos
        from restore.engine import Colorizer, EngineConfig
        real = photos.write_image
        n = []
        def write(path, *a, **k):
            n.append(path)
            if len(n) == 2:
                path.write_bytes(b"half")
                os.kill(os.getpid(), signal.SIGKILL)
            return real(path, *a, **k)
        photos.write_image = write
        c = Colorizer.from_weights(Path({str(tiny_weights)!r}),
                                   EngineConfig(device="cpu", precision="fp32", render_size=64, batch_size=1))
        photos.run(photos.plan([Path({str(tmp_path / "in")!r})]).tasks, c, photos.PhotosConfig(), print)
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    out_root = tmp_path / "in_restored"
    # what kill -9 leaves behind: the partial file and its (no longer held) claim
    assert sorted(f.suffix for f in temps(out_root)) == [".bmp", ".lock"]
    assert len([f for f in out_root.rglob("*") if f.is_file() and TEMP_MARK not in f.name]) == 1

    p = photos.plan([tmp_path / "in"])
    assert remove_stale_temps(p) == 2  # its owner is dead
    config = EngineConfig(device="cpu", precision="fp32", render_size=64, batch_size=2)
    results = run_all(p.tasks, Colorizer.from_weights(tiny_weights, config))
    assert [r.status for r in results].count(Status.SKIPPED) == 1
    assert [r.status for r in results].count(Status.DONE) == 4
    assert temps(out_root) == []


def test_temporaries_of_a_live_run_are_left_alone(tmp_path: Path) -> None:
    make_tree(tmp_path / "in")
    out = tmp_path / "in_restored"
    out.mkdir()
    live = out / f".a{TEMP_MARK}-{os.getppid()}.jpg"  # another process that is running
    dead = out / f".e{TEMP_MARK}-999999999.bmp"
    live.write_bytes(b"x")
    dead.write_bytes(b"x")
    assert remove_stale_temps(photos.plan([tmp_path / "in"])) == 1
    assert live.exists() and not dead.exists()


def test_parallel_workers_give_the_same_outputs(tmp_path: Path, tiny_weights: Path) -> None:
    (tmp_path / "in").mkdir()
    for i in range(7):  # equal sizes: batch composition cannot change the padding
        Image.fromarray(gray(40, 56, seed=i)).save(tmp_path / "in" / f"p{i}.png")
    outputs = {}
    for workers in (1, 2):
        config = EngineConfig(
            device="cpu", precision="fp32", render_size=64, batch_size=3, workers=workers
        )
        col = Colorizer.from_weights(tiny_weights, config)
        plan = photos.plan([tmp_path / "in"], tmp_path / f"out{workers}")
        results = run_all(plan.tasks, col)
        assert sorted(r.input.name for r in results) == [f"p{i}.png" for i in range(7)]
        assert all(r.status is Status.DONE for r in results)
        outputs[workers] = {
            p.name: np.asarray(Image.open(p)) for p in (tmp_path / f"out{workers}").iterdir()
        }
    assert outputs[1].keys() == outputs[2].keys()
    for name, img in outputs[1].items():
        np.testing.assert_array_equal(img, outputs[2][name])


def test_interrupt_with_parallel_workers_leaves_only_complete_files(
    tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path / "in")
    config = EngineConfig(device="cpu", precision="fp32", render_size=64, batch_size=1, workers=2)
    col = Colorizer.from_weights(tiny_weights, config)
    p = photos.plan([tmp_path / "in"])
    _ctrl_c_while_writing(monkeypatch, nth=2)
    results: list[FileResult] = []
    with pytest.raises(KeyboardInterrupt):
        photos.run(p.tasks, col, photos.PhotosConfig(), results.append)
    out_root = tmp_path / "in_restored"
    assert temps(out_root) == []
    finished = [x for x in out_root.rglob("*") if x.is_file()]
    assert len(finished) < 5  # the run stopped early
    for f in finished:
        Image.open(f).load()  # complete, decodable files only


def test_other_files_are_listed_with_the_reason_they_are_passed_over(tmp_path: Path) -> None:
    make_tree(tmp_path / "in")
    Image.fromarray(gray(8, 8)).save(tmp_path / "in" / "anim.gif")
    p = photos.plan([tmp_path / "in"])
    assert len(p.tasks) == 5
    skipped = {t.input.name: t.skip for t in p.passed_over}
    assert set(skipped) == {"anim.gif", "notes.txt"}  # hidden files stay unlisted
    assert all(r is not None and "not an image restore reads" in r for r in skipped.values())
    assert ".gif" in str(skipped["anim.gif"])
    assert [t.input.name for t in photos.plan([tmp_path / "in" / "notes.txt"]).passed_over] == [
        "notes.txt"
    ]


def test_an_output_claimed_by_another_live_job_is_skipped(
    tmp_path: Path, colorizer: Colorizer
) -> None:
    make_tree(tmp_path / "in")
    p = photos.plan([tmp_path / "in"])
    other = jobs.claim(p.tasks[0].output)  # as an overlapping cron run would hold it
    assert other is not None
    assert jobs.claim(p.tasks[0].output) is None
    assert remove_stale_temps(p) == 0  # a held claim is not stale
    results = {r.input: r for r in run_all(p.tasks, colorizer)}
    first = results[p.tasks[0].input]
    assert first.status is Status.SKIPPED and first.reason == jobs.BUSY
    assert not p.tasks[0].output.exists()
    assert [r.status for r in results.values()].count(Status.DONE) == 4
    other.release()
    assert not jobs.lock_path_for(p.tasks[0].output).exists()
    again = {r.input: r for r in run_all(p.tasks, colorizer)}
    assert again[p.tasks[0].input].status is Status.DONE
    assert temps(tmp_path / "in_restored") == []  # claims are let go and their files removed

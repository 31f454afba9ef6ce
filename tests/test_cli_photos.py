"""`restore photos` through click: options, messages, exit codes, report, metadata end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from restore.cli import main
from tests.conftest import synthetic_photo

FAST = ["--render-size", "64", "--device", "cpu", "--precision", "fp32", "--threads", "1"]


def gray(h: int, w: int, seed: int = 0) -> np.ndarray:
    return cv2.cvtColor(synthetic_photo(h, w, seed), cv2.COLOR_RGB2GRAY)


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["photos", *map(str, args)])


@pytest.fixture
def album(tmp_path: Path) -> Path:
    root = tmp_path / "album"
    (root / "1925").mkdir(parents=True)
    Image.fromarray(gray(40, 56)).save(root / "a.jpg")
    Image.fromarray(gray(48, 32, 1)).save(root / "1925" / "b.png")
    Image.fromarray(synthetic_photo(30, 44, 2)).save(root / "1925" / "sepia.jpg")
    return root


# ---------------------------------------------------------------------------- usage errors


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    r = invoke(tmp_path / "nope")
    assert r.exit_code == 2 and "does not exist" in r.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--render-size", "100"], "multiple of 32 (e.g. 96 or 128)"),
        (["--render-size", "0"], "--render-size"),
        (["--batch-size", "0"], "--batch-size"),
        (["--device", "gpu"], "auto, cpu, cuda, cuda:N or mps"),
        (["--max-pixels", "-5"], "--max-pixels"),
        (["--saturation", "5"], "--saturation"),
        (["--runtime", "onnx"], "--runtime"),
    ],
)
def test_bad_options_are_usage_errors(album: Path, args: list[str], message: str) -> None:
    r = invoke(album, *args)
    assert r.exit_code == 2 and message in r.output


def test_missing_default_weights_says_what_to_do(
    album: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESTORE_WEIGHTS", str(tmp_path / "weights" / "restore_g.safetensors"))
    r = invoke(album, *FAST)
    assert r.exit_code == 2
    assert "no model weights at" in r.output and "--weights FILE" in r.output
    assert not (tmp_path / "album_restored").exists()


def test_a_broken_weights_file_is_a_clear_error(album: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\0" * 64)
    r = invoke(album, "--weights", bad, *FAST)
    assert r.exit_code == 2 and "Error:" in r.output and "Traceback" not in r.output


def test_output_that_is_the_input_folder_is_refused(album: Path, tiny_weights: Path) -> None:
    r = invoke(album, "-o", album, "--weights", tiny_weights, *FAST)
    assert r.exit_code == 2 and "is the input folder" in r.output


def test_cli_default_pixel_limit_is_the_library_default() -> None:
    from restore import imageio
    from restore.cli import photos

    assert photos.DEFAULT_MAX_PIXELS == imageio.DEFAULT_MAX_PIXELS


def test_nothing_to_do(tmp_path: Path, tiny_weights: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    r = invoke(tmp_path, "--weights", tiny_weights)
    assert r.exit_code == 0 and "No images found" in r.output


# ------------------------------------------------------------------------------- runs


def test_run_report_and_rerun(album: Path, tmp_path: Path, tiny_weights: Path) -> None:
    (album / "notes.txt").write_text("shopping list")  # not an image: listed, passed over
    (album / "1925" / "torn.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))  # corrupt
    (album / "empty.png").write_bytes(b"")
    report = tmp_path / "report.json"
    r = invoke(album, "--weights", tiny_weights, "--report", report, *FAST)
    assert r.exit_code == 1, r.output

    data = json.loads(report.read_text())
    assert data["totals"] == {"done": 3, "skipped": 1, "failed": 2, "total": 6}
    assert data["exit_code"] == 1 and data["wall_seconds"] > 0
    assert data["weights"]["sha256"] and data["weights"]["path"] == str(tiny_weights)
    by_name = {Path(f["input"]).name: f for f in data["files"]}
    assert set(by_name) == {"a.jpg", "b.png", "sepia.jpg", "torn.jpg", "empty.png", "notes.txt"}
    assert "not an image restore reads (.txt" in by_name["notes.txt"]["reason"]
    assert by_name["empty.png"]["error"] == "empty file (0 bytes)"
    assert by_name["torn.jpg"]["status"] == "failed" and by_name["torn.jpg"]["error"]
    assert by_name["torn.jpg"]["output"] is None  # nothing was written for it
    out = tmp_path / "album_restored"
    assert by_name["b.png"]["output"] == str(out / "1925" / "b.png")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*")) == [
        "1925/b.png", "1925/sepia.jpg", "a.jpg",
    ]  # fmt: skip
    # Not a terminal: plain, parseable lines, then the summary.
    assert "restore: done [" in r.output and "restore: failed [" in r.output
    assert "summary" in r.output and "empty file" in r.output

    r2 = invoke(album, "--weights", tiny_weights, "--report", report, *FAST)
    totals = json.loads(report.read_text())["totals"]
    assert totals == {"done": 0, "skipped": 4, "failed": 2, "total": 6}
    assert r2.exit_code == 1  # the broken files are still broken

    (album / "1925" / "torn.jpg").unlink()
    (album / "empty.png").unlink()
    r3 = invoke(album, "--weights", tiny_weights, "-q", *FAST)
    assert r3.exit_code == 0 and "restore: skipped" not in r3.output and "summary" in r3.output


def test_orientation_and_metadata_end_to_end(tmp_path: Path, tiny_weights: Path) -> None:
    src = tmp_path / "scan.jpg"
    ex = Image.Exif()
    ex[274] = 6  # stored sideways: viewers rotate 90 degrees clockwise
    ex[0x8769] = {36867: "1931:05:02 10:00:00"}
    ex[270] = "Hochzeit Anna & Karl"
    Image.fromarray(gray(40, 60)).save(src, exif=ex, dpi=(1200, 1200))
    r = invoke(src, "--weights", tiny_weights, *FAST)
    assert r.exit_code == 0, r.output
    out = Image.open(tmp_path / "scan_restored.jpg")
    assert out.size == (40, 60) and out.mode == "RGB"  # upright: the rotated size
    oex = out.getexif()
    assert oex[274] == 1 and oex.get_ifd(0x8769)[36867] == "1931:05:02 10:00:00"
    assert oex[270].startswith("Hochzeit Anna & Karl; machine-colorized by restore")
    assert oex[305].startswith("restore ")
    assert out.info["dpi"] == pytest.approx((1200, 1200))


def test_16bit_inputs_give_16bit_outputs(tmp_path: Path, tiny_weights: Path) -> None:
    g16 = gray(36, 50).astype(np.uint16) * 257
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "g.png"), g16)
    cv2.imwrite(str(tmp_path / "in" / "g.tif"), g16)
    r = invoke(tmp_path / "in", "-o", tmp_path / "out", "--weights", tiny_weights, *FAST)
    assert r.exit_code == 0, r.output
    for name in ("g.png", "g.tif"):
        out = cv2.imread(str(tmp_path / "out" / name), cv2.IMREAD_UNCHANGED)
        assert out.dtype == np.uint16 and out.shape == (36, 50, 3)


def test_single_file_to_named_output_and_other_format(tmp_path: Path, tiny_weights: Path) -> None:
    src = tmp_path / "old.tif"
    Image.fromarray(gray(30, 40)).save(src)
    r = invoke(src, "-o", tmp_path / "colour.png", "--weights", tiny_weights, *FAST)
    assert r.exit_code == 0, r.output
    out = Image.open(tmp_path / "colour.png")
    assert out.format == "PNG" and out.size == (40, 30)


def test_huge_image_is_refused_and_the_rest_is_done(tmp_path: Path, tiny_weights: Path) -> None:
    (tmp_path / "in").mkdir()
    Image.fromarray(gray(300, 400)).save(tmp_path / "in" / "big.png")
    Image.fromarray(gray(30, 40)).save(tmp_path / "in" / "small.png")
    report = tmp_path / "r.json"
    r = invoke(
        tmp_path / "in",
        "--max-pixels",
        "100000",
        "--report",
        report,
        "--weights",
        tiny_weights,
        *FAST,
    )
    assert r.exit_code == 1
    files = {Path(f["input"]).name: f for f in json.loads(report.read_text())["files"]}
    assert files["small.png"]["status"] == "done"
    assert "400x300 is 0.12 megapixels, over the limit of 0.1" in files["big.png"]["error"]
    assert "--max-pixels" in files["big.png"]["error"]


def test_saturation_zero_writes_gray_and_two_doubles_the_colour(
    tmp_path: Path, tiny_weights: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(gray(64, 96)).save(src / "a.png")
    chroma = {}
    for s in ("0", "1", "2"):
        r = invoke(src, "-o", tmp_path / s, "--saturation", s, "--weights", tiny_weights, *FAST)
        assert r.exit_code == 0, r.output
        rgb = np.asarray(Image.open(tmp_path / s / "a.png").convert("RGB"))
        lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
        chroma[s] = float(np.hypot(lab[..., 1], lab[..., 2]).mean())
    assert chroma["0"] < 0.5 < chroma["1"]
    # twice the ab; the merge pulls colours beyond the sRGB gamut back in, so a bit less
    assert 1.4 * chroma["1"] < chroma["2"] <= 2 * chroma["1"]


def test_every_runtime_gives_the_same_colours(
    album: Path, tmp_path: Path, tiny_weights: Path
) -> None:
    outs = {}
    for runtime in ("openvino", "eager"):
        out = tmp_path / runtime
        r = invoke(album, "-o", out, "--weights", tiny_weights, "--runtime", runtime, *FAST)
        assert r.exit_code == 0, r.output
        outs[runtime] = np.asarray(Image.open(out / "1925" / "b.png"), dtype=np.int16)
    assert np.abs(outs["openvino"] - outs["eager"]).max() <= 1


def test_batch_size_and_runtime_reach_the_engine(tiny_weights: Path) -> None:
    from restore.cli.common import CPU_BATCH_SIZE, EngineOptions, load_colorizer

    given = EngineOptions(tiny_weights, "cpu", "fp32", "openvino", None, 64, False, 1.0, 1)
    assert load_colorizer(given).config.batch_size == CPU_BATCH_SIZE
    assert load_colorizer(replace(given, batch_size=7)).config.batch_size == 7
    # --runtime reaches the engine (the CLI test above only shows the colours agree)
    eager = load_colorizer(replace(given, runtime="eager"))
    assert eager.config.runtime == "eager" and eager.runner is eager.model

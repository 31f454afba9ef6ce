"""Photo repair (`restore photos --repair`): defects found and filled, faded tone stretched,
clean pictures left alone. Uses the shipped detector (weights/restore_defects.safetensors)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from restore import color
from restore.cli import main
from restore.repair import (
    MAX_GAIN,
    WHITE_TARGET,
    PhotoRepairer,
    RepairConfig,
    noise_level,
    remove_impulses,
    stretch_tone,
)
from tests.conftest import synthetic_photo


def psnr(x: np.ndarray, ref: np.ndarray) -> float:
    """Lightness PSNR after the least-squares gain and offset (the repair issue's measure:
    a tone stretch is not an error)."""
    a = np.stack([x.ravel(), np.ones(x.size)], axis=1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(a, ref.ravel().astype(np.float64), rcond=None)
    err = float(np.mean((a @ coef - ref.ravel()) ** 2))
    return float(10 * np.log10(100.0**2 / max(err, 1e-10)))


@pytest.fixture(scope="module")
def repairer() -> PhotoRepairer:
    return PhotoRepairer()


def clean_lightness(h: int = 192, w: int = 256, seed: int = 0) -> np.ndarray:
    rgb = synthetic_photo(h, w, seed).astype(np.float32) / 255
    return cv2.GaussianBlur(color.rgb_to_l(rgb), (0, 0), 1.0)  # photo-like, no hard noise


def scratched(lightness: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A bright hairline, a dark scratch and white dust specks, and their mask."""
    x = lightness.copy()
    mask = np.zeros(x.shape, np.uint8)
    cv2.polylines(mask, [np.array([[10, 20], [120, 60], [240, 50]], np.int32)], False, 1, 1)
    cv2.line(mask, (30, 180), (200, 120), 1, 2)
    for cx, cy in [(40, 100), (150, 30), (200, 160), (90, 150)]:
        cv2.circle(mask, (cx, cy), 2, 1, -1)
    x[mask.astype(bool)] = 97.0
    x[110:, :][mask[110:, :].astype(bool)] = 3.0  # the lower scratch is dark
    return x, mask.astype(bool)


def test_scratches_and_dust_are_found_and_filled(repairer: PhotoRepairer) -> None:
    clean = clean_lightness()
    damaged, truth = scratched(clean)
    found = repairer.defect_mask(damaged)
    assert (found & truth).sum() >= 0.6 * truth.sum()  # most of the damage is found
    assert found.mean() < 4 * truth.mean()  # and not much besides
    repaired, stats = repairer.repair(damaged)
    assert psnr(repaired, clean) >= psnr(damaged, clean) + 3.0
    assert stats.filled > 0


def test_a_clean_picture_passes_nearly_unchanged(repairer: PhotoRepairer) -> None:
    clean = clean_lightness(seed=3)
    repaired, stats = repairer.repair(clean)
    assert psnr(repaired, clean) >= 34.0
    assert stats.filled < 0.01


def grainy(lightness: np.ndarray, sigma: float, clump: float = 0.0, seed: int = 1) -> np.ndarray:
    """Gaussian grain of standard deviation ``sigma`` (L units), clumped by a blur."""
    noise = np.random.default_rng(seed).standard_normal(lightness.shape).astype(np.float32)
    if clump:
        noise = cv2.GaussianBlur(noise, (0, 0), clump)
        noise /= noise.std()
    return np.clip(lightness + sigma * noise, 0, 100).astype(np.float32)


@pytest.mark.parametrize("clump", [0.0, 1.0])
def test_grain_is_read_and_texture_is_not(repairer: PhotoRepairer, clump: float) -> None:
    clean = clean_lightness(384, 512)
    assert noise_level(clean, repairer.grain) < 0.5
    for sigma in (2.0, 5.0):
        read = noise_level(grainy(clean, sigma, clump), repairer.grain)
        assert read == pytest.approx(sigma, rel=0.3)
    # dense fine texture everywhere (gravel, a crowd far off, leaves) is not grain
    assert noise_level(pebbles(), repairer.grain) < 1.0
    assert noise_level(grainy(pebbles(), 4.0, clump), repairer.grain) > 2.5


def pebbles(h: int = 384, w: int = 512) -> np.ndarray:
    """A picture filled with small sharp-edged blobs of every tone, 2-5 px across."""
    rng = np.random.default_rng(0)
    x = np.full((h, w), 50, np.float32)
    for _ in range(6000):
        centre = (int(rng.integers(w)), int(rng.integers(h)))
        axes = (int(rng.integers(2, 5)), int(rng.integers(2, 5)))
        tone = float(rng.uniform(20, 80))
        cv2.ellipse(x, centre, axes, float(rng.uniform(0, 180)), 0, 360, tone, -1)
    return cv2.GaussianBlur(x, (0, 0), 0.7)


def test_grain_is_reduced_as_strongly_as_asked(repairer: PhotoRepairer) -> None:
    clean = clean_lightness(384, 512)
    noisy = grainy(clean, 5.0, clump=0.8)
    denoiser = repairer  # on by default, at strength 1
    repaired, stats = denoiser.repair(noisy)
    assert stats.denoised and stats.noise == pytest.approx(5.0, rel=0.3)
    assert psnr(repaired, clean) >= psnr(noisy, clean) + 3.0
    harder, _ = PhotoRepairer(RepairConfig(denoise=2.0)).repair(noisy)
    assert float(np.std(harder - repaired)) > 0.1  # the strength is applied
    kept, stats = PhotoRepairer(RepairConfig(denoise=0.0)).repair(noisy)  # still measured
    assert not stats.denoised and stats.noise > 3.0
    assert psnr(kept, clean) < psnr(noisy, clean) + 0.5
    # a clean scan's faint noise and a dense texture are not filtered (read below the floor)
    for picture in (grainy(clean, 0.3), pebbles()):
        assert not denoiser.repair(picture)[1].denoised


def test_salt_and_pepper_is_removed_and_a_few_glints_stay(repairer: PhotoRepairer) -> None:
    clean = clean_lightness()
    rng = np.random.default_rng(4)
    peppered = clean.copy()
    hit = rng.random(clean.shape) < 0.01
    peppered[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 2.0, 98.0)
    fixed, share = remove_impulses(peppered)
    assert 0.005 < share < 0.012
    assert psnr(fixed, clean) >= psnr(peppered, clean) + 8.0
    repaired, stats = repairer.repair(peppered)
    assert stats.impulses == pytest.approx(share) and psnr(repaired, clean) > psnr(peppered, clean)
    # a handful of lone bright pixels (stars, glints) are real detail
    glints = clean.copy()
    glints[rng.integers(0, 192, 10), rng.integers(0, 256, 10)] = 100.0
    same, share = remove_impulses(glints)
    assert share == 0.0 and np.array_equal(same, glints)


def test_faded_tone_is_stretched_and_a_full_range_print_is_not() -> None:
    full = np.linspace(0, 100, 256 * 256, dtype=np.float32).reshape(256, 256)
    same, _, _, gain = stretch_tone(full)
    assert gain == 1.0 and same is full
    faded = 20 + 0.6 * full  # blacks at 20, whites at 80
    out, black, white, gain = stretch_tone(faded)
    assert black == pytest.approx(20, abs=0.5) and white == pytest.approx(80, abs=0.5)
    assert gain == MAX_GAIN  # the full stretch (1.53) is capped
    assert np.quantile(out, 0.5) == pytest.approx(50, abs=0.5)  # the middle tone stays
    assert np.quantile(out, 0.001) == pytest.approx(50 - 30 * MAX_GAIN, abs=0.5)
    assert np.all(np.diff(out.ravel()) >= 0)  # monotonic: no tone reversed or clipped flat
    slightly = 8 + 0.8 * full  # 8..88: within reach of the targets, stretched exactly there
    out, _, _, gain = stretch_tone(slightly)
    assert 1.0 < gain < MAX_GAIN
    assert np.quantile(out, 0.999) == pytest.approx(WHITE_TARGET, abs=0.5)


def test_photos_repair_reports_what_was_done(tmp_path: Path, tiny_weights: Path) -> None:
    clean = clean_lightness()
    damaged, truth = scratched(clean)
    (tmp_path / "in").mkdir()
    Image.fromarray(np.round(damaged * 2.55).astype(np.uint8)).save(tmp_path / "in" / "a.png")
    errors = {}
    for flag in ("--repair", None):
        out, report = tmp_path / f"out{flag}", tmp_path / f"report{flag}.json"
        args = ["photos", str(tmp_path / "in"), "-o", str(out), "--weights", str(tiny_weights),
                "--render-size", "64", "--device", "cpu", "--report", str(report)]  # fmt: skip
        r = CliRunner().invoke(main, args + ([flag] if flag else []))
        assert r.exit_code == 0, r.output
        entry = json.loads(report.read_text())["files"][0]
        assert ("repair" in entry) == (flag is not None)
        rgb = cv2.cvtColor(cv2.imread(str(out / "a.png")), cv2.COLOR_BGR2RGB)
        lightness = color.rgb_to_l(rgb.astype(np.float32) / 255)
        errors[flag] = float(np.abs(lightness - clean)[truth].mean())
    assert entry_filled(tmp_path / "report--repair.json") > 0
    # the repaired lightness reached the output: where the damage was, it is near the clean L
    assert errors["--repair"] < 0.5 * errors[None]


def entry_filled(report: Path) -> float:
    return float(json.loads(report.read_text())["files"][0]["repair"]["filled"])


def test_repair_only_writes_black_and_white(tmp_path: Path, tiny_weights: Path) -> None:
    damaged, truth = scratched(clean_lightness())
    (tmp_path / "in").mkdir()
    Image.fromarray(np.round(damaged * 2.55).astype(np.uint8)).save(tmp_path / "in" / "a.jpg")
    base = ["photos", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
            "--weights", str(tiny_weights), "--render-size", "64", "--device", "cpu"]  # fmt: skip
    refused = CliRunner().invoke(main, [*base, "--no-colorize"])
    assert refused.exit_code == 2 and "--repair" in refused.output
    r = CliRunner().invoke(main, [*base, "--repair", "--no-colorize"])
    assert r.exit_code == 0, r.output
    rgb = cv2.imread(str(tmp_path / "out" / "a.jpg")).astype(int)
    assert np.abs(rgb[..., 0] - rgb[..., 1]).max() <= 2  # no colour
    assert np.abs(rgb[..., 1] - rgb[..., 2]).max() <= 2
    with Image.open(tmp_path / "out" / "a.jpg") as im:
        assert "repaired" in im.getexif().get(0x010E, "")  # ImageDescription says what it is


def test_openvino_and_torch_detectors_agree(repairer: PhotoRepairer) -> None:
    damaged, _ = scratched(clean_lightness())
    eager = PhotoRepairer(RepairConfig(runtime="torch"))
    assert repairer._ov is not None  # the default runs on OpenVINO where it is installed
    a, b = repairer.defect_mask(damaged), eager.defect_mask(damaged)
    assert a.any() and b.any()  # two empty masks would agree for nothing
    assert (a != b).mean() < 1e-3  # only pixels at the threshold may differ

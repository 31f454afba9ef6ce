"""The Python API: `from restore import Colorizer`, numpy images in, same-size images out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from restore import Colorizer, color, engine, photos
from restore.jobs import FileResult, Status
from restore.photos import PhotosConfig
from tests.conftest import synthetic_photo


def swap_rb(pixels: np.ndarray) -> np.ndarray:
    """RGB(A) <-> OpenCV's BGR(A); gray as it is."""
    if pixels.ndim == 2:
        return pixels
    return cv2.cvtColor(pixels, {3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}[pixels.shape[2]])


@pytest.fixture(scope="module")
def colorizer(tiny_weights: Path) -> Colorizer:
    return Colorizer.load(
        tiny_weights, device="cpu", precision="fp32", runtime="eager", render_size=64, batch_size=2
    )


def image(kind: str, h: int = 37, w: int = 53, seed: int = 0) -> np.ndarray:
    """A synthetic picture: gray8 | gray1 (H, W, 1) | rgb8 | rgba8 | la8 | gray16 | rgb16 |
    rgbf (float32)."""
    rgb = synthetic_photo(h, w, seed)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    alpha = np.linspace(0, 255, h * w).reshape(h, w).astype(np.uint8)
    return {
        "gray8": gray,
        "gray1": gray[..., None],
        "rgb8": rgb,
        "rgba8": np.dstack([rgb, alpha]),
        "la8": np.dstack([gray, alpha]),
        "gray16": gray.astype(np.uint16) * 257 + 100,
        "rgb16": rgb.astype(np.uint16) * 257 + 3,
        "rgbf": rgb.astype(np.float32) / 255,
    }[kind]


def test_the_public_name_is_the_engine_and_importing_restore_stays_light() -> None:
    assert Colorizer is engine.Colorizer
    code = "import sys, restore; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("kind", ["gray8", "gray1", "rgb8", "gray16", "rgb16", "rgbf"])
def test_same_size_and_dtype_out_and_the_input_lightness_kept(
    colorizer: Colorizer, kind: str
) -> None:
    pixels = image(kind)
    out = colorizer.colorize(pixels)
    assert out.shape == (37, 53, 3) and out.dtype == pixels.dtype
    top = np.iinfo(out.dtype).max if out.dtype.kind == "u" else 1.0
    assert (out.max(axis=2).astype(float) - out.min(axis=2)).max() > 0.02 * top  # coloured
    lightness = color.lightness_of(pixels[..., 0] if kind == "gray1" else pixels)
    assert np.abs(color.rgb_to_l(color.to_float_rgb(out)) - lightness).mean() < 0.5


@pytest.mark.parametrize("shape", [(1, 1), (1, 300), (300, 1), (2, 3), (37, 53), (53, 37)])
def test_any_size_works(colorizer: Colorizer, shape: tuple[int, int]) -> None:
    pixels = image("gray8", 300, 300)[: shape[0], : shape[1]]
    assert colorizer.colorize(pixels).shape == (*shape, 3)


@pytest.mark.parametrize("kind", ["rgba8", "la8"])
def test_alpha_is_passed_through_and_does_not_change_the_colours(
    colorizer: Colorizer, kind: str
) -> None:
    pixels = image(kind)
    out = colorizer.colorize(pixels)
    assert out.shape == (37, 53, 4) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 3], pixels[..., -1])
    opaque = colorizer.colorize(np.ascontiguousarray(pixels[..., :-1]))
    np.testing.assert_array_equal(out[..., :3], opaque)


def test_saturation_zero_gives_gray(tiny_weights: Path) -> None:
    gray = Colorizer.load(tiny_weights, device="cpu", runtime="eager", saturation=0.0)
    out = gray.colorize(image("rgb8")).astype(int)
    assert (out.max(axis=2) - out.min(axis=2)).max() <= 1


def test_batch_gives_what_one_at_a_time_gives(colorizer: Colorizer) -> None:
    images = [image("rgb8", seed=i) for i in range(3)] + [image("gray16")]
    together = colorizer.colorize_batch(images)
    for pixels, out in zip(images, together, strict=True):
        np.testing.assert_array_equal(out, colorizer.colorize(pixels))
    assert colorizer.colorize_batch([]) == []


@pytest.mark.parametrize("kind", ["gray8", "rgb8", "rgba8", "gray16", "rgb16"])
def test_same_pixels_as_restore_photos(colorizer: Colorizer, tmp_path: Path, kind: str) -> None:
    pixels = image(kind)
    src = tmp_path / f"{kind}.png"
    assert cv2.imwrite(str(src), swap_rb(pixels))
    results: list[FileResult] = []
    photos.run(
        photos.plan([src], tmp_path / "out").tasks, colorizer, PhotosConfig(), results.append
    )
    assert [r.status for r in results] == [Status.DONE]
    written = swap_rb(cv2.imread(str(tmp_path / "out" / src.name), cv2.IMREAD_UNCHANGED))
    ours = colorizer.colorize(pixels)
    assert written.dtype == ours.dtype and written.shape == ours.shape
    assert np.abs(written.astype(int) - ours).max() <= 1


def test_bad_inputs_and_options_are_refused_clearly(
    colorizer: Colorizer, tiny_weights: Path
) -> None:
    with pytest.raises(TypeError, match="uint8, uint16 or float"):
        colorizer.colorize(np.zeros((8, 8), np.int32))
    with pytest.raises(ValueError, match="C in 1-4"):
        colorizer.colorize(np.zeros((8, 8, 5), np.uint8))
    with pytest.raises(ValueError, match="no pixels"):
        colorizer.colorize(np.zeros((0, 8), np.uint8))
    with pytest.raises(TypeError, match="render_size"):
        Colorizer.load(tiny_weights, render_sise=128)
    with pytest.raises(ValueError, match="saturation"):
        Colorizer.load(tiny_weights, saturation=-1.0)


def test_no_weights_means_the_default_weights(
    tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESTORE_WEIGHTS", str(tiny_weights))
    loaded = Colorizer.load(device="cpu", runtime="eager", render_size=96)
    assert loaded.config.render_size == 96 and loaded.config.device == "cpu"
    assert loaded.info is not None and loaded.info.path == tiny_weights

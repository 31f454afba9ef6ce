"""The colour module against scikit-image as the oracle."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage import color as skc

from restore import color


@pytest.fixture
def rgb() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.random((48, 40, 3)).astype(np.float32)


def test_rgb_to_lab_matches_skimage(rgb: np.ndarray) -> None:
    np.testing.assert_allclose(color.rgb_to_lab(rgb), skc.rgb2lab(rgb), atol=0.5)


def test_torch_rgb_to_lab_matches_skimage(rgb: np.ndarray) -> None:
    t = torch.from_numpy(rgb).permute(2, 0, 1)[None].double()
    lab = color.rgb_to_lab_torch(t)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(lab, skc.rgb2lab(rgb), atol=1e-3)


def test_lightness_only_matches_skimage(rgb: np.ndarray) -> None:
    np.testing.assert_allclose(color.rgb_to_l(rgb), skc.rgb2lab(rgb)[..., 0], atol=1e-3)


@pytest.mark.parametrize("dtype,peak", [(np.uint8, 255), (np.uint16, 65535)])
def test_gray_lut_matches_skimage(dtype: type, peak: int) -> None:
    levels = np.linspace(0, peak, 97).astype(dtype)
    g = levels.astype(np.float64) / peak
    expected = skc.rgb2lab(np.stack([g, g, g], -1)[None])[0, :, 0]
    np.testing.assert_allclose(color.gray_to_l(levels), expected, atol=1e-3)


def test_round_trip_numpy_and_torch(rgb: np.ndarray) -> None:
    lab = skc.rgb2lab(rgb).astype(np.float32)
    np.testing.assert_allclose(color.lab_to_rgb(lab), rgb, atol=2e-3)
    t = torch.from_numpy(lab).permute(2, 0, 1)[None]
    np.testing.assert_allclose(
        color.lab_to_rgb_torch(t)[0].permute(1, 2, 0).numpy(), rgb, atol=1e-4
    )


def test_gray_stays_gray() -> None:
    g = np.linspace(0, 1, 64, dtype=np.float32)
    rgb = np.repeat(np.stack([g] * 3, -1)[None], 4, axis=0)
    lab = color.rgb_to_lab(rgb)
    assert np.abs(lab[..., 1:]).max() < 0.5
    lab[..., 1:] = 0
    out = color.lab_to_rgb(lab)
    assert np.abs(out - out.mean(axis=2, keepdims=True)).max() < 2e-3
    np.testing.assert_allclose(out, rgb, atol=2e-3)


def test_extreme_ab_is_fitted_into_gamut_keeping_lightness_and_hue() -> None:
    rng = np.random.default_rng(2)
    lab = np.empty((32, 32, 3), np.float32)
    lab[..., 0] = rng.uniform(0, 100, (32, 32))
    lab[..., 1:] = rng.uniform(-110, 110, (32, 32, 2))
    out = color.lab_to_rgb(lab)
    assert out.min() >= 0.0 and out.max() <= 1.0
    back = skc.rgb2lab(out)
    # Lightness is kept (out-of-gamut colours are desaturated, not darkened or brightened) ...
    assert np.abs(back[..., 0] - lab[..., 0]).mean() < 3.0
    # ... and hue survives for clearly chromatic outputs.
    chroma = np.hypot(back[..., 1], back[..., 2])
    mask = chroma > 10
    hue_in = np.arctan2(lab[..., 2], lab[..., 1])[mask]
    hue_out = np.arctan2(back[..., 2], back[..., 1])[mask]
    diff = np.angle(np.exp(1j * (hue_in - hue_out)))
    assert np.median(np.abs(diff)) < 0.35
    t = torch.from_numpy(lab).permute(2, 0, 1)[None]
    tout = color.lab_to_rgb_torch(t)
    assert float(tout.min()) >= 0.0 and float(tout.max()) <= 1.0


def test_normalisation_constants_round_trip() -> None:
    lab_l = np.array([0.0, 50.0, 100.0], np.float32)
    np.testing.assert_allclose(color.normalize_l(lab_l), [-1, 0, 1])
    np.testing.assert_allclose(color.denormalize_l(color.normalize_l(lab_l)), lab_l)
    ab = np.array([-110.0, 0.0, 55.0], np.float32)
    np.testing.assert_allclose(color.normalize_ab(ab), [-1, 0, 0.5])
    np.testing.assert_allclose(color.denormalize_ab(color.normalize_ab(ab)), ab)


def test_colourfulness_zero_for_gray_and_positive_for_colour(rgb: np.ndarray) -> None:
    gray = np.repeat(rgb[..., :1], 3, axis=2)
    assert color.colourfulness(gray) == pytest.approx(0.0, abs=1e-9)
    assert color.colourfulness(rgb) > 30


def _exact_u8(lab: np.ndarray) -> np.ndarray:
    return (color.merge_l_ab(lab[..., 0], lab[..., 1:]) * 255.0 + 0.5).astype(np.uint8)


@pytest.mark.parametrize("chroma", [110.0, 25.0])
def test_fast_merge_within_one_level_of_exact(chroma: float) -> None:
    rng = np.random.default_rng(3)
    lab = np.empty((61, 83, 3), np.float32)
    lab[..., 0] = rng.uniform(0, 100, (61, 83))
    lab[..., 1:] = rng.uniform(-chroma, chroma, (61, 83, 2))
    lab[0, :4] = [[0, 0, 0], [100, 0, 0], [0, 80, -80], [100, -80, 80]]  # the corners
    exact = _exact_u8(lab).astype(int)
    out = np.full((61, 83, 3), 7, np.uint8)
    fast = color.merge_l_ab_u8(lab[..., 0], lab[..., 1:], out=out)
    assert fast is out and fast.dtype == np.uint8
    diff = np.abs(fast.astype(int) - exact)
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.01
    # The gamut fit is really done: clipping channel by channel would differ a lot.
    naive = cv2.convertScaleAbs(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), alpha=255.0).astype(int)
    assert np.abs(naive - exact).max() > 20


def test_fast_merge_keeps_neutral_gray_exact() -> None:
    levels = np.arange(256, dtype=np.uint8).reshape(1, 256)
    lightness = color.gray_to_l(levels)
    out = color.merge_l_ab_u8(lightness, np.zeros((1, 256, 2), np.float32))
    np.testing.assert_array_equal(out, np.repeat(levels[..., None], 3, axis=2))


def test_fast_merge_rejects_what_is_not_an_ab_map() -> None:
    for bad in ((4, 5, 3), (4, 5), (0, 5, 2)):
        with pytest.raises(ValueError):
            color.merge_l_ab_u8(np.zeros((4, 5), np.float32), np.zeros(bad, np.float32))


def test_rgb8_lightness_matches_float_path_and_skimage() -> None:
    rng = np.random.default_rng(4)
    rgb8 = rng.integers(0, 256, (37, 53, 3)).astype(np.uint8)
    ref = color.rgb_to_l(color.to_float_rgb(rgb8))
    np.testing.assert_allclose(color.rgb8_to_l(rgb8), ref, atol=1e-3)
    np.testing.assert_allclose(color.rgb8_to_l(rgb8), skc.rgb2lab(rgb8)[..., 0], atol=1e-3)
    levels = np.arange(256, dtype=np.uint8)[None]
    gray = np.repeat(levels[..., None], 3, axis=2)
    np.testing.assert_allclose(color.rgb8_to_l(gray), color.gray_to_l(levels), atol=1e-3)
    view = np.dstack([rgb8, rgb8[..., :1]])[..., :3]  # a strided view, as decoders hand out
    np.testing.assert_array_equal(color.rgb8_to_l(view), color.rgb8_to_l(rgb8))


@pytest.mark.parametrize("small", [(64, 50), (61, 83), (8, 3), (1, 1), (128, 200)])
def test_fast_merge_resizes_ab_like_cv2_resize(small: tuple[int, int]) -> None:
    """ab at render size is resized on the fly (up, or down for images smaller than the
    render size): the same as resizing it first (bilinear, OpenCV's pixel centres), up to
    one output level."""
    rng = np.random.default_rng(6)
    lightness = rng.uniform(0, 100, (61, 83)).astype(np.float32)
    ab = rng.uniform(-80, 80, (*small, 2)).astype(np.float32)
    full = cv2.resize(ab, (83, 61), interpolation=cv2.INTER_LINEAR).reshape(61, 83, 2)
    want = color.merge_l_ab_u8(lightness, full).astype(int)
    got = color.merge_l_ab_u8(lightness, ab).astype(int)
    assert np.abs(got - want).max() <= 1
    assert (got != want).mean() < 0.01


def test_fast_merge_fits_a_few_stray_pixels() -> None:
    rng = np.random.default_rng(5)
    lab = np.empty((64, 128, 3), np.float32)
    lab[..., 0] = rng.uniform(30, 80, (64, 128))
    lab[..., 1:] = rng.uniform(-5, 5, (64, 128, 2))  # in gamut ...
    ys, xs = rng.integers(0, 64, 300), rng.integers(0, 128, 300)
    lab[ys, xs, 1:] = rng.uniform(-110, 110, (300, 2))  # ... but for ~2 % of the pixels
    exact = _exact_u8(lab).astype(int)
    fast = color.merge_l_ab_u8(lab[..., 0], lab[..., 1:]).astype(int)
    assert np.abs(fast - exact).max() <= 1


def test_fast_merge_survives_nan_and_inf_and_checks_out() -> None:
    """A diverged model's NaN/inf must give some pixels, never a crash of the process."""
    lightness = np.full((8, 9), 50.0, np.float32)
    lightness[0, 0] = np.nan
    ab = np.zeros((8, 9, 2), np.float32)
    ab[1, 1] = (np.inf, -np.inf)
    ab[2, 2, 0] = np.nan
    out = color.merge_l_ab_u8(lightness, ab)
    assert out.shape == (8, 9, 3) and out[5, 5].tolist() == [119, 119, 119]
    with pytest.raises(ValueError, match="uint8"):
        color.merge_l_ab_u8(lightness, ab, out=np.empty((8, 9, 3), np.float32))
    with pytest.raises(ValueError):
        color.merge_l_ab_u8(lightness, ab, out=np.empty((4, 9, 3), np.uint8))

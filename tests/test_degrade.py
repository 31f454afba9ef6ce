"""The old-print damage model keeps shapes and ranges and is a function of its seed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from restore.train.degrade import DamageConfig, damage

from restore import color

from .conftest import synthetic_photo

EVERYTHING = DamageConfig(
    p_tone=1.0, p_crush=1.0, p_blur=1.0, p_grain=1.0, p_jpeg=1.0, p_vignette=1.0,
    p_specks=1.0, p_scratches=1.0,
)  # fmt: skip
NOTHING = replace(
    EVERYTHING, p_tone=0, p_blur=0, p_grain=0, p_jpeg=0, p_vignette=0, p_specks=0, p_scratches=0
)


@pytest.mark.parametrize(("h", "w"), [(64, 64), (48, 130), (17, 9)])
def test_damage_keeps_shape_dtype_and_range(h: int, w: int) -> None:
    lightness = color.rgb_to_l(synthetic_photo(h, w, seed=1))
    for seed in range(5):
        out, mask = damage(lightness, np.random.default_rng(seed), EVERYTHING)
        assert out.shape == (h, w) and out.dtype == np.float32
        assert mask.shape == (h, w) and mask.dtype == bool
        assert out.min() >= 0.0 and out.max() <= 100.0
        assert np.abs(out - lightness).mean() > 0.5  # it did damage the picture


def test_damage_is_a_function_of_the_generator_state_and_leaves_the_input_alone() -> None:
    lightness = color.rgb_to_l(synthetic_photo(64, 80, seed=2))
    before = lightness.copy()
    a, ma = damage(lightness, np.random.default_rng(7), EVERYTHING)
    b, mb = damage(lightness, np.random.default_rng(7), EVERYTHING)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ma, mb)
    np.testing.assert_array_equal(lightness, before)
    assert ma.any()  # specks and scratches are marked for a repair stage


def test_no_effect_drawn_is_the_identity() -> None:
    lightness = color.rgb_to_l(synthetic_photo(32, 32, seed=3))
    out, mask = damage(lightness, np.random.default_rng(0), NOTHING)
    np.testing.assert_allclose(out, np.clip(lightness, 0, 100), atol=1e-5)
    assert not mask.any()


def test_cracks_mark_only_the_pixels_they_visibly_change() -> None:
    cracks = replace(NOTHING, p_cracks=1.0, cracks=(1, 1))
    flat = np.full((96, 96), 50.0, np.float32)
    changed = 0
    for seed in range(8):
        out, mask = damage(flat, np.random.default_rng(seed), cracks)
        assert mask.any()
        assert np.abs(out - flat)[mask].min() >= 4.0  # every marked pixel was changed
        changed += int((np.abs(out - flat) >= 8.0).sum())
        # nearly every clearly changed pixel is marked (the soft rim may not be)
        assert (mask | (np.abs(out - flat) < 8.0)).mean() > 0.99
    assert changed > 0

"""Weight interpolation of two generators (restore.train.soup)."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
import torch
from restore.models import GeneratorConfig, UNetGenerator
from restore.train.soup import interpolate, main

from restore.weights import load_generator, save_generator

from .conftest import synthetic_photo

SLIM = GeneratorConfig(decoder_channels=(16, 16, 8, 8, 8))


def _pair() -> tuple[UNetGenerator, UNetGenerator]:
    torch.manual_seed(0)
    return UNetGenerator(SLIM), UNetGenerator(SLIM)


def test_interpolation_ends_and_midpoint() -> None:
    a, b = _pair()
    name = "head.weight"
    for alpha, want in ((0.0, a), (1.0, b)):
        got = interpolate(a, b, alpha).state_dict()[name]
        torch.testing.assert_close(got, want.state_dict()[name])
    mid = interpolate(a, b, 0.25).state_dict()[name]
    torch.testing.assert_close(mid, 0.75 * a.state_dict()[name] + 0.25 * b.state_dict()[name])
    assert a.state_dict()[name].data_ptr() != mid.data_ptr()  # a is left alone


def test_interpolation_refuses_other_architectures_and_alphas() -> None:
    a, _ = _pair()
    with pytest.raises(ValueError, match="architectures"):
        interpolate(a, UNetGenerator(GeneratorConfig(decoder_channels=(8, 8, 8, 8, 8))), 0.5)
    with pytest.raises(ValueError, match="alpha"):
        interpolate(a, a, 1.5)


def test_soup_command_writes_weights_with_recomputed_batchnorm(tmp_path: Path) -> None:
    data = tmp_path / "photos"
    data.mkdir()
    for i in range(3):
        cv2.imwrite(str(data / f"p{i}.jpg"), synthetic_photo(72, 96, seed=i)[..., ::-1])
    a, b = _pair()
    save_generator(a, tmp_path / "a.safetensors", training={"steps": 10, "hours": 0.5})
    save_generator(b, tmp_path / "b.safetensors", training={"steps": 12, "hours": 0.25})
    out = tmp_path / "soup.safetensors"
    main(
        [str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"), "--alpha", "0.5",
         "--data", str(data), "--out", str(out), "--bn-batches", "2", "--batch-size", "2",
         "--crop", "32", "--val", str(data)]
    )  # fmt: skip
    model, info = load_generator(out)
    training = info.metadata["training"]
    assert training["soup"]["alpha"] == 0.5 and training["steps"] == 12
    assert info.metadata["metrics"]["n"] == 3 and "colourfulness_ratio" in info.metadata["metrics"]
    bn = model.stem[1]
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))  # recomputed
    assert model(torch.zeros(1, 1, 64, 64)).shape == (1, 2, 64, 64)

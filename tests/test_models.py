"""Generator and discriminator shapes, and the ImageNet encoder option."""

from __future__ import annotations

import pytest
import torch
from restore.models import (
    SKIP_TABLE,
    GeneratorConfig,
    PatchDiscriminator,
    UNetGenerator,
    load_imagenet_encoder,
)
from torchvision.models import resnet18

SLIM = GeneratorConfig(decoder_channels=(16, 16, 8, 8, 8))


@pytest.mark.parametrize("h,w", [(32, 32), (64, 96), (128, 64), (96, 160)])
def test_generator_output_shape_and_range(h: int, w: int) -> None:
    g = UNetGenerator(SLIM).eval()
    with torch.no_grad():
        out = g(torch.randn(2, 1, h, w))
    assert out.shape == (2, 2, h, w)
    assert out.abs().max() <= 1.0


def test_encoder_features_follow_skip_table() -> None:
    g = UNetGenerator(SLIM).eval()
    with torch.no_grad():
        feats = g.encode(torch.randn(1, 1, 64, 64))
    assert [(f.shape[1], 64 // f.shape[2]) for f in feats] == [(c, s) for _, c, s in SKIP_TABLE]


@pytest.mark.parametrize("size,patches", [(256, 30), (128, 14), (64, 6)])
def test_patchgan_output_is_patch_map(size: int, patches: int) -> None:
    d = PatchDiscriminator().eval()
    out = d(torch.randn(1, 1, size, size), torch.randn(1, 2, size, size))
    assert out.shape == (1, 1, patches, patches)


def test_patchgan_receptive_field_is_70() -> None:
    """A change in one input pixel reaches a 70x70 window of the input around each logit."""
    d = PatchDiscriminator().eval()
    l_n = torch.zeros(1, 1, 128, 128, requires_grad=True)
    out = d(l_n, torch.zeros(1, 2, 128, 128))
    out[0, 0, 7, 7].backward()
    ys, xs = torch.nonzero(l_n.grad[0, 0].abs() > 0, as_tuple=True)
    assert int(ys.max() - ys.min() + 1) == 70
    assert int(xs.max() - xs.min() + 1) == 70


def test_imagenet_encoder_weights_are_loaded_with_summed_first_conv() -> None:
    src = resnet18(weights=None).state_dict()
    g = UNetGenerator(SLIM)
    missing = load_imagenet_encoder(g, src)
    assert missing == []
    torch.testing.assert_close(g.stem[0].weight, src["conv1.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(g.layer3[1].conv2.weight, src["layer3.1.conv2.weight"])

"""The colour-classes head: bins, rebalancing, annealed mean, soft targets, its loss in a
short run, and its weights file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from restore.models import GeneratorConfig, UNetGenerator, annealed_mean
from restore.train.classloss import ClassLoss, bin_prior, class_weights
from restore.train.loop import Trainer
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from restore import color, colorbins
from restore.engine import Colorizer, EngineConfig, fold_batchnorm
from restore.weights import load_generator, read_info, save_generator

from .test_train import _config, photo_dir  # noqa: F401 - the fixture

BINS = len(colorbins.gamut_bins())


def _random_rgb(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 3), dtype=np.float32)


def test_bins_cover_every_srgb_colour_and_nothing_sRGB_cannot_show() -> None:
    centres = colorbins.gamut_bins()
    assert 240 <= len(centres) <= 313
    assert np.all(centres % colorbins.BIN == 0)
    ab = color.rgb_to_lab(_random_rgb(20_000))[:, 0, 1:]
    nearest = centres[colorbins.nearest_bin(ab)]
    # every displayable colour lies inside the square of its nearest bin
    assert np.abs(nearest - ab).max() <= colorbins.BIN / 2 + 1e-3
    # corners of the ab plane no sRGB colour reaches are not bins
    assert not any(np.array_equal(c, [-110.0, -110.0]) for c in centres)
    assert not any(np.array_equal(c, [110.0, 110.0]) for c in centres)


def test_lab_in_gamut_tells_displayable_from_not() -> None:
    lab = color.rgb_to_lab(_random_rgb(1000))
    assert color.lab_in_gamut(lab, tolerance=1e-3).all()
    assert not color.lab_in_gamut(np.array([50.0, -100.0, -100.0])).any()
    assert not color.lab_in_gamut(np.array([95.0, 80.0, 0.0])).any()


def test_rarity_weights_from_a_known_prior() -> None:
    uniform = np.full(4, 0.25)
    np.testing.assert_allclose(class_weights(uniform), 1.0)
    prior = np.array([0.9, 0.1])
    w = class_weights(prior, mix=0.5)  # 1 / (0.5 p + 0.25): 1/0.7 and 1/0.3
    assert w[1] / w[0] == pytest.approx(0.7 / 0.3)
    assert float((prior * w).sum()) == pytest.approx(1.0)
    assert np.all(class_weights(prior, mix=1.0) == pytest.approx(1.0))


def test_prior_counts_the_samples_bins() -> None:
    centres = colorbins.gamut_bins()
    red = centres[colorbins.nearest_bin(np.array([60.0, 50.0]))]
    samples = np.array([[60.0, 50.0]] * 90 + [[-20.0, 40.0]] * 10, np.float32)
    prior = bin_prior(samples, centres, sigma=1.0)
    assert prior.sum() == pytest.approx(1.0)
    top = centres[prior.argmax()]
    np.testing.assert_array_equal(top, red)


def test_annealed_mean_is_the_mode_as_t_falls_and_the_mean_at_one() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 3, 4)
    centres = torch.randn(5, 2)
    mode = centres[logits.argmax(1)].permute(0, 3, 1, 2)
    torch.testing.assert_close(annealed_mean(logits, centres, 0.0), mode)
    torch.testing.assert_close(annealed_mean(logits, centres, 1e-3), mode, atol=1e-4, rtol=0)
    p = torch.softmax(logits, 1)
    mean = (p[:, :, None] * centres.view(1, 5, 2, 1, 1)).sum(1)  # sum over classes
    torch.testing.assert_close(annealed_mean(logits, centres, 1.0), mean)


def test_soft_targets_sit_on_the_true_colour_and_carry_its_rarity() -> None:
    centres_n = torch.from_numpy(colorbins.normalised_centres())
    weights = np.linspace(0.5, 2.0, BINS)
    loss = ClassLoss(centres_n, weights)
    k = 37
    ab_n = centres_n[k].view(1, 2, 1, 1).expand(1, 2, 8, 8)
    q, w = loss.targets(ab_n, (2, 2))
    assert q.shape == (1, BINS, 2, 2)
    torch.testing.assert_close(q.sum(1), torch.ones(1, 2, 2))
    assert (q.argmax(1) == k).all() and int((q[0, :, 0, 0] > 0).sum()) == 5
    torch.testing.assert_close(w, torch.full((1, 2, 2), float(weights[k])))


def _classes_model(seed: int = 0) -> UNetGenerator:
    """Random weights, but logits leaning to a saturated red, then a gray, so that the
    decoded colour depends on the temperature."""
    torch.manual_seed(seed)
    g = UNetGenerator(GeneratorConfig.classes(BINS))
    g.bin_ab.copy_(torch.from_numpy(colorbins.normalised_centres()))
    bias = g.color_head[3].bias.data
    bias.zero_()
    bias[colorbins.nearest_bin(np.array([70.0, 50.0]))] = 3.0
    bias[colorbins.nearest_bin(np.array([0.0, 0.0]))] = 2.5
    return g


def test_classes_generator_decodes_ab_at_the_input_size() -> None:
    g = _classes_model().eval()
    x = torch.rand(2, 1, 64, 96) * 2 - 1
    with torch.no_grad():
        logits = g.logits(x)
        ab = g(x)
    assert logits.shape == (2, BINS, 16, 24)
    assert ab.shape == (2, 2, 64, 96) and ab.abs().max() <= 1.0
    g.temperature = 1.0
    with torch.no_grad():
        dull = g(x)
    assert dull.abs().mean() < ab.abs().mean()  # colder is more vivid


def test_cross_entropy_falls_in_a_short_run(photo_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    torch.manual_seed(0)
    cfg = _config(
        photo_dir,
        tmp_path / "run",
        head="classes",
        generator=GeneratorConfig(
            decoder_channels=(16, 16, 8), head="classes", bins=BINS, head_channels=16
        ),
        l1_steps=3,
        gan_steps=2,
        lr_l1=3e-3,
        degrade=1.0,
        rebalance_images=6,
    )
    trainer = Trainer(cfg)
    assert trainer.G.config.head == "classes" and trainer.G.bin_ab.abs().sum() > 0
    l_n, ab_n = trainer.sampler.batch(0, 4)
    losses = [trainer.l1_step(l_n, ab_n)["l1"] for _ in range(25)]
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    # the whole recipe, both phases, on damaged inputs
    trainer.run()
    rows = list(csv.DictReader((tmp_path / "run" / "losses.csv").open()))
    assert [r["phase"] for r in rows] == ["l1"] * 3 + ["gan"] * 2
    assert all(float(r["g_adv"]) > 0 for r in rows[3:])


def test_trunk_copies_what_fits_from_a_regression_file(tmp_path: Path) -> None:
    torch.manual_seed(1)
    regression = UNetGenerator()
    path = save_generator(regression, tmp_path / "r.safetensors")
    g = _classes_model()
    from restore.train.loop import copy_matching

    copied = copy_matching(g, read_info(path)[1])
    assert copied > 100
    src = read_info(path)[1]
    torch.testing.assert_close(g.layer1[0].conv1.weight, src["layer1.0.conv1.weight"].float())
    torch.testing.assert_close(g.bin_ab, torch.from_numpy(colorbins.normalised_centres()))


def test_classes_weights_round_trip_and_old_files_still_load(tmp_path: Path) -> None:
    g = _classes_model().eval()
    path = save_generator(g, tmp_path / "c.safetensors", inference={"temperature": 0.3})
    loaded, info = load_generator(path)
    assert info.config.head == "classes" and info.config.bins == BINS
    assert info.temperature == 0.3 and info.identity["head"] == "classes"
    torch.testing.assert_close(loaded.bin_ab, g.bin_ab, atol=0, rtol=0)  # kept at fp32
    # a version-1 file (the regression generator before the classes head) still loads
    old = save_generator(UNetGenerator(), tmp_path / "r.safetensors")
    with safe_open(str(old), framework="pt") as f:
        meta = dict(f.metadata())
    arch = json.loads(meta["architecture"])
    for key in ("head", "bins", "head_stride", "head_channels"):
        arch.pop(key)
    meta.update(format_version="1", architecture=json.dumps(arch))
    save_file(load_file(str(old)), str(tmp_path / "v1.safetensors"), metadata=meta)
    model, info = load_generator(tmp_path / "v1.safetensors")
    assert info.config.head == "regression" and info.identity["format_version"] == 1


def test_openvino_and_vividness_match_the_eager_classes_model() -> None:
    g = _classes_model()
    g.train()
    with torch.no_grad():
        for _ in range(2):  # non-trivial BatchNorm statistics
            g(torch.rand(2, 1, 64, 64) * 2 - 1)
    g.eval()
    light = [np.random.default_rng(0).uniform(0, 100, (64, 96)).astype(np.float32)]
    out = {}
    for runtime in ("openvino", "eager"):
        for vivid in (0.62, 0.2):
            cfg = EngineConfig(device="cpu", precision="fp32", runtime=runtime, vividness=vivid)
            c = Colorizer(_copy(g), cfg)
            assert c.model.temperature == pytest.approx(1 - vivid)
            out[runtime, vivid] = c.predict(light)[0]
    for vivid in (0.62, 0.2):
        np.testing.assert_allclose(out["openvino", vivid], out["eager", vivid], atol=1e-3)
    assert np.abs(out["openvino", 0.62]).mean() > np.abs(out["openvino", 0.2]).mean()


def _copy(g: UNetGenerator) -> UNetGenerator:
    c = UNetGenerator(g.config)
    c.load_state_dict(g.state_dict())
    return fold_batchnorm(c.eval())


def test_vividness_outside_zero_one_is_refused() -> None:
    with pytest.raises(ValueError, match="vividness"):
        EngineConfig(vividness=1.5)


def test_calibrated_temperature_is_the_engines_default_and_vividness_overrides_it(
    tmp_path: Path,
) -> None:
    from restore.train.calibrate import main as calibrate

    src = save_generator(_classes_model().eval(), tmp_path / "c.safetensors")
    out = tmp_path / "cal.safetensors"
    calibrate([str(src), "--temperature", "0.7", "--out", str(out)])
    assert read_info(out)[0].temperature == 0.7
    assert Colorizer.from_weights(out, EngineConfig(runtime="eager")).model.temperature == 0.7
    vivid = Colorizer.from_weights(out, EngineConfig(runtime="eager", vividness=0.9))
    assert vivid.model.temperature == pytest.approx(0.1)
    regression = save_generator(UNetGenerator().eval(), tmp_path / "r.safetensors")
    with pytest.raises(SystemExit):
        calibrate([str(regression), "--temperature", "0.5", "--out", str(tmp_path / "x")])

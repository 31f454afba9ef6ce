"""The training loop: phases, D-then-G steps, EMA, atomic checkpoints and exact resume."""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from restore.models import (
    GeneratorConfig,
    PatchDiscriminator,
    UNetGenerator,
    load_imagenet_encoder,
)
from torch import nn

from restore import colorbins
from restore.weights import (
    load_discriminator,
    load_generator,
    read_info,
    save_discriminator,
    save_generator,
)

from .classloss import ClassLoss, bin_prior, class_weights
from .config import TrainConfig
from .data import CropSampler
from .losses import GANLoss
from .plot import plot_losses
from .rebalance import BINS, RebalancedL1, ab_prior, rebalance_weights, sample_ab
from .validate import Validator

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


class Trainer:
    """Owns G, D, their EMA and optimisers; ``run`` trains until ``config.total_steps``."""

    def __init__(self, config: TrainConfig) -> None:
        self.cfg = config
        self.device = torch.device(config.device)
        torch.manual_seed(config.seed)
        self.out = Path(config.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.step = 0  # global: continues from the steps recorded in an init_g weights file
        self.prior_hours = 0.0  # training hours of an init_g weights file
        self.lineage: list[str] = []
        if config.init_g:
            self.G, info = load_generator(config.init_g)
            prior = info.metadata.get("training", {})
            self.step = int(prior.get("steps") or 0)
            self.prior_hours = float(prior.get("hours") or 0.0)
            self.lineage = [*prior.get("lineage", []), f"{config.init_g} (step {self.step})"]
        else:
            self.G = UNetGenerator(_generator_config(config))
            if self.G.config.head == "classes":
                self.G.bin_ab.copy_(torch.from_numpy(colorbins.normalised_centres()))
            if config.init_trunk:
                copied = copy_matching(self.G, read_info(config.init_trunk)[1])
                log.info("copied %d tensors from %s", copied, config.init_trunk)
                self.lineage = [f"trunk of {config.init_trunk}"]
            if config.imagenet_encoder:
                missing = load_imagenet_encoder(self.G, _read_state_dict(config.imagenet_encoder))
                if missing:
                    log.warning("ImageNet encoder: %d keys missing", len(missing))
        self.D = load_discriminator(config.init_d) if config.init_d else PatchDiscriminator()
        # channels_last: ~1.3x faster convolutions on CPU with oneDNN
        # (torch's overloads of Module.to omit a device with a memory_format; it accepts both)
        self.G.to(self.device, memory_format=torch.channels_last).train()  # type: ignore[call-overload]
        self.D.to(self.device, memory_format=torch.channels_last).train()  # type: ignore[call-overload]
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_l1 = torch.optim.Adam(self.G.parameters(), lr=config.lr_l1)
        betas = (config.beta1_gan, 0.999)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=config.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=betas)
        self.gan_d = GANLoss(config.gan_mode, real_label=config.real_label).to(self.device)
        self.gan_g = GANLoss(config.gan_mode, real_label=1.0).to(self.device)
        self.sampler = CropSampler(
            config.data_dir, config.crop, config.seed, config.cache_mb, config.degrade
        )
        self.l1 = self._l1_loss().to(self.device)
        self.class_loss = self._class_loss().to(self.device) if self.classes else None
        self.validator = Validator(config, self.out) if config.val_dir else None
        self.best_score = -math.inf
        self.elapsed = 0.0  # training wall seconds over all sessions
        self._t_resume = time.time()

    def _l1_loss(self) -> RebalancedL1:
        """L1 on normalised ab, colour-rebalanced when ``config.rebalance`` > 0."""
        cfg = self.cfg
        if cfg.rebalance <= 0:
            return RebalancedL1(np.ones((BINS, BINS)), 0.0)
        images = self.sampler.sample_images(cfg.rebalance_images, cfg.seed)
        prior, reached = ab_prior(sample_ab(images, per_image=2000, seed=cfg.seed))
        log.info("ab prior from %d bins; rebalance strength %g", reached.sum(), cfg.rebalance)
        weights = rebalance_weights(prior, cfg.rebalance_mix, reached)
        return RebalancedL1(weights, cfg.rebalance)

    @property
    def classes(self) -> bool:
        """Whether G has the classification head."""
        return self.G.config.head == "classes"

    def _class_loss(self) -> ClassLoss:
        """Cross-entropy rebalanced by the prior of the training set's colours."""
        cfg = self.cfg
        images = self.sampler.sample_images(cfg.rebalance_images, cfg.seed)
        centres = colorbins.gamut_bins()
        prior = bin_prior(sample_ab(images, per_image=1000, seed=cfg.seed), centres)
        log.info("class prior over %d bins: %d above 1e-4", len(prior), (prior > 1e-4).sum())
        return ClassLoss(self.G.bin_ab.detach().cpu(), class_weights(prior, cfg.class_mix))

    def colour(
        self, l_n: torch.Tensor, ab_n: torch.Tensor, need_ab: bool = True
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """G's ab for ``l_n`` and its colour loss against ``ab_n`` (L1 or cross-entropy).

        l_n: (B, 1, H, W); ab_n: (B, 2, H, W) normalised. Returns (B, 2, H, W) float32 ab
        (differentiable; None for a classes head when not ``need_ab`` and the loss does not
        use it) and the scalar loss. Call under autocast.
        """
        if self.class_loss is None:
            fake = self.G(l_n).float()
            return fake, self.l1(fake, ab_n)
        logits = self.G.logits(l_n)
        loss = self.class_loss(logits, ab_n)
        if not (need_ab or self.cfg.class_l1 > 0):
            return None, loss
        fake = self.G.decode(logits, l_n.shape[-2:])
        if self.cfg.class_l1 > 0:
            loss = loss + self.cfg.class_l1 * self.l1(fake, ab_n)
        return fake, loss

    # -- state -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "G": self.G.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "D": self.D.state_dict(),
            "opt_l1": self.opt_l1.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng_torch": torch.get_rng_state(),
            "best_score": self.best_score,
            "elapsed": self.elapsed_seconds(),
            "config": json.dumps(self.cfg.to_dict()),
        }

    def elapsed_seconds(self) -> float:
        return self.elapsed + (time.time() - self._t_resume)

    def save_checkpoint(self) -> Path:
        """Write the checkpoint atomically (temp file, fsync, rename)."""
        path = self.out / CHECKPOINT
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as f:
            torch.save(self.state(), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    def load_checkpoint(self, path: Path | None = None) -> bool:
        """Restore everything from the run directory's checkpoint; False if there is none."""
        path = path or self.out / CHECKPOINT
        if not path.exists():
            return False
        st = torch.load(path, map_location=self.device, weights_only=True)
        self.G.load_state_dict(st["G"])
        self.G_ema.load_state_dict(st["G_ema"])
        self.D.load_state_dict(st["D"])
        self.opt_l1.load_state_dict(st["opt_l1"])
        self.opt_g.load_state_dict(st["opt_g"])
        self.opt_d.load_state_dict(st["opt_d"])
        torch.set_rng_state(st["rng_torch"])
        # Learning rates come from the current config, so a resumed run can be retuned.
        for opt, lr in (
            (self.opt_l1, self.cfg.lr_l1),
            (self.opt_g, self.cfg.lr_g),
            (self.opt_d, self.cfg.lr_d),
        ):
            for group in opt.param_groups:
                group["lr"] = lr
        self.step = int(st["step"])
        self.best_score = float(st.get("best_score", -math.inf))
        self.elapsed = float(st.get("elapsed", 0.0))
        self._t_resume = time.time()
        return True

    # -- steps -----------------------------------------------------------------------------

    def _autocast(self) -> torch.autocast:
        return torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16"
        )

    def in_gan_phase(self, step: int) -> bool:
        return step >= self.cfg.l1_steps

    def batch_size_for(self, step: int) -> int:
        return self.cfg.gan_batch_size if self.in_gan_phase(step) else self.cfg.batch_size

    def l1_step(self, l_n: torch.Tensor, ab_n: torch.Tensor) -> dict[str, float]:
        """One step on the colour loss alone (phase 1)."""
        with self._autocast():
            _, loss = self.colour(l_n, ab_n, need_ab=False)
        self.opt_l1.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_l1.step()
        return {"l1": loss.item()}

    def gan_step(self, l_n: torch.Tensor, ab_n: torch.Tensor) -> dict[str, float]:
        """One pix2pix step: update D on real/fake pairs, then G on cGAN + lambda * colour
        loss (L1, or the classes head's cross-entropy)."""
        with self._autocast():
            fake, loss_l1 = self.colour(l_n, ab_n)
            assert fake is not None
        # D
        self.D.requires_grad_(True)
        with self._autocast():
            d_fake = self.D(l_n, fake.detach())
            d_real = self.D(l_n, ab_n)
            loss_d = 0.5 * (self.gan_d(d_fake, False) + self.gan_d(d_real, True))
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        # G
        self.D.requires_grad_(False)
        with self._autocast():
            loss_adv = self.gan_g(self.D(l_n, fake), True)
            loss_g = loss_adv + self.cfg.lambda_l1 * loss_l1
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        return {"l1": loss_l1.item(), "g_adv": loss_adv.item(), "d": loss_d.item()}

    @torch.no_grad()
    def update_ema(self) -> None:
        d = self.cfg.ema_decay
        # Warm-up so early EMA is not dominated by the random init.
        d = min(d, (1 + self.step) / (10 + self.step))
        for e, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
            e.lerp_(p, 1 - d)
        for eb, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
            eb.copy_(b)

    # -- loop ------------------------------------------------------------------------------

    def run(
        self,
        stop_after: int | None = None,
        on_log: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Train from ``self.step`` to ``total_steps`` (or ``stop_after`` more steps)."""
        end = self.cfg.total_steps
        if stop_after is not None:
            end = min(end, self.step + stop_after)
        if self.step >= end:
            return
        losses_path = self.out / "losses.csv"
        t0, seen = time.time(), 0
        acc: dict[str, list[float]] = {}
        for step, l_n, ab_n in self.sampler.stream(self.step, end, self.batch_size_for):
            l_n = l_n.to(self.device, memory_format=torch.channels_last)
            ab_n = ab_n.to(self.device, memory_format=torch.channels_last)
            phase = "gan" if self.in_gan_phase(step) else "l1"
            out = self.gan_step(l_n, ab_n) if phase == "gan" else self.l1_step(l_n, ab_n)
            self.step = step + 1
            self.update_ema()
            seen += l_n.shape[0]
            for k, v in out.items():
                acc.setdefault(k, []).append(v)
            if self.step % self.cfg.log_every == 0 or self.step == end:
                rec = {"step": self.step, "phase": phase, "crops_per_s": seen / (time.time() - t0)}
                rec.update({k: sum(v) / len(v) for k, v in acc.items()})
                _append_csv(losses_path, rec)
                if on_log:
                    on_log(rec)
                acc, t0, seen = {}, time.time(), 0
            if self.validator and (self.step % self.cfg.val_every == 0 or self.step == end):
                self.validate()
            if self.step % self.cfg.checkpoint_every == 0 or self.step == end:
                self.save_checkpoint()
        plot_losses(losses_path, self.out / "losses.png")

    def export_model(self) -> UNetGenerator:
        """A copy of G_ema with BatchNorm statistics of its own (see :func:`recalibrate_bn`)."""
        model = copy.deepcopy(self.G_ema)
        with self._autocast():
            recalibrate_bn(
                model, self.sampler, self.cfg.bn_batches, self.cfg.batch_size, self.device
            )
        return model.eval()

    def validate(self) -> dict[str, float]:
        """Score G_ema on the validation set; export it and keep the best by quality score."""
        assert self.validator is not None
        model = self.export_model()
        summary = self.validator.run(model, self.step)
        training = {
            "steps": self.step,
            "phase": "gan" if self.in_gan_phase(self.step - 1) else "l1",
            "data": str(self.cfg.data_dir),
            "train_images": len(self.sampler.files),
            "crop": self.cfg.crop,
            "l1_steps": self.cfg.l1_steps,
            "batch_size": self.cfg.batch_size,
            "gan_batch_size": self.cfg.gan_batch_size,
            "hours": round(self.prior_hours + self.elapsed_seconds() / 3600, 3),
            "lineage": self.lineage,
            "gan_mode": self.cfg.gan_mode,
            "lambda_l1": self.cfg.lambda_l1,
            "lr_l1": self.cfg.lr_l1,
            "lr_g": self.cfg.lr_g,
            "lr_d": self.cfg.lr_d,
            "real_label": self.cfg.real_label,
            "rebalance": self.cfg.rebalance,
            "head": self.G.config.head,
            "class_mix": self.cfg.class_mix,
            "class_l1": self.cfg.class_l1,
            "degrade": self.cfg.degrade,
            "ema_decay": self.cfg.ema_decay,
            "precision": self.cfg.precision,
            "val_images": len(self.validator.files),
            "recipe": (
                f"pix2pix: {'rebalanced CE' if self.classes else 'L1'} pre-training, then "
                f"cGAN + {self.cfg.lambda_l1:g}*that; EMA of G"
            ),
        }
        # Save the model that was scored: G_ema with its own BatchNorm statistics.
        save_generator(model, self.out / "g_latest.safetensors", training=training, metrics=summary)
        save_discriminator(self.D, self.out / "d_latest.safetensors", steps=self.step)
        score = quality_score(summary)
        if score > self.best_score:
            self.best_score = score
            save_generator(
                model, self.out / "g_best.safetensors", training=training, metrics=summary
            )
            save_discriminator(self.D, self.out / "d_best.safetensors", steps=self.step)
        return summary


def _generator_config(cfg: TrainConfig) -> GeneratorConfig:
    if cfg.generator.head == "classes":  # a custom classes architecture
        return cfg.generator
    if cfg.head == "classes":
        return GeneratorConfig.classes(len(colorbins.gamut_bins()))
    if cfg.head != "regression":
        raise ValueError(f"unknown head {cfg.head!r}")
    return cfg.generator


def copy_matching(model: nn.Module, tensors: dict[str, torch.Tensor]) -> int:
    """Copy every tensor of ``tensors`` whose name and shape match one of ``model``'s
    parameters or buffers; returns how many were copied."""
    own = model.state_dict()
    hits = {k: v for k, v in tensors.items() if k in own and own[k].shape == v.shape}
    hits.pop("bin_ab", None)  # the bins are this run's, not the source's
    model.load_state_dict({**own, **{k: v.to(own[k].dtype) for k, v in hits.items()}})
    return len(hits)


#: Step numbers for the BN recalibration batches: far from any training step, always the same.
BN_STEP_OFFSET = 1_000_000_000


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module, sampler: CropSampler, batches: int, batch_size: int, device: torch.device
) -> None:
    """Recompute BatchNorm running statistics for ``model``'s own weights, in place.

    G_ema averages weights but its running statistics are copied from G, whose weights
    differ: the mismatch showed as blobs of wrong colour. Measured on the shipped generator
    (100 validation images): PSNR 23.36 -> 23.42 dB, CIEDE2000 10.97 -> 10.70, visibly fewer
    blobs. Uses ``batches`` fixed training batches (cumulative average, like SWA's update_bn).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or batches <= 0:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    was_training = model.training
    model.train()
    for i in range(batches):
        l_n, _ = sampler.batch(BN_STEP_OFFSET + i, batch_size)
        model(l_n.to(device, memory_format=torch.channels_last))
    for m, mom in zip(norms, momenta, strict=True):
        m.momentum = mom
    model.train(was_training)


def quality_score(summary: dict[str, float]) -> float:
    """The shipping bar as one number: colourfulness ratio (capped at 1), minus a heavy
    penalty for each dB of PSNR below the gray baseline."""
    cf = min(summary.get("colourfulness_ratio", 0.0), 1.0)
    deficit = max(0.0, summary.get("psnr_gray", 0.0) - summary.get("psnr", 0.0))
    return cf - 0.5 * deficit


def _append_csv(path: Path, rec: dict[str, Any]) -> None:
    cols = ["step", "phase", "crops_per_s", "l1", "g_adv", "d"]
    new = not path.exists()
    with path.open("a") as f:
        if new:
            f.write(",".join(cols) + "\n")
        f.write(",".join(_fmt(rec.get(c, "")) for c in cols) + "\n")


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)

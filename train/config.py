"""Training configuration: one frozen dataclass built by the entry point."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from restore.models import GeneratorConfig


@dataclass(frozen=True)
class TrainConfig:
    data_dir: Path
    out_dir: Path
    val_dir: Path | None = None
    seed: int = 0
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)  # when not init_g
    # "regression" (L1 on ab) or "classes" (rebalanced cross-entropy over quantised ab,
    # train/classloss.py); only read when G is built here, not from init_g
    head: str = "regression"
    class_mix: float = 0.5  # the rebalancing's uniform share (Zhang et al.'s lambda)
    class_l1: float = 0.0  # weight of an L1 term on the classes head's decoded colour
    # Share of crops whose input L is damaged like an old print (train/degrade.py); the
    # target stays the clean ab.
    degrade: float = 0.0
    # Crops: small crops are ~4x cheaper; images in our data have a 256 px short side,
    # so 128 crops see objects at the scale the generator meets at render size 256.
    crop: int = 128
    batch_size: int = 32
    # Phase 1: G alone with L1. Phase 2: cGAN + lambda_l1 * L1. Steps are global.
    l1_steps: int = 20_000
    gan_steps: int = 20_000
    lr_l1: float = 2e-4  # the prototype's rate; 1e-4 (paper) learned slower on CPU budgets
    lr_g: float = 1e-4  # phase 2, G
    lr_d: float = 1e-4  # phase 2, D
    beta1_gan: float = 0.5
    lambda_l1: float = 100.0
    gan_mode: str = "bce"  # bce | lsgan
    real_label: float = 0.9  # one-sided label smoothing
    # Colour rebalancing of the L1 term (train/rebalance.py): 0 = plain L1, 1 = the weights
    # of Zhang et al. 2016 (prior mixed with uniform by rebalance_mix).
    rebalance: float = 0.0
    rebalance_mix: float = 0.5
    rebalance_images: int = 800  # training images sampled for the ab prior
    gan_batch_size: int = 16
    ema_decay: float = 0.999  # EMA of G, used for validation and export
    bn_batches: int = 40  # batches that recompute the exported G_ema's BatchNorm statistics
    precision: str = "bf16"  # bf16 | fp32 (autocast on CPU)
    device: str = "cpu"
    checkpoint_every: int = 250
    val_every: int = 1000
    val_images: int = 100
    log_every: int = 25
    cache_mb: int = 6000  # decoded training images kept in memory (uint8 RGB)
    init_g: Path | None = None  # start G from a weights file (e.g. the shipped one)
    init_d: Path | None = None  # start D from a discriminator file
    # copy every tensor whose name and shape match from a generator file into a freshly
    # built G (e.g. the shipped regression model's encoder and decoder into a classes G)
    init_trunk: Path | None = None
    imagenet_encoder: Path | None = None  # torchvision resnet18 state dict (.safetensors/.pth)

    @property
    def total_steps(self) -> int:
        return self.l1_steps + self.gan_steps

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}

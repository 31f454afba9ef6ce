"""Training throughput: the loader alone, one optimiser step alone, and both together.

``python -m benchmarks.run --only train`` (or ``python -m benchmarks.train [DATA_DIR]``).
Crops/s per phase and head at the recipe's shapes (128² crops, batch 32 for phase 1 and 16
for phase 2, bf16 autocast, channels_last) and the step's share of the bf16 conv peak
(FLOPs of forward and backward counted by torch's FlopCounterMode). Without DATA_DIR the
images are synthetic 256x384 JPEGs; the shipped data's are about that size.
"""

from __future__ import annotations

import csv
import sys
import tempfile
from pathlib import Path

import torch
from restore.train.config import TrainConfig
from restore.train.loop import Trainer
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import inputs
from benchmarks.common import Table
from benchmarks.model import _peak_conv, _rate


def _trainer(data: Path, out: Path, head: str, **kw: object) -> Trainer:
    cfg = TrainConfig(
        data_dir=data, out_dir=out, head=head, rebalance_images=40, cache_mb=2000, **kw
    )
    return Trainer(cfg)


def _step_flops(trainer: Trainer, gan: bool, batch: int) -> float:
    l_n, ab_n = trainer.sampler.batch(0, batch)
    with FlopCounterMode(display=False) as counter:
        (trainer.gan_step if gan else trainer.l1_step)(l_n, ab_n)
    return float(counter.get_total_flops())


def report(data: Path | None, seconds: float, steps: int = 20) -> Table:
    """The training throughput table (about ``seconds`` per figure, ``steps`` steps end to
    end per phase)."""
    table = Table(
        "Training throughput (128² crops, bf16)",
        [
            "head",
            "phase",
            "batch",
            "loader crops/s",
            "step crops/s",
            "end to end crops/s",
            "step's share of bf16 conv peak",
        ],
    )
    conv, conv_flops = _peak_conv()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        peak = _rate(conv, conv_flops, seconds)
    table.notes.append(f"bf16 conv peak (benchmarks.model's kernel): {peak / 1e9:.0f} GFLOP/s")
    with tempfile.TemporaryDirectory(prefix="restore-train-bench-") as tmp:
        work = Path(tmp)
        if data is None:
            data = inputs.write_photos(work / "photos", 384, 256, 48)
        for head in ("regression", "classes"):
            for gan, batch in ((False, 32), (True, 16)):
                out = work / f"{head}-{gan}"
                t = _trainer(
                    data,
                    out,
                    head,
                    l1_steps=0 if gan else 10**6,
                    degrade=0.5,
                    log_every=steps // 2,
                    checkpoint_every=10**6,
                )
                loader = _rate(lambda t=t, b=batch: t.sampler.batch(7, b), batch, seconds)
                l_n, ab_n = t.sampler.batch(0, batch)
                step = t.gan_step if gan else t.l1_step
                rate = _rate(lambda s=step, x=l_n, y=ab_n: s(x, y), batch, seconds)
                flops = _step_flops(t, gan, batch)
                t.run(stop_after=steps)  # the second logged half: warm cache and allocator
                rows = list(csv.DictReader((out / "losses.csv").open()))
                e2e = float(rows[-1]["crops_per_s"])
                share = flops * rate / batch / peak
                table.add(
                    head, "cGAN" if gan else "colour loss", batch, loader, rate, e2e, f"{share:.0%}"
                )
    table.notes.append(
        "step: one optimiser step on a fixed batch; end to end: Trainer.run with the "
        "loader's prefetch thread (half the crops damaged as old prints)"
    )
    return table


if __name__ == "__main__":
    arg = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    print(report(arg, 3.0).render())

"""Weight-space interpolation of two generators fine-tuned from one parent ("model soup").

Two runs that start from the same weights and differ in their loss (here: plain L1 and
colour-rebalanced L1) stay in one basin, so ``(1 - alpha) * A + alpha * B`` is a working
generator whose behaviour lies between theirs (Wortsman et al. 2022, WiSE-FT): one knob
between the plain run's accuracy and the rebalanced run's colour, at no inference cost.
BatchNorm statistics do not interpolate; they are recomputed on training batches.

    python -m restore.train.soup A.safetensors B.safetensors --alpha 0.5 \\
        --data ../shared/data/train --val ../shared/data/val --out soup.safetensors
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
from restore.models import UNetGenerator

from restore.engine import Colorizer, EngineConfig
from restore.evaluate import evaluate, read_truth_images
from restore.imagefiles import list_images
from restore.weights import load_generator, save_generator

from .data import CropSampler
from .loop import recalibrate_bn


def interpolate(a: UNetGenerator, b: UNetGenerator, alpha: float) -> UNetGenerator:
    """A new generator with floating-point parameters ``(1 - alpha) * a + alpha * b``.

    Raises:
        ValueError: the architectures differ, or alpha is outside [0, 1].
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha {alpha} outside [0, 1]")
    if a.config != b.config:
        raise ValueError(f"different architectures: {a.config} vs {b.config}")
    out = copy.deepcopy(a)
    sb = b.state_dict()
    with torch.no_grad():
        for name, t in out.state_dict().items():
            if t.is_floating_point():
                t.lerp_(sb[name].to(t.dtype), alpha)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m restore.train.soup", description=__doc__)
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--alpha", type=float, required=True, help="weight of B")
    ap.add_argument("--data", type=Path, required=True, help="training images (BN statistics)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--bn-batches", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--val", type=Path, help="score on these colour photos and store the metrics")
    args = ap.parse_args(argv)
    a, info_a = load_generator(args.a)
    b, info_b = load_generator(args.b)
    model = interpolate(a, b, args.alpha).to(memory_format=torch.channels_last)
    sampler = CropSampler(args.data, args.crop, seed=0, cache_mb=1000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        recalibrate_bn(model, sampler, args.bn_batches, args.batch_size, torch.device("cpu"))
    ta = info_a.metadata.get("training", {})
    tb = info_b.metadata.get("training", {})
    training = {
        **ta,
        "steps": max(int(ta.get("steps") or 0), int(tb.get("steps") or 0)),
        "hours": round(float(ta.get("hours") or 0) + float(tb.get("hours") or 0), 3),
        "hours_note": "sum of both runs' hours: a common parent's hours count twice",
        "soup": {"a": str(args.a), "b": str(args.b), "alpha": args.alpha},
        "soup_parents": {"a": ta, "b": tb},
        "recipe": f"weight interpolation (1-{args.alpha:g})*A + {args.alpha:g}*B, BN recomputed",
    }
    metrics: dict[str, float] = {}
    if args.val:
        colorizer = Colorizer(copy.deepcopy(model), EngineConfig(device="cpu", batch_size=1))
        _, metrics = evaluate(colorizer, read_truth_images(list_images(args.val)))
        training["val_images"] = int(metrics.get("n", 0))
    save_generator(model.eval(), args.out, training=training, metrics=metrics)
    print(json.dumps({"out": str(args.out), "alpha": args.alpha, "metrics": metrics}))


if __name__ == "__main__":
    main()

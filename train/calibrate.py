"""Store a chroma gain (and, for a classes head, a decoding temperature) in a generator
file, optionally scoring it on validation photos.

A generator trained for accuracy (L1) predicts colours duller than real ones: where it is
unsure of a colour it hedges towards gray. Scaling its ab by a constant trades accuracy for
colourfulness along one curve; this tool writes the factor chosen for a model into the
weights' ``inference`` metadata, which the engine applies (times the user's ``--saturation``).
A classification head's annealed-mean temperature (``--temperature``; the engine's default
``--vividness`` is 1 minus it) is stored the same way. Choose both on photos you do not
report on.

    python -m restore.train.calibrate G.safetensors --gain 1.3 \\
        --val ../shared/data/val --out weights/restore_g.safetensors
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

from restore.engine import Colorizer, EngineConfig
from restore.evaluate import evaluate, read_truth_images
from restore.imagefiles import list_images
from restore.weights import load_generator, save_generator


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m restore.train.calibrate", description=__doc__)
    ap.add_argument("weights", type=Path)
    ap.add_argument("--gain", type=float, default=1.0, help="chroma gain, in (0, 4]")
    ap.add_argument(
        "--temperature", type=float, help="classes head: annealed-mean temperature, in [0, 1]"
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--val", type=Path, help="score on these colour photos and store the metrics")
    ap.add_argument("--note", default="", help="how the gain was chosen (stored)")
    args = ap.parse_args(argv)
    if not 0.0 < args.gain <= 4.0:
        ap.error("--gain must be in (0, 4]")
    if args.temperature is not None and not 0.0 <= args.temperature <= 1.0:
        ap.error("--temperature must be in [0, 1]")
    model, info = load_generator(args.weights)
    inference = {**info.metadata.get("inference", {}), "chroma_gain": args.gain}
    if args.temperature is not None:
        if info.config.head != "classes":
            ap.error("--temperature needs weights with a classes head")
        inference["temperature"] = args.temperature
    if args.note:
        inference["chroma_gain_note"] = args.note
    metrics = info.metadata.get("metrics", {})
    if args.val:
        # What the engine will do with the written file: its ab times the gain.
        vivid = None if args.temperature is None else 1.0 - args.temperature
        config = EngineConfig(device="cpu", batch_size=1, saturation=args.gain, vividness=vivid)
        colorizer = Colorizer(copy.deepcopy(model), config)
        _, metrics = evaluate(colorizer, read_truth_images(list_images(args.val)))
    save_generator(
        model,
        args.out,
        training=info.metadata.get("training"),
        metrics=metrics,
        inference=inference,
    )
    print(json.dumps({"out": str(args.out), "inference": inference, "metrics": metrics}))


if __name__ == "__main__":
    main()

"""Command line: the only module that talks to the user."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from restore import __version__
from restore.cli.common import REFINE_OPTION, SATURATION_OPTION, VIVIDNESS_OPTION


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="restore")
def main() -> None:
    """Colorize black-and-white photos and films."""


@main.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--val", "val_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory (checkpoints, metrics, samples). Keep it outside the work tree.",
)
@click.option(
    "--l1-steps", default=20_000, show_default=True, help="Global step where phase 2 (cGAN) starts."
)
@click.option("--gan-steps", default=20_000, show_default=True, help="Steps of phase 2.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--gan-batch-size", default=16, show_default=True)
@click.option("--crop", default=128, show_default=True)
@click.option("--lr-l1", default=2e-4, show_default=True)
@click.option("--lr-g", default=1e-4, show_default=True)
@click.option("--lr-d", default=1e-4, show_default=True)
@click.option("--lambda-l1", default=100.0, show_default=True)
@click.option("--gan-mode", type=click.Choice(["bce", "lsgan"]), default="bce", show_default=True)
@click.option("--real-label", default=0.9, show_default=True, help="One-sided label smoothing.")
@click.option(
    "--rebalance",
    default=0.0,
    show_default=True,
    help="Colour rebalancing of the L1 term: 0 plain L1, 1 Zhang et al.'s rarity weights.",
)
@click.option("--rebalance-mix", default=0.5, show_default=True, help="Uniform mix of the prior.")
@click.option(
    "--head",
    type=click.Choice(["regression", "classes"]),
    default="regression",
    show_default=True,
    help="regression: L1 on ab. classes: rebalanced cross-entropy over quantised ab "
    "(Zhang et al. 2016), decoded by the annealed mean. Ignored with --init-g.",
)
@click.option(
    "--class-mix", default=0.5, show_default=True, help="classes: uniform mix of the prior."
)
@click.option(
    "--class-l1",
    default=0.0,
    show_default=True,
    help="classes: weight of an L1 term on the decoded colour.",
)
@click.option(
    "--degrade",
    default=0.0,
    show_default=True,
    help="Share of crops whose gray input is damaged like an old print (grain, blur, fading, "
    "JPEG, specks, scratches).",
)
@click.option("--cache-mb", default=6000, show_default=True, help="Decoded-image cache.")
@click.option("--ema-decay", default=0.999, show_default=True)
@click.option(
    "--bn-batches",
    default=40,
    show_default=True,
    help="Batches that recompute the exported EMA generator's BatchNorm statistics.",
)
@click.option("--precision", type=click.Choice(["bf16", "fp32"]), default="bf16", show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--val-every", default=1000, show_default=True)
@click.option("--val-images", default=100, show_default=True)
@click.option("--checkpoint-every", default=250, show_default=True)
@click.option("--log-every", default=25, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--threads", type=int, default=None, help="torch intra-op threads (default: all cores)."
)
@click.option(
    "--init-g",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Start G from a weights file (e.g. weights/restore_g.safetensors).",
)
@click.option(
    "--init-d",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Start D from a discriminator file (e.g. weights/restore_d.safetensors).",
)
@click.option(
    "--imagenet-encoder",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="torchvision ResNet18 ImageNet state dict to start the encoder from.",
)
@click.option(
    "--init-trunk",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Copy the tensors that fit from a generator file (e.g. the shipped regression "
    "model's encoder) into the new G.",
)
@click.option("--steps-this-run", type=int, default=None, help="Stop after this many steps.")
def train(threads: int | None, steps_this_run: int | None, **kw: object) -> None:
    """Train the colorizer on a folder of colour photos (resumes from OUT if it has a checkpoint)."""
    import torch

    from restore.runtime import tune_allocator
    from restore.train.config import TrainConfig
    from restore.train.loop import Trainer

    _setup_logging(False)
    tune_allocator(one_arena=False)  # training: as measured before the video change
    if threads:
        torch.set_num_threads(threads)
    cfg = TrainConfig(**kw)  # type: ignore[arg-type]
    trainer = Trainer(cfg)
    resumed = trainer.load_checkpoint()
    click.echo(f"{'resumed' if resumed else 'starting'} at step {trainer.step} in {cfg.out_dir}")

    def on_log(rec: dict) -> None:
        click.echo(
            " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items())
        )

    trainer.run(stop_after=steps_this_run, on_log=on_log)
    click.echo(f"stopped at step {trainer.step}")


@main.command("eval")
@click.argument("truth_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--render-size", default=256, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    default="auto",
    show_default=True,
)
@click.option("--limit", type=int, default=None, help="Only the first N images (sorted).")
@click.option("--skip", type=int, default=0, help="Leave out the first N images (sorted).")
@REFINE_OPTION
@SATURATION_OPTION
@VIVIDNESS_OPTION
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write scores as JSON.",
)
def eval_cmd(
    truth_dir: Path,
    weights: Path | None,
    render_size: int,
    device: str,
    precision: str,
    limit: int | None,
    skip: int,
    refine: bool,
    saturation: float,
    vividness: float | None,
    json_path: Path | None,
) -> None:
    """Colorize gray versions of colour photos in TRUTH_DIR and score them against the originals."""
    from rich.console import Console
    from rich.table import Table

    from restore.engine import REFINE_RADIUS, Colorizer, EngineConfig
    from restore.errors import WeightsError
    from restore.evaluate import evaluate, read_truth_images
    from restore.imagefiles import list_images

    try:
        colorizer = Colorizer.from_weights(
            weights,
            EngineConfig(
                device=device,
                precision=precision,
                render_size=render_size,
                batch_size=1,
                refine_radius=REFINE_RADIUS if refine else 0,
                saturation=saturation,
                vividness=vividness,
            ),
        )
    except WeightsError as e:
        raise click.ClickException(str(e)) from e
    files = list_images(truth_dir)[skip:][:limit]
    scores, summary = evaluate(colorizer, read_truth_images(files))
    console = Console()
    table = Table(title=f"{len(scores)} images, render size {render_size}")
    for col in ("image", "PSNR", "gray PSNR", "SSIM", "ΔE2000", "CF", "truth CF", "ΔCF"):
        table.add_column(col, justify="right")
    rows = scores if len(scores) <= 40 else []
    for s in rows:
        table.add_row(
            s.name,
            f"{s.psnr:.2f}",
            f"{s.psnr_gray:.2f}",
            f"{s.ssim:.3f}",
            f"{s.delta_e:.2f}",
            f"{s.colourfulness:.1f}",
            f"{s.colourfulness_truth:.1f}",
            f"{s.delta_cf:+.1f}",
        )
    m = summary
    if m:
        table.add_row(
            "mean",
            f"{m['psnr']:.2f}",
            f"{m['psnr_gray']:.2f}",
            f"{m['ssim']:.3f}",
            f"{m['delta_e']:.2f}",
            f"{m['colourfulness']:.1f}",
            f"{m['colourfulness_truth']:.1f}",
            f"{m['delta_cf']:+.1f}",
            style="bold",
        )
    console.print(table)
    if m:
        console.print(
            f"colourfulness / truth: {m['colourfulness_ratio']:.3f}   "
            f"PSNR - gray PSNR: {m['psnr'] - m['psnr_gray']:+.2f} dB"
        )
    if json_path:
        payload = {
            "weights": colorizer.info.identity if colorizer.info else None,
            "render_size": render_size,
            "mean": summary,
            "images": [s.to_dict() for s in scores],
        }
        json_path.write_text(json.dumps(payload, indent=2))


@main.command("export")
@click.option(
    "--onnx",
    "onnx_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the generator as ONNX (dynamic batch, height and width) to this file.",
)
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@VIVIDNESS_OPTION
def export_cmd(onnx_path: Path, weights: Path | None, vividness: float | None) -> None:
    """Export the generator for other runtimes: normalised L in, normalised ab out (the
    file's metadata says how; the weights' calibration is built in)."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise click.ClickException(
            f"ONNX export needs the onnx extra: pip install 'restore[onnx]' ({e})"
        ) from e
    from restore.errors import WeightsError
    from restore.export import export_onnx

    try:
        meta = export_onnx(onnx_path, weights, vividness)
    except WeightsError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"wrote {onnx_path}")
    click.echo(f"  input  {meta['input']}")
    click.echo(f"  output {meta['output']}")


from restore.cli import photos as _photos  # noqa: E402,F401
from restore.cli import video as _video  # noqa: E402,F401

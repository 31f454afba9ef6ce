"""`restore photos`: colorize folders of black-and-white photos at full resolution."""

from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path

import click

from restore.cli import _setup_logging, main

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DEFAULT_MAX_PIXELS = 200_000_000  # restore.imageio's default; not imported to keep --help fast
EXIT_INTERRUPTED = 130  # what shells report for Ctrl-C


def _interrupt_on_sigterm(signum: int, frame: object) -> None:
    # `kill`, systemd and cron timeouts send SIGTERM: stop like Ctrl-C (temporaries removed,
    # summary and report written) instead of dying mid-file.
    raise KeyboardInterrupt


class StartupError(click.ClickException):
    """Nothing could be processed (no model, bad output folder): a usage-level error."""

    exit_code = 2


def _check_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not _DEVICE.match(value):
        raise click.BadParameter("use auto, cpu, cuda, cuda:N or mps")
    return value


def _check_render_size(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value % 32:
        lo, hi = value // 32 * 32, value // 32 * 32 + 32
        raise click.BadParameter(f"must be a multiple of 32 (e.g. {max(lo, 32)} or {hi})")
    return value


@main.command()
@click.argument(
    "paths",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, path_type=Path),
    metavar="PATH...",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Folder for the outputs, mirroring the input tree (default: <folder>_restored beside "
    "each folder, <name>_restored.<ext> beside each file). With one file, may name the file.",
)
@click.option(
    "--weights",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Generator weights (.safetensors). Default: the weights shipped with restore.",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    callback=_check_device,
    help="auto, cpu, cuda, cuda:N or mps.",
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    default="auto",
    show_default=True,
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Images per generator call.",
)
@click.option(
    "--render-size",
    type=click.IntRange(min=32, max=2048),
    default=256,
    show_default=True,
    callback=_check_render_size,
    help="Short side the generator sees (multiple of 32); colours are upsampled to full size.",
)
@click.option("--overwrite", is_flag=True, help="Redo outputs that already exist.")
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a JSON report (per file: output, status, error; totals; weights; time).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse larger images (decompression-bomb guard; memory grows with image size).",
)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads (default: all cores).")
@click.option("-q", "--quiet", is_flag=True, help="No progress, only the summary.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging on stderr.")
@click.pass_context
def photos(
    ctx: click.Context,
    paths: tuple[Path, ...],
    output: Path | None,
    weights: Path | None,
    device: str,
    precision: str,
    batch_size: int,
    render_size: int,
    overwrite: bool,
    report_path: Path | None,
    max_pixels: int,
    threads: int | None,
    quiet: bool,
    verbose: bool,
) -> None:
    """Colorize black-and-white photos in PATH... (files or folders, walked recursively).

    Outputs keep each input's format, size, bit depth, EXIF and ICC profile. Finished
    outputs are skipped, so running the same command again only does new work.

    Exit codes: 0 all done or skipped, 1 some files failed, 2 usage error.
    """
    import os

    import cv2
    import torch
    from rich.console import Console

    from restore import photos as job
    from restore.cli.ui import JobProgress, print_summary
    from restore.engine import Colorizer, EngineConfig
    from restore.errors import OutputPathError, WeightsError
    from restore.jobs import FileResult, JobReport
    from restore.runtime import tune_allocator
    from restore.weights import default_weights

    _setup_logging(verbose)
    try:
        planned = job.plan(list(paths), output)
    except OutputPathError as e:
        raise StartupError(str(e)) from e
    if not planned.tasks:
        click.echo("No images found (looked for .jpg .jpeg .png .tif .tiff .webp .bmp).")
        ctx.exit(0)

    report = JobReport(command="photos")  # wall time includes loading the model
    weights = weights or default_weights()
    if not weights.is_file():
        raise StartupError(
            f"no model weights at {weights}.\nThe default weights are not installed yet: pass "
            "--weights FILE (a .safetensors generator, e.g. written by `restore train`) "
            "or set RESTORE_WEIGHTS=FILE."
        )
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise StartupError(
            "--device cuda: CUDA is not available on this machine (try --device cpu)"
        )
    if device == "mps" and not torch.backends.mps.is_available():
        raise StartupError("--device mps: MPS is not available on this machine (try --device cpu)")
    tune_allocator()
    if threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
    engine = EngineConfig(
        device=device, precision=precision, render_size=render_size, batch_size=batch_size
    )
    try:
        colorizer = Colorizer.from_weights(weights, engine)
    except WeightsError as e:
        raise StartupError(str(e)) from e

    config = job.PhotosConfig(overwrite=overwrite, max_pixels=max_pixels)
    report.weights = colorizer.info.identity if colorizer.info else None
    stream = open(os.devnull, "w") if quiet else sys.stdout  # noqa: SIM115
    interrupted = False
    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        with JobProgress("images", len(planned.tasks), stream=stream) as progress:
            removed = job.remove_stale_temps(planned)
            if removed:
                progress.message(f"removed {removed} unfinished file(s) left by an interrupted run")

            def on_result(result: FileResult) -> None:
                report.add(result)
                progress.end_file(result)

            try:
                job.run(planned.tasks, colorizer, config, on_result)
            except KeyboardInterrupt:
                interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        if quiet:
            stream.close()
    report.finished = time.time()
    console = Console(highlight=False)
    print_summary(report, console, "images")
    if report_path:
        report.write(report_path)
        console.print(f"report: {report_path}")
    if interrupted:
        left = len(planned.tasks) - len(report.results)
        console.print(
            f"interrupted: {left} image(s) not done; run the same command again to finish."
        )
        ctx.exit(EXIT_INTERRUPTED)
    ctx.exit(int(report.exit_code()))

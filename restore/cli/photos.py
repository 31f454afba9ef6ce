"""`restore photos`: colorize folders of black-and-white photos at full resolution."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from restore.cli import _setup_logging, main
from restore.cli.common import (
    EngineOptions,
    StartupError,
    begin_job,
    check_engine_options,
    cluster_options,
    finish,
    job_options,
    job_session,
    load_colorizer,
    run_on_ray,
)

if TYPE_CHECKING:
    from restore.cluster import RayOptions

DEFAULT_MAX_PIXELS = 200_000_000  # restore.imageio's default; not imported to keep --help fast


@main.command()
@job_options(
    "images",
    output_help="Folder for the outputs, mirroring the input tree (default: <folder>_restored beside "
    "each folder, <name>_restored.<ext> beside each file). With one file, may name the file.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse larger images (decompression-bomb guard; memory grows with image size).",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Repair the print before colorizing it: dust specks, scratches and hairs found by a "
    "small network and filled from their surroundings; a faded tone stretched back "
    "(conservatively); film grain reduced (--repair-grain). The report says per file what "
    "share of pixels was filled, the grain measured and the tone stretch applied.",
)
@click.option(
    "--repair-threshold",
    type=click.FloatRange(0.05, 0.95),
    default=0.5,  # RepairConfig.threshold
    show_default=True,
    help="With --repair: the defect probability above which a pixel is filled (lower "
    "fills more, including some real detail).",
)
@click.option(
    "--repair-grain",
    type=click.FloatRange(0.0, 3.0),
    default=1.0,  # RepairConfig.denoise
    show_default=True,
    help="With --repair: reduce film grain, as strongly as it is read in each picture "
    "times this (0 keeps the grain; 2 smooths harder and softens fine detail). Pictures "
    "with less grain than a clean scan are left alone.",
)
@click.option(
    "--no-colorize",
    is_flag=True,
    help="With --repair: write the repaired picture in black and white, without colour.",
)
@cluster_options
@click.pass_context
def photos(
    ctx: click.Context,
    paths: tuple[Path, ...],
    output: Path | None,
    engine: EngineOptions,
    cluster: RayOptions | None,
    overwrite: bool,
    report_path: Path | None,
    max_pixels: int,
    repair: bool,
    repair_threshold: float,
    repair_grain: float,
    no_colorize: bool,
    quiet: bool,
    verbose: bool,
) -> None:
    """Colorize black-and-white photos in PATH... (files or folders, walked recursively).

    Outputs keep each input's format, size, bit depth, EXIF and ICC profile. Finished
    outputs are skipped, so running the same command again only does new work.

    Exit codes: 0 all done or skipped, 1 some files failed, 2 usage error, 130 interrupted.
    """
    from restore import photos as job
    from restore.cli.ui import JobProgress
    from restore.errors import OutputPathError
    from restore.imagefiles import FORMATS
    from restore.jobs import JobReport

    _setup_logging(verbose)
    check_engine_options(engine, cluster)
    if no_colorize and not repair:
        raise click.UsageError("--no-colorize only makes sense with --repair")
    try:
        planned = job.plan(list(paths), output)
    except OutputPathError as e:
        raise StartupError(str(e)) from e
    if not planned.tasks:
        click.echo(f"No images found (looked for {' '.join(FORMATS)}).")
        ctx.exit(0)

    report = JobReport(command="photos")  # wall time includes loading the model
    from restore.repair import RepairConfig

    config = job.PhotosConfig(
        overwrite=overwrite,
        max_pixels=max_pixels,
        repair=RepairConfig(threshold=repair_threshold, denoise=repair_grain) if repair else None,
        colorize=not no_colorize,
    )
    repairer = None
    if cluster is None:
        colorizer = load_colorizer(engine)
        report.weights = colorizer.info.identity if colorizer.info else None
        if config.repair is not None:
            from restore.errors import WeightsError
            from restore.repair import PhotoRepairer

            try:
                repairer = PhotoRepairer(config.repair)
            except WeightsError as e:
                raise StartupError(f"--repair: {e}") from e
    note = None
    with (
        job_session(quiet) as stream,
        JobProgress(
            "images", len(planned.tasks) + len(planned.passed_over), stream=stream
        ) as progress,
    ):
        on_result = begin_job(planned, report, progress)

        try:
            if cluster is None:
                marking = job.MARKING if config.colorize else job.REPAIR_MARKING
                job.run(planned.tasks, colorizer, config, on_result, marking, repairer)
            else:
                from restore.cluster.photos import run as run_photos

                report.weights = run_on_ray(
                    cluster,
                    lambda ray: run_photos(planned.tasks, engine, config, cluster, ray, on_result),
                )
        except KeyboardInterrupt:
            left = len(planned.tasks) + len(planned.passed_over) - len(report.results)
            note = f"interrupted: {left} image(s) not done; run the same command again to finish."
    finish(ctx, report, "images", report_path, note)

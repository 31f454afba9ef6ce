"""`restore video`: colorize black-and-white films, keeping sound, timestamps and every stream."""

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

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")  # fmt: skip


def _check_codec(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    import av

    try:
        codec = av.Codec(value, "w")
    except ValueError as e:  # av.codec.codec.UnknownCodecError
        raise click.BadParameter(f"no encoder named {value!r} in this FFmpeg build") from e
    if codec.type != "video":
        raise click.BadParameter(f"{value!r} is a {codec.type} encoder, not a video encoder")
    return codec.name


@main.command()
@job_options(
    "frames",
    output_help="Folder for the outputs, mirroring the input tree (default: <folder>_restored beside "
    "each folder, <name>_restored.<ext> beside each file; same container). With one file, may "
    "name the file.",
)
@click.option(
    "--codec",
    callback=_check_codec,
    help="Video encoder. Default libx264 (the container's own codec where H.264 "
    "cannot go, e.g. VP9 in .webm).",
)
@click.option(
    "--crf",
    type=click.IntRange(0, 63),
    default=18,
    show_default=True,
    help="Constant quality (lower is better; 18 is visually lossless for x264).",
)
@click.option(
    "--preset",
    type=click.Choice(X264_PRESETS),
    default="veryfast",
    show_default=True,
    help="x264/x265 speed preset (slower: smaller files, same quality).",
)
@click.option(
    "--stabilize/--no-stabilize",
    default=True,
    show_default=True,
    help="Temporal colour stabilisation (less colour flicker): where the picture is unchanged "
    "or moved smoothly (optical flow), each pixel's colour is averaged with the previous "
    "frames'; changed content and each new shot keep their own colours. About 8 ms per "
    "720p frame on one core.",
)
@click.option(
    "--stabilize-strength",
    type=click.FloatRange(0.0, 0.99),
    default=0.9,  # StabilizeConfig.strength (kept literal: the CLI imports no numerics)
    show_default=True,
    help="Share of the previous frame's colour a still pixel keeps (0.9: an average over "
    "about 10 frames; higher is steadier but slower to follow real changes).",
)
@click.option(
    "--stabilize-motion",
    type=click.FloatRange(min=0.0, min_open=True),
    default=4.0,  # StabilizeConfig.motion
    show_default=True,
    help="Change of lightness (CIE L units) at which a pixel keeps only half the strength: "
    "raise it for grainy or noisy film (less flicker), lower it if colours lag behind "
    "moving things.",
)
@click.option(
    "--stabilize-cut",
    type=click.FloatRange(min=0.0, min_open=True),
    default=10.0,  # StabilizeConfig.cut
    show_default=True,
    help="Mean change of lightness over a frame (after motion alignment) that counts as a "
    "new shot, where colours start afresh: lower it if colours carry over a cut, raise it "
    "if fast camera moves or damaged frames reset them.",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Repair old film before colorizing it: --deflicker, --remove-dirt, "
    "--remove-scratches and --repair-grain 1 together.",
)
@click.option(
    "--remove-dirt",
    is_flag=True,
    help="Remove dust and dirt that sit on one frame only: a pixel that stands out of both "
    "neighbouring frames (aligned by optical flow) in the same direction, where those agree, "
    "takes their mean (line scratches: --remove-scratches).",
)
@click.option(
    "--remove-scratches",
    is_flag=True,
    help="Repair vertical line scratches: a thin bright or dark line that runs down the whole "
    "frame, evenly, takes the value of the picture beside it. Wider or shorter vertical "
    "things (poles, door frames) are left alone.",
)
@click.option(
    "--repair-grain",
    type=click.FloatRange(0.0, 3.0),
    default=None,  # DirtConfig.grain
    help="Reduce film grain: each pixel is averaged with the neighbouring frames, aligned by "
    "optical flow, as far as they match it on the scale of the grain measured between frames "
    "(moving things the flow missed keep their own value). Strength: 1 with --repair, else 0 "
    "(off); 2 smooths harder. The report gives the grain measured.",
)
@click.option(
    "--deflicker",
    is_flag=True,
    help="Remove brightness flicker (old film): each frame's tone is matched to the average "
    "of its neighbours in the same shot before it is colorized; the output carries the "
    "steadied lightness. The report gives the mean correction (L units) and the shots found.",
)
@click.option(
    "--deflicker-radius",
    type=click.IntRange(1, 50),
    default=6,  # DeflickerConfig.radius
    show_default=True,
    help="Frames on each side whose tone is averaged: higher removes slower flicker, lower "
    "follows real changes of light (fades, clouds) more closely.",
)
@click.option(
    "--no-colorize",
    is_flag=True,
    help="With any repair option: write the repaired film in black and white, without colour "
    "(the generator is not run).",
)
@click.option(
    "--ray-segment-seconds",
    type=click.FloatRange(min=1.0),
    default=60.0,  # restore.cluster.video.SEGMENT_SECONDS
    show_default=True,
    help="With --engine ray: films are cut into segments of about this length (at "
    "keyframes), colorized in parallel and joined.",
)
@cluster_options
@click.pass_context
def video(
    ctx: click.Context,
    paths: tuple[Path, ...],
    output: Path | None,
    engine: EngineOptions,
    cluster: RayOptions | None,
    ray_segment_seconds: float,
    no_colorize: bool,
    codec: str | None,
    crf: int,
    preset: str,
    stabilize: bool,
    stabilize_strength: float,
    stabilize_motion: float,
    stabilize_cut: float,
    repair: bool,
    remove_dirt: bool,
    remove_scratches: bool,
    repair_grain: float | None,
    deflicker: bool,
    deflicker_radius: int,
    overwrite: bool,
    report_path: Path | None,
    quiet: bool,
    verbose: bool,
) -> None:
    """Colorize black-and-white films in PATH... (files or folders, walked recursively).

    Every frame keeps its timestamp, so the output has the same frames and duration and
    drops into an editing timeline where the original was. Audio, subtitles, chapters and
    metadata are copied unchanged (audio the output container cannot hold is re-encoded,
    with a warning). Video is H.264 (CRF 18, yuv420p, BT.709); odd frame sizes are padded
    by one pixel, as 4:2:0 video cannot hold them. Colours are stabilised over time
    (--no-stabilize: each frame coloured on its own). Finished outputs are skipped.

    Exit codes: 0 all done or skipped, 1 some files failed, 2 usage error, 130 interrupted.
    """
    from restore.cli.ui import JobProgress
    from restore.errors import OutputPathError
    from restore.jobs import JobReport
    from restore.video import EncodeConfig, plan
    from restore.video.deflicker import DeflickerConfig
    from restore.video.dirt import DirtConfig
    from restore.video.files import VIDEO_SUFFIXES
    from restore.video.job import VideoJobConfig, run
    from restore.video.scratches import ScratchConfig
    from restore.video.temporal import StabilizeConfig

    _setup_logging(verbose)
    check_engine_options(engine, cluster)
    if repair_grain is None:
        repair_grain = 1.0 if repair else 0.0
    if no_colorize and not (repair or deflicker or remove_dirt or remove_scratches or repair_grain):
        raise click.UsageError(
            "--no-colorize only makes sense with --repair, --deflicker, --remove-dirt, "
            "--remove-scratches or --repair-grain"
        )
    try:
        planned = plan(list(paths), output)
    except OutputPathError as e:
        raise StartupError(str(e)) from e
    if not planned.tasks:
        click.echo(f"No videos found (looked for {' '.join(sorted(VIDEO_SUFFIXES))}).")
        ctx.exit(0)

    report = JobReport(command="video")  # wall time includes loading the model
    if cluster is None:
        colorizer = load_colorizer(engine)
        report.weights = colorizer.info.identity if colorizer.info else None
    config = VideoJobConfig(
        encode=EncodeConfig(codec=codec, crf=crf, preset=preset, threads=engine.threads or 0),
        stabilize=StabilizeConfig(
            strength=stabilize_strength, motion=stabilize_motion, cut=stabilize_cut
        )
        if stabilize
        else None,
        deflicker=DeflickerConfig(radius=deflicker_radius) if deflicker or repair else None,
        dirt=DirtConfig(
            remove_dirt=remove_dirt or repair,
            scratches=ScratchConfig() if remove_scratches or repair else None,
            grain=repair_grain,
        )
        if remove_dirt or repair or repair_grain or remove_scratches
        else None,
        overwrite=overwrite,
        colorize=not no_colorize,
    )
    note = None
    with (
        job_session(quiet) as stream,
        JobProgress(
            "frames", len(planned.tasks) + len(planned.passed_over), stream=stream
        ) as progress,
    ):
        on_result = begin_job(planned, report, progress)

        try:
            if cluster is None:
                run(planned.tasks, colorizer, config, on_result, progress)
            else:
                from restore.cluster.video import run as run_films

                report.weights = run_on_ray(
                    cluster,
                    lambda ray: run_films(
                        planned.tasks, engine, config, cluster, ray, on_result, ray_segment_seconds
                    ),
                )
        except KeyboardInterrupt:
            left = len(planned.tasks) + len(planned.passed_over) - len(report.results)
            note = (
                f"interrupted: nothing was written under a final name for the {left} "
                "film(s) not done. Run the same command again to finish"
                + (" (finished segments are reused)." if cluster is not None else ".")
            )
    finish(ctx, report, "frames", report_path, note)

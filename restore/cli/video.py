"""`restore video`: colorize black-and-white films, keeping sound, timestamps and every stream."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from restore.cli import _setup_logging, main
from restore.cli.photos import (
    EXIT_INTERRUPTED,
    StartupError,
    _check_device,
    _check_render_size,
    _interrupt_on_sigterm,
)

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


class _FileProgress:
    """Adapts JobProgress to the pipeline's progress callbacks for one file."""

    def __init__(self, progress: object, path: Path) -> None:
        self.progress = progress
        self.path = path

    def start(self, total_frames: int | None) -> None:
        self.progress.begin_file(self.path, total_frames)  # type: ignore[attr-defined]

    def advance(self, frames: int) -> None:
        self.progress.advance(frames)  # type: ignore[attr-defined]


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
    help="Output folder (files keep their names; folders are mirrored), or with one input file "
    "the output file. Default: <name>_restored.<ext> beside each input, same container.",
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
    help="Frames per generator call.",
)
@click.option(
    "--render-size",
    type=click.IntRange(min=32, max=2048),
    default=256,
    show_default=True,
    callback=_check_render_size,
    help="Short side the generator sees (multiple of 32); colours are upsampled.",
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
@click.option("--overwrite", is_flag=True, help="Redo outputs that already exist.")
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a JSON report (per file: status, frames, duration, streams, warnings).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="CPU threads for the model and the codecs (default: all cores).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress, only the summary.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging on stderr.")
@click.pass_context
def video(
    ctx: click.Context,
    paths: tuple[Path, ...],
    output: Path | None,
    weights: Path | None,
    device: str,
    precision: str,
    batch_size: int,
    render_size: int,
    codec: str | None,
    crf: int,
    preset: str,
    overwrite: bool,
    report_path: Path | None,
    threads: int | None,
    quiet: bool,
    verbose: bool,
) -> None:
    """Colorize black-and-white films in PATH... (files or folders, walked recursively).

    Every frame keeps its timestamp, so the output has the same frames and duration and
    drops into an editing timeline where the original was. Audio, subtitles, chapters and
    metadata are copied unchanged (audio the output container cannot hold is re-encoded,
    with a warning). Video is H.264 (CRF 18, yuv420p, BT.709); odd frame sizes are padded
    by one pixel, as 4:2:0 video cannot hold them. Finished outputs are skipped.

    Exit codes: 0 all done or skipped, 1 some files failed, 2 usage error, 130 interrupted.
    """
    import os
    import signal

    import av
    import cv2
    import torch
    from rich.console import Console

    from restore.cli.ui import JobProgress, print_summary
    from restore.engine import Colorizer, EngineConfig
    from restore.errors import OutputPathError, RestoreError, WeightsError
    from restore.jobs import FileResult, JobReport, Status, atomic_output
    from restore.runtime import tune_allocator
    from restore.video import EncodeConfig, colorize_video, plan_outputs
    from restore.video.files import VIDEO_SUFFIXES, is_up_to_date, remove_stale_temps_for
    from restore.weights import default_weights

    _setup_logging(verbose)
    try:
        planned = plan_outputs(list(paths), output)
    except OutputPathError as e:
        raise StartupError(str(e)) from e
    if not planned:
        click.echo(f"No videos found (looked for {' '.join(sorted(VIDEO_SUFFIXES))}).")
        ctx.exit(0)

    report = JobReport(command="video")  # wall time includes loading the model
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
    encode = EncodeConfig(codec=codec, crf=crf, preset=preset, threads=threads or 0)

    report.weights = colorizer.info.identity if colorizer.info else None
    stream = open(os.devnull, "w") if quiet else sys.stdout  # noqa: SIM115
    interrupted: Path | None = None
    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        with JobProgress("frames", len(planned), stream=stream) as progress:
            for src, dst in planned:
                if not overwrite and is_up_to_date(src, dst):
                    result = FileResult(src, dst, Status.SKIPPED)
                    report.add(result)
                    progress.end_file(result)
                    continue
                removed = remove_stale_temps_for(dst)
                if removed:
                    progress.message(
                        f"removed {removed} unfinished file(s) of {dst.name} "
                        "left by an interrupted run"
                    )
                t0 = time.monotonic()
                try:
                    with atomic_output(dst) as tmp:
                        done = colorize_video(
                            src, tmp, colorizer, encode, progress=_FileProgress(progress, src)
                        )
                    result = FileResult(
                        src,
                        dst,
                        Status.DONE,
                        seconds=time.monotonic() - t0,
                        warnings=done.warnings,
                        extra=done.report(),
                    )
                except KeyboardInterrupt:
                    interrupted = src
                    break
                except (RestoreError, av.FFmpegError, OSError) as e:
                    result = FileResult(
                        src, None, Status.FAILED, error=str(e), seconds=time.monotonic() - t0
                    )
                report.add(result)
                progress.end_file(result)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if quiet:
            stream.close()
    report.finished = time.time()
    console = Console(highlight=False)
    print_summary(report, console, "frames")
    if report_path:
        report.write(report_path)
        console.print(f"report: {report_path}")
    if interrupted is not None:
        left = len(planned) - len(report.results)
        console.print(
            f"interrupted during {interrupted}: nothing was written under its final "
            f"name; {left} file(s) not done. Run the same command again to finish."
        )
        ctx.exit(EXIT_INTERRUPTED)
    ctx.exit(int(report.exit_code()))

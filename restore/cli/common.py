"""What `restore photos` and `restore video` share: options, model start-up, the ending."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from restore.jobs import ExitCode, JobReport
from restore.startup import CPU_BATCH_SIZE, GPU_BATCH_SIZE, EngineOptions

if TYPE_CHECKING:  # the engine imports torch: only when a command needs it
    from restore.cli.ui import JobProgress
    from restore.cluster import RayOptions
    from restore.engine import Colorizer
    from restore.jobs import FileResult
    from restore.plan import Plan

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
EXIT_INTERRUPTED = int(ExitCode.INTERRUPTED)


class StartupError(click.ClickException):
    """Nothing could be processed (no model, bad output folder): a usage-level error."""

    exit_code = int(ExitCode.USAGE)


def _check_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not _DEVICE.match(value):
        raise click.BadParameter("use auto, cpu, cuda, cuda:N or mps")
    return value


def _check_render_size(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value % 32:
        lo, hi = value // 32 * 32, value // 32 * 32 + 32
        raise click.BadParameter(f"must be a multiple of 32 (e.g. {max(lo, 32)} or {hi})")
    return value


#: Colour options shared by photos, video and eval (a fresh click.Option per command).
REFINE_OPTION = click.option(
    "--refine/--no-refine",
    default=False,
    show_default=True,
    help="Edge-aware clean-up of the predicted colours (a guided filter with the picture's "
    "lightness as the guide): damps bands of wandering hue on textures, at some cost in "
    "colour and accuracy with the shipped weights.",
)
SATURATION_OPTION = click.option(
    "--saturation",
    type=click.FloatRange(0.0, 4.0),
    default=1.0,
    show_default=True,
    help="Colour strength: the predicted colours times this (0 gray, 1 as the weights were "
    "calibrated; higher is livelier and makes wrong colours louder too).",
)

VIVIDNESS_OPTION = click.option(
    "--vividness",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="How boldly a colour-classes model commits to one colour where several are "
    "plausible: 0 averages them (duller, safer), 1 always takes the likeliest (vivid, "
    "wrong more often). Default: the weights' calibrated value (0.62). No effect on "
    "regression weights.",
)


def job_options(unit: str, output_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options every colorizing command takes, in --help order."""
    options = [
        click.argument(
            "paths",
            nargs=-1,
            required=True,
            metavar="PATH...",
            type=click.Path(exists=True, path_type=Path),
        ),
        click.option("-o", "--output", type=click.Path(path_type=Path), help=output_help),
        click.option(
            "--weights",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Generator weights (.safetensors). Default: the weights shipped with restore.",
        ),
        click.option(
            "--device",
            default="auto",
            show_default=True,
            callback=_check_device,
            help="auto, cpu, cuda, cuda:N or mps.",
        ),
        click.option(
            "--precision",
            type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
            default="auto",
            show_default=True,
            help="Autocast dtype (auto: fp16 on GPUs, bf16 on CPUs that have it).",
        ),
        click.option(
            "--runtime",
            type=click.Choice(["openvino", "eager"]),
            default="openvino",
            show_default=True,
            help="How the generator runs on a CPU: openvino (compiled by OpenVINO, fastest) "
            "or eager (the PyTorch module as trained). Same colours; for troubleshooting. "
            "GPUs always run eager.",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            help=f"{unit.capitalize()} per generator call (default: {CPU_BATCH_SIZE} on a CPU, "
            f"{GPU_BATCH_SIZE} on CUDA).",
        ),
        click.option(
            "--render-size",
            type=click.IntRange(min=32, max=2048),
            default=256,
            show_default=True,
            callback=_check_render_size,
            help="Short side the generator sees (multiple of 32); colours are upsampled to "
            "full size.",
        ),
        REFINE_OPTION,
        SATURATION_OPTION,
        VIVIDNESS_OPTION,
        click.option("--overwrite", is_flag=True, help="Redo outputs that already exist."),
        click.option(
            "--report",
            "report_path",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write a JSON report (per file: output, status, error; totals; weights; time).",
        ),
        click.option(
            "--threads",
            type=click.IntRange(min=1),
            help="CPU cores to use (default: all). The generator runs that many "
            "single-threaded calls at once (up to 4), overlapping decoding and encoding.",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No progress, only the summary."),
        click.option("-v", "--verbose", is_flag=True, help="Debug logging on stderr."),
    ]

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        """The command gets ``engine: EngineOptions`` in place of those options."""
        names = [fl.name for fl in fields(EngineOptions)]

        @functools.wraps(f)
        def command(*args: Any, **kwargs: Any) -> Any:
            engine = EngineOptions(**{name: kwargs.pop(name) for name in names})
            return f(*args, engine=engine, **kwargs)

        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def cluster_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--engine`` and the Ray options; the command gets ``cluster``: a
    :class:`~restore.cluster.RayOptions` with ``--engine ray``, else None (local)."""
    options = [
        click.option(
            "--engine",
            "engine_kind",
            type=click.Choice(["local", "ray"]),
            default="local",
            show_default=True,
            help="local: this machine. ray: the workers of a Ray cluster (pip install "
            "'restore[ray]'); outputs must be on storage every worker sees at the same path.",
        ),
        click.option(
            "--ray-address",
            help="Ray cluster to join (e.g. ray://head:10001 or auto). Default: RAY_ADDRESS if "
            "set, else a cluster started for this job on this machine.",
        ),
        click.option(
            "--ray-workers",
            type=click.IntRange(min=1),
            help="Workers to start (each loads the model once). Default: as many as the "
            "cluster's CPUs (or GPUs) hold.",
        ),
        click.option(
            "--ray-cpus-per-worker",
            type=click.FloatRange(min=0.5),
            default=2.0,
            show_default=True,
            help="CPUs each worker reserves; it runs that many threads.",
        ),
        click.option(
            "--ray-gpus-per-worker",
            type=click.FloatRange(min=0.0),
            default=0.0,
            show_default=True,
            help="GPUs each worker reserves (use with --device cuda; fractions share a GPU).",
        ),
    ]

    @functools.wraps(f)
    def command(*args: Any, **kwargs: Any) -> Any:
        from restore.cluster import RayOptions

        kind = kwargs.pop("engine_kind")
        given = {
            name: kwargs.pop(f"ray_{name}")
            for name in ("address", "workers", "cpus_per_worker", "gpus_per_worker")
        }
        cluster = None
        if kind == "ray":
            from restore.cluster import INSTALL_HINT, ray_available

            if not ray_available():
                raise StartupError(INSTALL_HINT)
            cluster = RayOptions(**given)
        return f(*args, cluster=cluster, **kwargs)

    for option in reversed(options):
        command = option(command)
    return command


def check_engine_options(engine: EngineOptions, cluster: RayOptions | None) -> None:
    """Refuse options that the chosen engine would silently ignore (UsageError, exit 2)."""
    if cluster is not None and engine.threads is not None:
        raise click.UsageError(
            "--threads does not apply with --engine ray: each worker runs as many threads as "
            "--ray-cpus-per-worker reserves"
        )


def run_on_ray(cluster: RayOptions, job: Callable[[Any], Any]) -> Any:
    """``job(ray)`` on the cluster ``cluster`` names; a cluster or worker that cannot start
    is a StartupError (exit 2)."""
    from restore.cluster import ClusterError, connected
    from restore.startup import StartupProblem

    try:
        with connected(cluster) as ray:
            return job(ray)
    except (ClusterError, StartupProblem) as e:
        raise StartupError(str(e)) from e


def load_colorizer(engine: EngineOptions) -> Colorizer:
    """Check the device, tune the process, and load the generator once (StartupError if not)."""
    from restore.startup import StartupProblem
    from restore.startup import load_colorizer as load

    try:
        return load(engine)
    except StartupProblem as e:
        raise StartupError(str(e)) from e


def _interrupt_on_sigterm(signum: int, frame: object) -> None:
    # `kill`, systemd and cron timeouts send SIGTERM: stop like Ctrl-C (temporaries removed,
    # summary and report written) instead of dying mid-file.
    raise KeyboardInterrupt


@contextlib.contextmanager
def job_session(quiet: bool) -> Iterator[TextIO]:
    """SIGTERM acts as Ctrl-C for the job's duration; yields the progress stream."""
    stream = open(os.devnull, "w") if quiet else sys.stdout  # noqa: SIM115
    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        yield stream
    finally:
        signal.signal(signal.SIGTERM, previous)
        if quiet:
            stream.close()


def begin_job(
    planned: Plan, report: JobReport, progress: JobProgress
) -> Callable[[FileResult], None]:
    """Remove what a killed run left below the outputs, report the files passed over, and
    return the per-file callback (into the report and the progress display)."""
    from restore.jobs import FileResult, Status
    from restore.plan import remove_stale_temps

    removed = remove_stale_temps(planned)
    if removed:
        progress.message(f"removed {removed} unfinished file(s) left by an interrupted run")

    def on_result(result: FileResult) -> None:
        report.add(result)
        progress.end_file(result)

    for task in planned.passed_over:
        on_result(FileResult(task.input, None, Status.SKIPPED, reason=task.skip))
    return on_result


def finish(
    ctx: click.Context,
    report: JobReport,
    unit: str,
    report_path: Path | None,
    interrupted_note: str | None = None,
) -> None:
    """Summary table, --report, and the exit code (0 ok, 1 some failed, 130 interrupted)."""
    from rich.console import Console

    from restore.cli.ui import print_summary

    report.finished = time.time()
    report.interrupted = interrupted_note is not None
    console = Console(highlight=False)
    print_summary(report, console, unit)
    if report_path:
        report.write(report_path)
        console.print(f"report: {report_path}")
    if interrupted_note:
        console.print(interrupted_note)
    ctx.exit(int(report.exit_code()))

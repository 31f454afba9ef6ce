"""A batch of films, as `restore video` runs it: finished outputs skipped, each output
claimed against overlapping jobs, written atomically, one result per film."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import av

from restore.engine import Colorizer
from restore.errors import RestoreError
from restore.jobs import (
    FileResult,
    Status,
    atomic_output,
    claim_work,
)
from restore.plan import Task
from restore.video.deflicker import DeflickerConfig
from restore.video.dirt import DirtConfig
from restore.video.items import FrameProgress, TemporalStage
from restore.video.pipeline import colorize_video
from restore.video.streams import EncodeConfig
from restore.video.temporal import StabilizeConfig, stabilizer


@dataclass(frozen=True)
class VideoJobConfig:
    """Options of one run. Built once by the CLI."""

    encode: EncodeConfig = field(default_factory=EncodeConfig)
    stabilize: StabilizeConfig | None = field(default_factory=StabilizeConfig)  # None: off
    deflicker: DeflickerConfig | None = None  # None: off
    dirt: DirtConfig | None = None  # None: off
    overwrite: bool = False  # redo outputs that exist and are newer than their input
    colorize: bool = True  # False: write the (repaired) film in black and white


def film_stages(
    config: VideoJobConfig,
) -> tuple[TemporalStage | None, DeflickerConfig | None, DirtConfig | None]:
    """The temporal stage (a fresh one: it keeps state per film; none without colour) and
    the repair options."""
    stage = None
    if config.stabilize is not None and config.colorize:
        stage = stabilizer(config.stabilize)
    return stage, config.deflicker, config.dirt


class FilmProgress(Protocol):
    """Per-film progress, called from the caller's thread."""

    def begin_file(self, path: Path, total_frames: int | None) -> None: ...

    def advance(self, frames: int) -> None: ...


def run(
    tasks: Sequence[Task],
    colorizer: Colorizer,
    config: VideoJobConfig,
    on_result: Callable[[FileResult], None],
    progress: FilmProgress | None = None,
) -> None:
    """Colorize every planned film, calling ``on_result`` once per film, in order.

    A film the plan failed (``problem``) is reported as failed without being read; a failing film is reported and the run goes on. KeyboardInterrupt propagates once the
    film in hand is cleaned up (its temporary file removed, its claim let go); the films
    reported before it are complete.
    """
    for task in tasks:
        if task.problem is not None or task.output is None:
            on_result(FileResult(task.input, None, Status.FAILED, error=task.problem))
        else:
            on_result(_one(task.input, task.output, colorizer, config, progress))


def _one(
    src: Path,
    dst: Path,
    colorizer: Colorizer,
    config: VideoJobConfig,
    progress: FilmProgress | None,
) -> FileResult:
    held, skipped = claim_work(src, dst, config.overwrite)
    if held is None:
        return FileResult(src, dst, Status.SKIPPED, reason=skipped)
    t0 = time.monotonic()
    try:
        stage, deflicker, dirt = film_stages(config)
        with atomic_output(dst) as tmp:
            done = colorize_video(
                src,
                tmp,
                colorizer,
                config.encode,
                progress=_Progress(progress, src) if progress is not None else None,
                stage=stage,
                deflicker=deflicker,
                dirt=dirt,
                colorize=config.colorize,
            )
        return FileResult(
            src,
            dst,
            Status.DONE,
            seconds=time.monotonic() - t0,
            warnings=done.warnings,
            extra=done.report(),
        )
    except (RestoreError, av.FFmpegError, OSError) as e:
        return FileResult(src, None, Status.FAILED, error=str(e), seconds=time.monotonic() - t0)
    finally:
        held.release(tidy=True)  # a failed film leaves no empty output folder behind


class _Progress(FrameProgress):
    """The pipeline's per-frame callbacks, forwarded with the film's path."""

    def __init__(self, progress: FilmProgress, path: Path) -> None:
        self.progress = progress
        self.path = path

    def start(self, total_frames: int | None) -> None:
        self.progress.begin_file(self.path, total_frames)

    def advance(self, frames: int) -> None:
        self.progress.advance(frames)

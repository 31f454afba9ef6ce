"""`restore video --engine ray`: films cut into segments, colorized in parallel, joined.

The driver plans each film as the local engine does (skip finished outputs, claim the
output against overlapping jobs), cuts it into windows of about ``segment_seconds``
starting on keyframes (:func:`restore.video.segments.plan_segments`), and sends the windows
to a pool of actors. Each worker decodes a little before its window so the repair and
temporal stages reach the boundary settled, writes only the window's frames (video only)
into a segment file, and the driver joins the segments with the source's audio, subtitles,
chapters and metadata muxed once (:func:`restore.video.join.join_segments`).

Segments live in a hidden folder beside the output, with a plan file; an interrupted or
failed job leaves the finished ones there, and the next run with the same input and
options reuses them. The folder is deleted once the film is joined.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av

from restore.cluster import RayOptions
from restore.cluster.pool import ColorizerWorker, WorkerPool
from restore.errors import RestoreError
from restore.jobs import (
    Claim,
    FileResult,
    Status,
    atomic_output,
    claim_work,
    is_temp,
    remove_partial,
    remove_stale_temps,
)
from restore.plan import Task
from restore.startup import EngineOptions
from restore.video.items import VideoResult, Window
from restore.video.job import VideoJobConfig, film_stages
from restore.video.join import join_segments
from restore.video.pipeline import colorize_video
from restore.video.segments import plan_segments

#: Default segment length: long enough that the warm-up (about 2 s) costs a few per cent.
SEGMENT_SECONDS = 60.0
PLAN_FILE = "plan.json"


class VideoWorker(ColorizerWorker):
    """One Ray actor: a loaded colorizer that colorizes the windows it is sent."""

    def __init__(self, engine: EngineOptions, config: VideoJobConfig) -> None:
        super().__init__(engine)
        self.config = config

    def segment(self, src: Path, dst: Path, window: Window) -> VideoResult | str:
        """Colorize ``window`` of ``src`` into ``dst`` (atomically); the error text if not."""
        stage, deflicker, dirt = film_stages(self.config)
        try:
            with atomic_output(dst) as tmp:
                return colorize_video(
                    src,
                    tmp,
                    self.colorizer,
                    self.config.encode,
                    stage=stage,
                    deflicker=deflicker,
                    dirt=dirt,
                    window=window,
                    colorize=self.config.colorize,
                )
        except (RestoreError, av.FFmpegError, OSError) as e:
            return str(e)


@dataclass
class _Film:
    src: Path
    dst: Path
    claim: Claim
    folder: Path
    windows: list[Window]
    done: dict[int, dict[str, Any]] = field(default_factory=dict)  # segment -> its summary
    error: str | None = None
    started: float = field(default_factory=time.monotonic)
    left: int = 0  # segments still out

    def segment_path(self, i: int) -> Path:
        return self.folder / f"{i:05d}{self.dst.suffix}"


def segment_folder(dst: Path) -> Path:
    """Where the segments of ``dst`` wait to be joined (hidden, beside it)."""
    return dst.with_name(f".{dst.name}.restore-segments")


def run(
    tasks: Sequence[Task],
    engine: EngineOptions,
    config: VideoJobConfig,
    options: RayOptions,
    ray: Any,
    on_result: Callable[[FileResult], None],
    segment_seconds: float = SEGMENT_SECONDS,
    worker_class: type[VideoWorker] = VideoWorker,
) -> dict[str, Any] | None:
    """Colorize every planned film on the workers of the joined cluster ``ray``;
    ``on_result`` is called once per film, on this thread, when it is joined or has failed.

    Returns:
        The weights' identity, as the workers loaded them (None if no work was sent).

    Raises:
        StartupProblem: a worker cannot load the colorizer.
        ClusterError: the cluster has no room for a worker.
    """
    films: list[_Film] = []
    units: list[tuple[_Film, int]] = []
    try:
        for task in tasks:
            if task.problem is not None or task.output is None:
                on_result(FileResult(task.input, None, Status.FAILED, error=task.problem))
                continue
            film = _prepare(task.input, task.output, config, segment_seconds, on_result)
            if film is None:
                continue
            missing = [i for i in range(len(film.windows)) if i not in film.done]
            film.left = len(missing)
            films.append(film)
            if not missing:
                _finish(film, config, on_result)
            units += [(film, i) for i in missing]
        if not units:
            return None
        pool = WorkerPool.for_job(ray, worker_class, engine, config, options, len(units))
        try:
            outcomes = pool.map(
                units,
                "segment",
                lambda u: (u[0].src, u[0].segment_path(u[1]), u[0].windows[u[1]]),
                lambda u, pid: remove_partial(u[0].segment_path(u[1]), pid),
            )
            for outcome in outcomes:
                film, i = outcome.unit
                value = outcome.value
                if outcome.error is not None or isinstance(value, str):
                    film.error = film.error or f"segment {i + 1}: {outcome.error or value}"
                else:
                    assert isinstance(value, VideoResult)
                    film.done[i] = _summary(value)
                    _save_summary(film, i)
                film.left -= 1
                if film.left == 0:
                    _finish(film, config, on_result)
        finally:
            pool.close()
        identity: dict[str, Any] | None = pool.info
        return identity
    finally:
        for film in films:
            film.claim.release()


def _prepare(
    src: Path,
    dst: Path,
    config: VideoJobConfig,
    seconds: float,
    on_result: Callable[[FileResult], None],
) -> _Film | None:
    """Claim the film's output and plan its segments, reusing those a previous run of the
    same input and options finished; None if it is skipped or failed (reported)."""
    held, skipped = claim_work(src, dst, config.overwrite)
    if held is None:
        on_result(FileResult(src, dst, Status.SKIPPED, reason=skipped))
        return None
    try:
        windows = plan_segments(src, seconds)
    except RestoreError as e:
        held.release(tidy=True)
        on_result(FileResult(src, None, Status.FAILED, error=str(e)))
        return None
    folder = segment_folder(dst)
    stat = src.stat()
    plan = {
        "input": str(src.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "options": hashlib.sha256(repr(config).encode()).hexdigest(),
        "windows": [asdict(w) for w in windows],
    }
    film = _Film(src, dst, held, folder, windows)
    try:
        previous = json.loads((folder / PLAN_FILE).read_text())
    except (OSError, ValueError):
        previous = None
    if previous == plan:
        for i in range(len(windows)):
            with contextlib.suppress(OSError, ValueError):
                if film.segment_path(i).is_file():
                    film.done[i] = json.loads(film.segment_path(i).with_suffix(".json").read_text())
        remove_stale_temps(p for p in folder.iterdir() if is_temp(p))
    else:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        with atomic_output(folder / PLAN_FILE) as tmp:
            tmp.write_text(json.dumps(plan, indent=1))
    return film


def _summary(result: VideoResult) -> dict[str, Any]:
    return {
        "frames": result.frames,
        "duration": result.duration,
        "size": list(result.size),
        "video": result.streams[0].to_dict() if result.streams else None,
        "warnings": result.warnings,
        "repairs": result.repairs,
    }


def _save_summary(film: _Film, i: int) -> None:
    with atomic_output(film.segment_path(i).with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(film.done[i]))


def _finish(film: _Film, config: VideoJobConfig, on_result: Callable[[FileResult], None]) -> None:
    """Join a film whose segments are all done, or report why it failed."""
    if film.error is not None:
        seconds = time.monotonic() - film.started
        film.claim.release(tidy=True)
        on_result(FileResult(film.src, None, Status.FAILED, error=film.error, seconds=seconds))
        return
    parts = [film.done[i] for i in range(len(film.windows))]
    try:
        with atomic_output(film.dst) as tmp:
            notes, warnings = join_segments(
                film.src, [film.segment_path(i) for i in range(len(parts))], tmp, config.encode
            )
    except (RestoreError, av.FFmpegError, OSError) as e:
        film.claim.release(tidy=True)
        seconds = time.monotonic() - film.started
        on_result(FileResult(film.src, None, Status.FAILED, error=str(e), seconds=seconds))
        return
    film.claim.release()
    shutil.rmtree(film.folder, ignore_errors=True)
    streams = [n.to_dict() for n in notes]
    if parts[0]["video"] is not None and streams:
        streams[0] = parts[0]["video"]  # the encoder's name, not the copied stream's
    notes_out = list(dict.fromkeys(w for p in parts for w in p["warnings"]))
    notes_out += [w for w in warnings if w not in notes_out]
    durations = [p["duration"] for p in parts]
    extra: dict[str, Any] = {
        "frames": sum(p["frames"] for p in parts),
        "duration": round(sum(durations), 6) if None not in durations else None,
        "size": parts[0]["size"],
        "streams": streams,
        "segments": len(parts),
        **_merged_repairs([p["repairs"] for p in parts]),
    }
    on_result(
        FileResult(
            film.src,
            film.dst,
            Status.DONE,
            seconds=time.monotonic() - film.started,
            warnings=notes_out,
            extra=extra,
        )
    )


def _merged_repairs(parts: list[dict[str, dict[str, float | int]]]) -> dict[str, dict[str, Any]]:
    """Per repair stage, the segments' figures: counts added, means weighted by frames.
    (Warm-up frames are counted by the segment that decoded them.)"""
    merged: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(k for p in parts for k in p):
        stats = [p[name] for p in parts if name in p]
        frames = sum(int(s.get("frames", 0)) for s in stats) or 1
        entry: dict[str, Any] = {}
        for key in stats[0]:
            values = [s[key] for s in stats]
            if all(isinstance(v, int) for v in values):
                entry[key] = sum(values)
            else:
                entry[key] = round(
                    sum(
                        float(v) * int(s.get("frames", 0))
                        for v, s in zip(values, stats, strict=True)
                    )
                    / frames,
                    6,
                )
        merged[name] = entry
    return merged

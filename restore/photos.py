"""The `restore photos` batch job: walk, plan outputs, skip finished work, colorize, write.

    walk -> read (upright, EXIF, ICC) -> batch -> generator at render size -> ab upsampled
    -> merged with the full-resolution L of the original -> temp file -> rename

No user interaction: results go to a callback, one :class:`FileResult` per input file.
Memory is bounded by one batch: decoded pixels are reduced to their lightness map at once
and outputs are merged and quantised in row strips.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from restore import __version__, jobs
from restore import plan as planning
from restore.color import lightness_of, merge_full
from restore.engine import Colorizer
from restore.errors import RestoreError
from restore.imagefiles import FORMATS
from restore.imageio import (
    DEFAULT_MAX_PIXELS,
    ImageMetadata,
    Marking,
    read_image,
    supports_16bit,
    write_image,
)
from restore.jobs import FileResult, Status, atomic_output
from restore.plan import Media, Plan, Task
from restore.repair import PhotoRepairer, RepairConfig
from restore.runtime import release_free_memory

log = logging.getLogger(__name__)

MARKING = Marking(
    software=f"restore {__version__}",
    note=f"machine-colorized by restore {__version__} (colours are estimated)",
)
#: The marking of a repaired picture left black and white (``PhotosConfig.colorize`` off).
REPAIR_MARKING = Marking(
    software=f"restore {__version__}",
    note=f"dust and scratches machine-repaired by restore {__version__}",
)


@dataclass(frozen=True)
class PhotosConfig:
    """Options of one run. Built once by the CLI."""

    overwrite: bool = False  # redo outputs that exist and are newer than their input
    max_pixels: int = DEFAULT_MAX_PIXELS  # refuse larger images (decompression bombs)
    batch_pixels: int = 64_000_000  # a batch is flushed once it holds this many pixels
    repair: RepairConfig | None = None  # repair dust, scratches and faded tone first
    colorize: bool = True  # False: write the (repaired) picture in black and white


#: What `restore photos` reads (and writes: each output keeps its input's format).
MEDIA = Media("image", frozenset(FORMATS))

#: Files between two returns of free heap pages to the system (runtime.release_free_memory):
#: after a large scan, resident memory goes back to what the next files use.
RELEASE_EVERY = 32


def plan(paths: Sequence[Path], output: Path | None = None) -> Plan:
    """Every image below ``paths`` and its output (the rules: :mod:`restore.plan`)."""
    return planning.plan(paths, output, MEDIA)


# ------------------------------------------------------------------------------ pixels


# --------------------------------------------------------------------------------- run


@dataclass
class _Loaded:
    """An image between decoding and writing: its L maps, alpha and metadata."""

    task: Task
    lightness: np.ndarray  # (H, W) float32 L in [0, 100]
    small: np.ndarray  # (h, w) float32 L at render size
    alpha: np.ndarray | None
    bit_depth: int
    metadata: ImageMetadata
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    claim: jobs.Claim | None = None  # held from reading to writing
    repair: dict[str, Any] | None = None  # what the repair stage did, for the report

    @property
    def pixels(self) -> int:
        return int(self.lightness.size)


def run(
    tasks: Sequence[Task],
    colorizer: Colorizer,
    config: PhotosConfig,
    on_result: Callable[[FileResult], None],
    marking: Marking = MARKING,
    repairer: PhotoRepairer | None = None,
) -> None:
    """Colorize every task, calling ``on_result`` exactly once per task.

    With ``config.repair``, each picture's lightness is repaired first (``repairer``, or
    one loaded here).

    Skips and planned failures are reported at once, colorized files when their batch is
    written (so results can arrive out of input order).

    A failing file is reported and the run goes on. KeyboardInterrupt propagates; no
    output is ever left under its final name unless complete.

    With ``colorizer.config.workers`` > 1, that many threads each take the next file from
    the list and run the whole chain (decode, generator, merge, encode) on their own
    batches, so decoding and merging overlap the generator; ``on_result`` is still called
    from the caller's thread, one call at a time.
    """
    on_result = _releasing(on_result)
    if config.repair is not None and repairer is None:
        repairer = PhotoRepairer(config.repair)
    workers = max(1, colorizer.config.workers)
    if workers == 1:
        _run_serial(tasks, colorizer, config, on_result, marking, repairer)
        return
    lock = threading.Lock()
    shared = iter(tasks)
    stop = threading.Event()
    results: queue.Queue[FileResult | None] = queue.Queue()

    def next_task() -> Iterator[Task]:
        while not stop.is_set():
            with lock:
                task = next(shared, None)
            if task is None:
                return
            yield task

    def work() -> None:
        try:
            _run_serial(next_task(), colorizer, config, results.put, marking, repairer)
        except BaseException:
            stop.set()  # the other workers stop too; raised below
            raise
        finally:
            results.put(None)  # this worker is done

    with ThreadPoolExecutor(workers, thread_name_prefix="restore-photos") as pool:
        futures = [pool.submit(work) for _ in range(workers)]
        try:
            running = workers
            while running:
                item = results.get()
                if item is None:
                    running -= 1
                else:
                    on_result(item)
        except BaseException:
            stop.set()  # workers finish the file in hand (outputs are atomic), then stop
            raise
        for f in futures:
            f.result()  # a bug in a worker surfaces here


def _releasing(on_result: Callable[[FileResult], None]) -> Callable[[FileResult], None]:
    """``on_result``, plus release_free_memory() after every RELEASE_EVERY results."""
    count = 0

    def call(result: FileResult) -> None:
        nonlocal count
        on_result(result)
        count += 1
        if count % RELEASE_EVERY == 0:
            release_free_memory()

    return call


def _run_serial(
    tasks: Iterable[Task],
    colorizer: Colorizer,
    config: PhotosConfig,
    on_result: Callable[[FileResult], None],
    marking: Marking,
    repairer: PhotoRepairer | None = None,
) -> None:
    batch: list[_Loaded] = []
    for task in tasks:
        if task.problem is not None or task.output is None:
            on_result(FileResult(task.input, None, Status.FAILED, task.problem))
            continue
        claim, skipped = jobs.claim_work(task.input, task.output, config.overwrite)
        if claim is None:
            on_result(FileResult(task.input, task.output, Status.SKIPPED, reason=skipped))
            continue
        t0 = time.perf_counter()
        try:
            batch.append(_load(task, colorizer, config, repairer))
        except Exception as e:  # noqa: BLE001 - one bad file never stops the run
            claim.release()
            on_result(_failed(task, e, time.perf_counter() - t0))
            continue
        batch[-1].claim = claim
        batch[-1].seconds = time.perf_counter() - t0
        if (
            len(batch) >= colorizer.config.batch_size
            or sum(x.pixels for x in batch) >= config.batch_pixels
        ):
            _flush(batch, colorizer, on_result, marking, config.colorize)
            batch = []
    _flush(batch, colorizer, on_result, marking, config.colorize)


def _load(
    task: Task,
    colorizer: Colorizer,
    config: PhotosConfig,
    repairer: PhotoRepairer | None = None,
) -> _Loaded:
    picture = read_image(task.input, config.max_pixels)
    # Hook for later speed work: the generator only needs `small`; a reduced decode
    # (JPEG draft mode) could produce it without the full-size L of colour images.
    lightness = lightness_of(picture.pixels)
    repaired = None
    if repairer is not None:
        lightness, stats = repairer.repair(lightness)
        repaired = stats.to_dict()
    small = colorizer.downsize(lightness)
    return _Loaded(
        task,
        lightness,
        small,
        None if picture.alpha is None else np.ascontiguousarray(picture.alpha),
        picture.bit_depth,
        picture.metadata,
        list(picture.warnings),
        repair=repaired,
    )


def _flush(
    batch: list[_Loaded],
    colorizer: Colorizer,
    on_result: Callable[[FileResult], None],
    marking: Marking,
    colorize: bool = True,
) -> None:
    if not batch:
        return
    t0 = time.perf_counter()
    try:
        if colorize:
            predictions = colorizer.predict([x.small for x in batch])
        else:  # neutral colour: the lightness alone, in black and white
            predictions = [np.zeros((*x.small.shape, 2), np.float32) for x in batch]
    except Exception as e:  # noqa: BLE001
        if len(batch) > 1:  # find the one that fails, keep the others
            for item in batch:
                _flush([item], colorizer, on_result, marking, colorize)
            return
        _release(batch[0])
        on_result(_failed(batch[0].task, e, batch[0].seconds))
        return
    share = (time.perf_counter() - t0) / len(batch)
    for item, ab in zip(batch, predictions, strict=True):
        t1 = time.perf_counter()
        height, width = item.lightness.shape
        try:
            _write(item, ab, marking)
        except Exception as e:  # noqa: BLE001
            on_result(_failed(item.task, e, item.seconds + share + time.perf_counter() - t1))
            continue
        finally:
            _release(item)
        on_result(
            FileResult(
                item.task.input,
                item.task.output,
                Status.DONE,
                seconds=item.seconds + share + time.perf_counter() - t1,
                warnings=item.warnings,
                extra={
                    "width": width,
                    "height": height,
                    "bit_depth": item.bit_depth,
                    **({"repair": item.repair} if item.repair is not None else {}),
                },
            )
        )
    batch.clear()


def _release(item: _Loaded) -> None:
    if item.claim is not None:
        item.claim.release()
        item.claim = None


def colour_is_coarse(shape: tuple[int, ...], ab_small: np.ndarray) -> bool:
    """Whether the colour map has at most half the output's resolution each way.

    Then 4:2:0 JPEG chroma keeps nearly all of it (about 1 dB below 4:4:4, near 50 dB
    against the unencoded image), encodes faster and makes smaller files.
    """
    return 2 * ab_small.shape[0] <= shape[0] and 2 * ab_small.shape[1] <= shape[1]


def _write(item: _Loaded, ab_small: np.ndarray, marking: Marking) -> None:
    out = item.task.output
    assert out is not None
    dtype = np.uint16 if item.bit_depth == 16 and supports_16bit(out) else np.uint8
    coarse = colour_is_coarse(item.lightness.shape, ab_small)
    rgb = merge_full(item.lightness, ab_small, dtype)
    item.lightness = item.small = np.empty((0, 0), np.float32)  # free before encoding
    with atomic_output(out) as tmp:
        item.warnings += write_image(
            tmp, rgb, item.alpha, item.metadata, marking, subsample_chroma=coarse
        )
        # An input dated in the future (a camera or scanner with a wrong clock) must not
        # look newer than its output forever, or every run would redo it.
        in_mtime = item.task.input.stat().st_mtime_ns
        if in_mtime > tmp.stat().st_mtime_ns:
            os.utime(tmp, ns=(in_mtime, in_mtime))


def _failed(task: Task, error: BaseException, seconds: float) -> FileResult:
    if isinstance(error, (RestoreError, OSError)):
        reason = str(error) if not isinstance(error, OSError) else _os_reason(error)
        log.debug("failed %s", task.input, exc_info=True)
    elif isinstance(error, MemoryError):
        reason = "out of memory (try a smaller --max-pixels or --batch-size)"
    else:  # a bug or a library failure we did not anticipate: keep the traceback in the log
        reason = f"{type(error).__name__}: {error}"
        log.error("unexpected error on %s", task.input, exc_info=error)
    return FileResult(task.input, None, Status.FAILED, reason, seconds)


def _os_reason(e: OSError) -> str:
    where = f": {e.filename}" if e.filename else ""
    return f"{e.strerror or e}{where}"

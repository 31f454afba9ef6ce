"""User-facing progress and summaries: rich on a terminal, plain log lines otherwise (cron)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from restore.jobs import UP_TO_DATE, FileResult, JobReport, Status

PLAIN_PROGRESS_EVERY = 10.0  # seconds between plain progress lines within a long file


class _Rate(TextColumn):
    def __init__(self, unit: str) -> None:
        super().__init__("")
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} {self.unit}/s" if speed else f"- {self.unit}/s")


class JobProgress:
    """Progress of a batch job over files, each made of units (images or frames).

    ``overall_units`` is the total number of units if known (photos: one per file).
    """

    def __init__(
        self, unit: str, total_files: int, *, stream: TextIO | None = None, tty: bool | None = None
    ) -> None:
        self.unit = unit
        self.total_files = total_files
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.console = Console(
            file=self.stream, force_terminal=self.tty, highlight=False, soft_wrap=not self.tty
        )
        self._progress: Progress | None = None
        self._overall: TaskID | None = None
        self._file_task: TaskID | None = None
        self._file_name = ""
        self._file_total: int | None = None
        self._file_done = 0
        self._file_t0 = 0.0
        self._last_plain = 0.0
        self.files_done = 0

    def __enter__(self) -> JobProgress:
        if self.tty:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                _Rate(self.unit),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.__enter__()
            self._overall = self._progress.add_task("files", total=self.total_files)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress:
            self._progress.__exit__(None, None, None)

    # -- per file ----------------------------------------------------------------------------

    def begin_file(self, path: Path, total_units: int | None = None) -> None:
        self._file_name = str(path)
        self._file_total = total_units
        self._file_done = 0
        self._file_t0 = self._last_plain = time.monotonic()
        if self._progress and total_units is not None and total_units > 1:
            name = path.name if len(path.name) < 40 else path.name[:37] + "..."
            self._file_task = self._progress.add_task(name, total=total_units)

    def advance(self, n: int = 1) -> None:
        self._file_done += n
        if self._progress and self._file_task is not None:
            self._progress.advance(self._file_task, n)
        elif not self.tty:
            now = time.monotonic()
            if now - self._last_plain >= PLAIN_PROGRESS_EVERY:
                self._last_plain = now
                rate = self._file_done / max(now - self._file_t0, 1e-9)
                total = f"/{self._file_total}" if self._file_total else ""
                eta = ""
                if self._file_total and rate > 0:
                    eta = f" eta={(self._file_total - self._file_done) / rate:.0f}s"
                self._plain(
                    f"progress {self._file_name} {self._file_done}{total} {self.unit} "
                    f"rate={rate:.2f}/s{eta}"
                )

    def end_file(self, result: FileResult) -> None:
        self.files_done += 1
        if self._progress:
            if self._file_task is not None:
                self._progress.remove_task(self._file_task)
                self._file_task = None
            assert self._overall is not None
            self._progress.advance(self._overall, 1)
            if result.status is Status.FAILED:
                self._progress.console.print(f"[red]failed[/red] {result.input}: {result.error}")
            for w in result.warnings:
                self._progress.console.print(f"[yellow]warning[/yellow] {result.input}: {w}")
        else:
            out = (
                f" -> {result.output}"
                if result.output and result.status is not Status.FAILED
                else ""
            )
            err = f" error={result.error!r}" if result.error else ""
            if result.reason and result.reason != UP_TO_DATE:
                err += f" reason={result.reason!r}"
            self._plain(
                f"{result.status.value} [{self.files_done}/{self.total_files}] "
                f"{result.input}{out} {result.seconds:.2f}s{err}"
            )
            for w in result.warnings:
                self._plain(f"warning {result.input}: {w}")

    def message(self, text: str) -> None:
        if self._progress:
            self._progress.console.print(text)
        else:
            self._plain(text)

    def _plain(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        print(f"{stamp} restore: {text}", file=self.stream, flush=True)


def print_summary(report: JobReport, console: Console, unit: str) -> None:
    """The end-of-run table: done, skipped, failed, time."""
    t = report.totals()
    units = sum(
        int(r.extra.get(unit, 1 if r.status is Status.DONE else 0))
        for r in report.results
        if r.status is Status.DONE
    )
    table = Table(title="restore: summary", show_header=True)
    for col in ("done", "skipped", "failed", "total", "wall time", f"{unit}/s"):
        table.add_column(col, justify="right")
    rate = units / report.wall_seconds if report.wall_seconds > 0 else 0.0
    table.add_row(
        str(t["done"]),
        str(t["skipped"]),
        str(t["failed"]),
        str(t["total"]),
        f"{report.wall_seconds:.1f} s",
        f"{rate:.2f}",
    )
    console.print(table)
    failed = [r for r in report.results if r.status is Status.FAILED]
    for r in failed[:20]:
        console.print(f"failed: {r.input}: {r.error}")
    if len(failed) > 20:
        console.print(f"... and {len(failed) - 20} more failures (see --report)")

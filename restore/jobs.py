"""Batch-job bookkeeping shared by `restore photos` and `restore video`.

Atomic outputs (temporary name, rename on success), per-file results, the
machine-readable report and the exit code. No user interaction here.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; overlapping jobs may repeat work
    fcntl = None  # type: ignore[assignment]

TEMP_MARK = ".restore-partial"
UP_TO_DATE = "output up to date"


class Status(enum.StrEnum):
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


class ExitCode(enum.IntEnum):
    OK = 0  # every file done or skipped
    SOME_FAILED = 1  # at least one file failed
    USAGE = 2  # bad options or missing paths (click's own code for usage errors)
    INTERRUPTED = 130  # Ctrl-C or SIGTERM: what shells report for SIGINT


@dataclass
class FileResult:
    """What happened to one input file."""

    input: Path
    output: Path | None
    status: Status
    error: str | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None  # why it was skipped

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": str(self.input),
            "output": str(self.output) if self.output else None,
            "status": self.status.value,
            "error": self.error,
            "reason": self.reason,
            "seconds": round(self.seconds, 4),
            "warnings": self.warnings,
            **self.extra,
        }


@dataclass
class JobReport:
    """All results of one run, written as JSON with ``--report``."""

    command: str
    weights: dict[str, Any] | None = None
    results: list[FileResult] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    interrupted: bool = False

    def add(self, result: FileResult) -> None:
        self.results.append(result)

    def totals(self) -> dict[str, int]:
        t = {s.value: 0 for s in Status}
        for r in self.results:
            t[r.status.value] += 1
        t["total"] = len(self.results)
        return t

    @property
    def wall_seconds(self) -> float:
        return (self.finished or time.time()) - self.started

    def exit_code(self) -> ExitCode:
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if any(r.status is Status.FAILED for r in self.results):
            return ExitCode.SOME_FAILED
        return ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "weights": self.weights,
            "totals": self.totals(),
            "exit_code": int(self.exit_code()),
            "interrupted": self.interrupted,
            "wall_seconds": round(self.wall_seconds, 3),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "files": [r.to_dict() for r in self.results],
        }

    def write(self, path: Path) -> None:
        """Write the report atomically (it is itself an output a cron job reads)."""
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2))


def temp_path_for(final: Path, pid: int | None = None) -> Path:
    """A sibling temporary name that keeps the suffix (encoders pick the format from it),
    naming the writing process (``pid``, default this one)."""
    pid = os.getpid() if pid is None else pid
    return final.with_name(f".{final.stem}{TEMP_MARK}-{pid}{final.suffix}")


def is_temp(path: Path) -> bool:
    return TEMP_MARK in path.name


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success fsync and rename it to ``final``.

    On any exception (including KeyboardInterrupt) the temporary file is removed and the
    exception propagates, so ``final`` is either absent, the old file, or complete.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(final)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones created, deepest first."""
    missing: list[Path] = []
    while not folder.exists() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    for f in reversed(missing):
        f.mkdir(exist_ok=True)
    return missing


BUSY = "another restore job is writing this output"


class Claim:
    """This process's exclusive claim on one output, so that overlapping jobs (two cron
    runs on one tree) do not both do the work. An advisory lock (``flock``) on a lock file
    beside the output: the system drops it when the process dies, so a killed job never
    leaves an output claimed. Where ``flock`` is missing (Windows) every claim succeeds.
    """

    def __init__(self, final: Path) -> None:
        self.path = lock_path_for(final)
        self._file: Any = None
        self._made: list[Path] = []  # folders created for the output, deepest first

    def acquire(self) -> bool:
        """Take the claim (creating the output's folder); False if another live process
        holds it."""
        self._made = _make_parents(self.path.parent)
        if fcntl is None:
            return True
        for _ in range(3):  # the lock file may be deleted by its holder between open and lock
            f = open(self.path, "a+b")  # noqa: SIM115 - held until release()
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                return False
            try:
                same = os.stat(self.path).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._file = f
                return True
            f.close()
        return False

    def release(self, tidy: bool = False) -> None:
        """Give the claim up and delete the lock file. With ``tidy``, the folders the claim
        created are removed again if they are empty (for a job that failed its only file
        there; not while other threads may be about to write into them)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()  # before unlocking: a waiter then sees a deleted file
            self._file.close()
            self._file = None
        for folder in self._made if tidy else ():
            with contextlib.suppress(OSError):
                folder.rmdir()
        self._made = []


def claim(final: Path) -> Claim | None:
    """A held :class:`Claim` on ``final``, or None if another live job holds it."""
    c = Claim(final)
    return c if c.acquire() else None


def claim_work(src: Path, dst: Path, overwrite: bool) -> tuple[Claim | None, str | None]:
    """Claim ``dst`` to (re)make it from ``src``: (the held claim, None), or (None, why it is
    skipped: :data:`UP_TO_DATE` or :data:`BUSY`)."""
    if not overwrite and is_up_to_date(src, dst):
        return None, UP_TO_DATE
    held = claim(dst)
    if held is None:
        return None, BUSY
    if not overwrite and is_up_to_date(src, dst):  # finished by a job that just let go
        held.release()
        return None, UP_TO_DATE
    return held, None


def lock_path_for(final: Path) -> Path:
    return final.with_name(f".{final.name}{TEMP_MARK}.lock")


def _lock_is_held(lock: Path) -> bool:
    if fcntl is None:
        return False
    try:
        with open(lock, "rb") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def is_up_to_date(src: Path, dst: Path) -> bool:
    """The output exists under its final name and is not older than its input.

    Final names are only ever created by an atomic rename, so existing means complete.
    """
    try:
        return dst.stat().st_mtime_ns >= src.stat().st_mtime_ns
    except OSError:
        return False


def temps_of(final: Path) -> Iterator[Path]:
    """Temporaries of ``final`` written by any process (see :func:`temp_path_for`)."""
    if final.parent.is_dir():
        yield from final.parent.glob(f".{final.stem}{TEMP_MARK}-*{final.suffix}")


def remove_stale_temps(temps: Iterable[Path]) -> int:
    """Delete temporaries left by a killed run (kill -9, power loss).

    A temporary whose writer is still alive (an overlapping run) is left alone.
    """
    n = 0
    for p in temps:
        if _lock_is_held(p) if p.suffix == ".lock" else _owner_alive(p):
            continue
        with contextlib.suppress(OSError):
            p.unlink()
            n += 1
    return n


def remove_partial(final: Path, pid: int) -> None:
    """Delete what the dead process ``pid`` left half-written for ``final``: its temporary
    file, and the claim lock file if no live process holds it."""
    with contextlib.suppress(FileNotFoundError):
        temp_path_for(final, pid).unlink()
    remove_stale_temps([lock_path_for(final)])


def _owner_alive(temp: Path) -> bool:
    pid_text = temp.stem.rpartition(TEMP_MARK + "-")[2]
    if not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True

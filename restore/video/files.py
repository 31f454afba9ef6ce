"""Which files `restore video` takes, and where their outputs go (the rules: :mod:`restore.plan`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from restore import plan as planning

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv"}
)
#: A film named as an argument is tried whatever its suffix: FFmpeg reads more containers
#: than the walk looks for, and says so per film when it cannot.
MEDIA = planning.Media("film", VIDEO_SUFFIXES, any_named_file=True)


def plan(paths: Sequence[Path], output: Path | None = None) -> planning.Plan:
    """Every film below ``paths`` and its output, in command-line order."""
    return planning.plan(paths, output, MEDIA)

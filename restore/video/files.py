"""Finding video files and naming their outputs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from restore.errors import OutputPathError
from restore.jobs import is_temp

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv"}
)
OUTPUT_MARK = "_restored"


def is_own_output(path: Path) -> bool:
    """Our temporaries, and ``x_restored.mp4`` beside an ``x.mp4``: never inputs of a walk."""
    if is_temp(path):
        return True
    if not path.stem.endswith(OUTPUT_MARK):
        return False
    return path.with_name(path.stem[: -len(OUTPUT_MARK)] + path.suffix).exists()


def list_videos(root: Path, exclude: Iterable[Path] = ()) -> list[Path]:
    """Video files below ``root`` (recursive, by suffix), sorted.

    Skips our own outputs and temporaries, hidden files, and anything below ``exclude``
    (e.g. an output folder inside the input folder).
    """
    skip = [e.resolve() for e in exclude]
    found = []
    for p in root.rglob("*"):
        if p.suffix.lower() not in VIDEO_SUFFIXES or p.name.startswith(".") or is_own_output(p):
            continue
        rp = p.resolve()
        if any(rp.is_relative_to(s) for s in skip) or not p.is_file():
            continue
        found.append(p)
    return sorted(found)


def default_output(path: Path) -> Path:
    """``film.mkv`` -> ``film_restored.mkv`` beside it (same container)."""
    return path.with_name(f"{path.stem}{OUTPUT_MARK}{path.suffix}")


def output_is_file(output: Path) -> bool:
    """``-o`` names a file if it has a video suffix and is not an existing folder."""
    return output.suffix.lower() in VIDEO_SUFFIXES and not output.is_dir()


def plan_outputs(paths: Sequence[Path], output: Path | None) -> list[tuple[Path, Path]]:
    """Pair every input video with its output path.

    Args:
        paths: files and folders given on the command line (folders are walked recursively).
        output: None (beside each input, ``<stem>_restored<ext>``), a file (only for a single
            input file), or a folder (files keep their names; folder inputs are mirrored).
    Returns:
        (input, output) pairs in command-line order, each input once.
    Raises:
        OutputPathError: one output file for several inputs or a folder, or two inputs that
            would write the same output.
    """
    as_file = output is not None and output_is_file(output)
    if as_file and (len(paths) != 1 or paths[0].is_dir()):
        raise OutputPathError(
            f"{output} is a file name but there are several inputs; give a folder"
        )
    if output is not None and not as_file and output.exists() and not output.is_dir():
        raise OutputPathError(f"output {output} is an existing file, not a folder")
    exclude = [output] if output is not None and not as_file else []
    pairs: list[tuple[Path, Path]] = []
    for path in paths:
        if path.is_dir():
            pairs += [
                (f, _target(f, f.relative_to(path), output)) for f in list_videos(path, exclude)
            ]
        elif as_file:
            assert output is not None
            pairs.append((path, output))
        else:
            pairs.append((path, _target(path, Path(path.name), output)))
    seen: dict[Path, Path] = {}
    unique: list[tuple[Path, Path]] = []
    for src, dst in pairs:
        key = dst.resolve()
        if key in seen:
            if seen[key] == src.resolve():
                continue  # the same file reached twice (a file and its folder)
            raise OutputPathError(f"{src} and {seen[key]} would both be written to {dst}")
        if key == src.resolve():
            raise OutputPathError(f"output {dst} is the input itself")
        seen[key] = src.resolve()
        unique.append((src, dst))
    return unique


def _target(src: Path, relative: Path, output: Path | None) -> Path:
    if output is None:
        return default_output(src)
    dst = output / relative
    # Mirroring into the input's own folder would overwrite the input: mark the name instead.
    return default_output(dst) if dst.resolve() == src.resolve() else dst

"""Planning a batch, for photos and films alike: walk the inputs, name every output, and
fail (per file) what would collide.

The rules:

- a folder is walked recursively and mirrored below ``-o`` (default ``<folder>_restored``
  beside it), so that an archive folder is only ever read;
- a file goes into ``-o`` as a folder (default: beside it, ``<stem>_restored<suffix>``); with
  a single file argument, ``-o`` may name the output file itself;
- hidden files, Synology ``@eaDir`` thumbnails, our temporaries and our earlier outputs are
  never inputs; other files met on the walk are listed with the reason they are passed over;
- an output that would overwrite an input, or that two inputs would share, fails that input
  (the rest of the run goes on); the same file reached through two arguments is done once.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from restore import jobs
from restore.errors import OutputPathError
from restore.jobs import TEMP_MARK, is_temp

OUTPUT_SUFFIX = "_restored"


@dataclass(frozen=True)
class Media:
    """What a job takes: its files' suffixes (lower case, with the dot).

    ``any_named_file``: a file named as an argument is tried whatever its suffix (FFmpeg
    reads many more containers than the suffixes the walk looks for).
    """

    noun: str  # "image", "film": in the reasons files are passed over
    suffixes: frozenset[str]
    any_named_file: bool = False

    def accepts(self, path: Path) -> bool:
        return path.suffix.lower() in self.suffixes


@dataclass(frozen=True)
class Task:
    """One input file and where its output goes; ``problem`` fails it without reading,
    ``skip`` (in ``Plan.passed_over`` only) says why it is not a file the job reads."""

    input: Path
    output: Path | None
    problem: str | None = None
    skip: str | None = None


@dataclass(frozen=True)
class Plan:
    tasks: tuple[Task, ...]
    output_roots: tuple[Path, ...]  # mirrored folders (stale temporaries are cleaned here)
    single_outputs: tuple[Path, ...]  # outputs of file arguments (cleaned one by one)
    passed_over: tuple[Task, ...] = ()  # other files met, each with its ``skip`` reason


def default_output_root(folder: Path) -> Path:
    """``<folder>_restored`` beside the folder."""
    folder = folder.resolve()
    if folder.parent == folder:
        raise OutputPathError(f"cannot put the output beside {folder}; choose one with -o")
    return folder.with_name(folder.name + OUTPUT_SUFFIX)


def default_output_file(path: Path) -> Path:
    """``<stem>_restored<suffix>`` beside the file."""
    return path.with_name(f"{path.stem}{OUTPUT_SUFFIX}{path.suffix}")


def plan(paths: Sequence[Path], output: Path | None, media: Media) -> Plan:
    """Map every ``media`` file below ``paths`` to its output (rules in the module docstring).

    Raises:
        OutputPathError: ``output`` is an existing file, equals an input folder, or names
            one file for several inputs or a folder.
    """
    folders = [p for p in paths if p.is_dir()]
    files = [p for p in paths if not p.is_dir()]
    names_a_file = output is not None and not output.is_dir() and media.accepts(output)
    if names_a_file and (len(paths) != 1 or folders):
        raise OutputPathError(
            f"{output} is a file name, but the input is several files or a folder: "
            "give a folder with -o"
        )
    if output is not None and not names_a_file and output.exists() and not output.is_dir():
        raise OutputPathError(f"output {output} is an existing file, not a folder")

    roots: list[tuple[Path, Path]] = []
    for folder in folders:
        root = output if output is not None else default_output_root(folder)
        if root.resolve() == folder.resolve():
            raise OutputPathError(f"the output folder {root} is the input folder")
        roots.append((folder, root))
    exclude = {r.resolve() for _, r in roots}

    pairs: list[tuple[Path, Path | None, str | None]] = []
    passed_over: list[Task] = []
    singles: list[Path] = []
    for f in files:
        if is_temp(f):
            continue
        if not (media.accepts(f) or media.any_named_file):
            passed_over.append(Task(f, None, skip=not_taken(f, media)))
            continue
        if names_a_file:
            assert output is not None
            dest = output
        else:
            dest = output / f.name if output is not None else default_output_file(f)
        singles.append(dest)
        pairs.append((f, dest, None))
    for folder, root in roots:
        for item, problem in walk(folder, exclude):
            if problem is None and not media.accepts(item):
                passed_over.append(Task(item, None, skip=not_taken(item, media)))
                continue
            out = None if problem else root / item.relative_to(folder)
            pairs.append((item, out, problem))

    tasks: list[Task] = []
    inputs = {p.resolve() for p, _, problem in pairs if problem is None}
    seen_inputs: set[Path] = set()
    claimed: dict[Path, Path] = {}
    for src, out, problem in pairs:
        key = src.resolve()
        if problem is None and key in seen_inputs:
            continue  # the same file reached through two arguments
        seen_inputs.add(key)
        if problem is None and out is not None:
            out_key = out.resolve()
            if out_key in inputs:
                problem = f"its output {out} would overwrite an input file"
            elif out_key in claimed:
                problem = f"its output {out} is also the output of {claimed[out_key]}"
            else:
                claimed[out_key] = src
        tasks.append(Task(src, out, problem))
    return Plan(tuple(tasks), tuple(r for _, r in roots), tuple(singles), tuple(passed_over))


def not_taken(path: Path, media: Media) -> str:
    """Why a file met on the walk is passed over."""
    kind = path.suffix.lower() or "no suffix"
    return (
        f"not {_a(media.noun)} restore reads ({kind}; it reads {', '.join(sorted(media.suffixes))})"
    )


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def walk(root: Path, exclude: Collection[Path] = ()) -> Iterator[tuple[Path, str | None]]:
    """Files below ``root``, sorted, as (path, None), or (folder, reason) if unreadable.

    Left out: hidden files and folders (``._x.jpg`` resource forks),
    Synology ``@eaDir`` thumbnails, our temporaries, folders in ``exclude`` (resolved
    paths, e.g. an output folder inside the input), and earlier outputs of ours named
    ``x_restored.jpg`` / ``x_restored/`` beside an ``x.jpg`` / ``x/``.
    """
    errors: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=errors.append):
        while errors:
            e = errors.pop()
            yield Path(e.filename or dirpath), f"cannot read folder: {e.strerror or e}"
        here = Path(dirpath)
        names = set(dirnames) | set(filenames)
        dirnames[:] = sorted(
            n
            for n in dirnames
            if not n.startswith(".")
            and n != "@eaDir"
            and not _is_our_output(n, "", names)
            and (here / n).resolve() not in exclude
        )
        for n in sorted(filenames):
            p = here / n
            if n.startswith(".") or is_temp(p):
                continue
            if _is_our_output(p.stem, p.suffix, names):
                continue
            yield p, None
    while errors:
        e = errors.pop()
        yield Path(e.filename or root), f"cannot read folder: {e.strerror or e}"


def _is_our_output(stem: str, suffix: str, siblings: Collection[str]) -> bool:
    return stem.endswith(OUTPUT_SUFFIX) and stem[: -len(OUTPUT_SUFFIX)] + suffix in siblings


def remove_stale_temps(plan_: Plan) -> int:
    """Delete temporaries left below the outputs by a killed run (not a live run's)."""
    found: list[Path] = []
    for root in plan_.output_roots:
        if root.is_dir():
            found += root.rglob(f"*{TEMP_MARK}*")
    for out in plan_.single_outputs:
        found += jobs.temps_of(out)
    return jobs.remove_stale_temps(found)

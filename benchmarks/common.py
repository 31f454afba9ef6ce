"""Timing helpers, result tables and the weights every benchmark uses."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from restore.models import GeneratorConfig, UNetGenerator

from restore.engine import Colorizer, EngineConfig
from restore.weights import save_generator

SHIPPED = Path(__file__).resolve().parent.parent / "weights" / "restore_g.safetensors"
RUN_WEIGHTS = Path("/work/runs/main-1/g_latest.safetensors")


def pick_weights(choice: str | None, scratch: Path) -> tuple[Path, str]:
    """The weights file to use and a note saying which.

    ``choice`` is a file, or None for: the shipped weights, else the training run's latest
    generator, else a random generator of the default architecture (same speed) saved
    into ``scratch``.
    """
    if choice:
        return Path(choice), f"{choice}"
    if SHIPPED.exists():
        return SHIPPED, "shipped weights/restore_g.safetensors"
    if RUN_WEIGHTS.exists():
        return RUN_WEIGHTS, f"{RUN_WEIGHTS} (training run, latest)"
    torch.manual_seed(0)
    path = scratch / "random_g.safetensors"
    save_generator(UNetGenerator(GeneratorConfig()), path, training={"steps": 0, "data": "random"})
    return path, "random generator of the default architecture (speed is the same)"


def colorizer(weights: Path, **config: object) -> Colorizer:
    return Colorizer.from_weights(weights, EngineConfig(**config))  # type: ignore[arg-type]


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` runs after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@dataclass
class Table:
    """A markdown table printed as soon as it is complete."""

    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([_fmt(c) for c in cells])

    def render(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.header) + " |"]
        lines.append("|" + "---|" * len(self.header))
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        lines += [""] + [f"- {n}" for n in self.notes] if self.notes else []
        return "\n".join(lines) + "\n"


def _fmt(x: object) -> str:
    if isinstance(x, float):
        if x >= 100:
            return f"{x:.0f}"
        if x >= 10:
            return f"{x:.1f}"
        return f"{x:.2f}"
    return str(x)

"""The training loop of the small repair networks (detector, grain estimator, cleanup):
batches made in a thread, AdamW with a one-cycle schedule, validation and export every few
hundred steps, an atomic checkpoint to resume from."""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class SmallRun:
    """How long and how fast; built from the trainer's command line."""

    out: Path
    steps: int
    lr: float
    batch_size: int
    val_every: int = 250
    checkpoint_every: int = 100


def fit(
    model: torch.nn.Module,
    run: SmallRun,
    batch: Callable[[int, int], Batch],
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    evaluate: Callable[[], dict[str, float]],
    export: Callable[[str, int, dict[str, float]], None],
    score: str,
    higher_is_better: bool,
) -> None:
    """Train ``model`` on ``batch(step, size)`` (a pure function of the step, so a resumed
    run sees the same data) until ``run.steps``.

    Every ``run.val_every`` steps ``evaluate()``'s metrics are logged to
    ``out/metrics.jsonl`` and ``export("latest", step, metrics)`` is called, and
    ``export("best", step, metrics)`` when ``metrics[score]`` is the best yet. Resumes from
    ``out/checkpoint.pt``.
    """
    run.out.mkdir(parents=True, exist_ok=True)
    opt = torch.optim.AdamW(model.parameters(), lr=run.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, run.lr, total_steps=run.steps, pct_start=0.05)
    ckpt = run.out / "checkpoint.pt"
    sign = 1.0 if higher_is_better else -1.0
    step, best = resume(ckpt, model, opt, sched, best=-float("inf"))

    ready: queue.Queue[tuple[int, Batch]] = queue.Queue(maxsize=4)

    def load(start: int) -> None:  # cv2 and numpy release the GIL
        for s in range(start, run.steps):
            ready.put((s, batch(s, run.batch_size)))

    threading.Thread(target=load, args=(step,), daemon=True).start()
    model.train()
    t0, seen = time.perf_counter(), 0
    while step < run.steps:
        s, (x, target) = ready.get()
        assert s == step
        value = loss(model(x), target)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        sched.step()
        step += 1
        seen += x.shape[0]
        if step % 25 == 0:
            rate = seen / (time.perf_counter() - t0)
            log.info("step=%d loss=%.4f crops_per_s=%.1f", step, value.item(), rate)
        if step % run.val_every == 0 or step == run.steps:
            model.eval()
            with torch.no_grad():
                metrics: dict[str, Any] = evaluate()
            model.train()
            log.info("step=%d val %s", step, metrics)
            with open(run.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps({"step": step, **metrics}) + "\n")
            export("latest", step, metrics)
            if sign * metrics[score] > best:
                best = sign * metrics[score]
                export("best", step, metrics)
        if step % run.checkpoint_every == 0 or step == run.steps:
            checkpoint(ckpt, model, opt, sched, step, best)


def checkpoint(
    path: Path, model: torch.nn.Module, opt: Any, sched: Any, step: int, best: float
) -> None:
    """Write a small model's training state atomically (a temporary file, then a rename)."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(
        {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
         "step": step, "best": best},
        tmp,
    )  # fmt: skip
    os.replace(tmp, path)


def resume(
    path: Path, model: torch.nn.Module, opt: Any, sched: Any, best: float
) -> tuple[int, float]:
    """Load :func:`checkpoint`'s state into ``model``, ``opt`` and ``sched`` if ``path``
    exists; (step, best score): (0, ``best``) when starting afresh."""
    if not path.exists():
        return 0, best
    state = torch.load(path, weights_only=True)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    log.info("resumed at step %d", int(state["step"]))
    return int(state["step"]), float(state["best"])

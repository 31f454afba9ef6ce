"""From the colour options of a command to a loaded :class:`~restore.engine.Colorizer`.

Shared by the CLI (one colorizer in this process) and the Ray engine (one per worker).
Imports torch only when a colorizer is loaded, so ``--help`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from restore.errors import RestoreError

if TYPE_CHECKING:
    from restore.engine import Colorizer, Runtime


class StartupProblem(RestoreError):
    """Nothing can be colorized: no weights, a device that is missing, a bad weights file."""


@dataclass(frozen=True)
class EngineOptions:
    """The generator options of a colorizing command, as given (built by the CLI)."""

    weights: Path | None
    device: str
    precision: str
    runtime: Runtime
    batch_size: int | None  # None: CPU_BATCH_SIZE or GPU_BATCH_SIZE by device
    render_size: int
    refine: bool
    saturation: float
    threads: int | None  # cores to use; None: all
    vividness: float | None = None  # None: the weights' calibrated default


#: Default generator batch on CUDA: a GPU needs more work per call than a CPU core to be
#: busy (not measured here: no GPU on the development machines).
GPU_BATCH_SIZE = 16
#: On a CPU: batch 1 runs slower than 4, 8 or 16, which run alike (benchmarks/RESULTS.md);
#: 4 keeps the pipelines' queues short.
CPU_BATCH_SIZE = 4


def load_colorizer(engine: EngineOptions) -> Colorizer:
    """Check the device, tune the process, and load the generator once.

    Raises:
        StartupProblem: the weights are missing or unreadable, or the device is absent.
    """
    import torch

    from restore.engine import REFINE_RADIUS, Colorizer, EngineConfig, resolve_device
    from restore.errors import WeightsError
    from restore.runtime import apply_threads, plan_threads, tune_allocator
    from restore.weights import default_weights

    weights = engine.weights or default_weights()
    device = engine.device
    if not weights.is_file():
        raise StartupProblem(
            f"no model weights at {weights}.\nThe default weights are not installed: pass "
            "--weights FILE (a .safetensors generator, e.g. written by `restore train`) "
            "or set RESTORE_WEIGHTS=FILE."
        )
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise StartupProblem(
            "--device cuda: CUDA is not available on this machine (try --device cpu)"
        )
    if device == "mps" and not torch.backends.mps.is_available():
        raise StartupProblem(
            "--device mps: MPS is not available on this machine (try --device cpu)"
        )
    tune_allocator()
    cuda = resolve_device(device).type == "cuda"
    plan = plan_threads(engine.threads, cuda=cuda)
    apply_threads(plan)
    batch_size = engine.batch_size or (GPU_BATCH_SIZE if cuda else CPU_BATCH_SIZE)
    config = EngineConfig(
        device=device,
        precision=engine.precision,
        render_size=engine.render_size,
        batch_size=batch_size,
        workers=plan.workers,
        refine_radius=REFINE_RADIUS if engine.refine else 0,
        saturation=engine.saturation,
        vividness=engine.vividness,
        runtime=engine.runtime,
    )
    try:
        return Colorizer.from_weights(weights, config)
    except WeightsError as e:
        raise StartupProblem(str(e)) from e

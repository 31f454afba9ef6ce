"""The generator alone: images/s and GFLOP/s per batch and dtype, against a measured peak."""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import Table
from restore import ov_runner
from restore.engine import Colorizer, resolve_precision

Runner = Callable[[torch.Tensor], torch.Tensor]


def _rate(fn: object, work: float, seconds: float) -> float:
    """Best-of work/s of ``fn`` run repeatedly for about ``seconds`` (after one warm-up call)."""
    fn()  # type: ignore[operator]
    best, spent = 0.0, 0.0
    while spent < seconds or best == 0.0:
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        dt = time.perf_counter() - t0
        spent += dt
        best = max(best, work / dt)
    return best


@torch.inference_mode()
def peak(seconds: float) -> Table:
    """GFLOP/s of a large 3x3 convolution and a large matmul, fp32 and bf16, on one core and
    on all cores (on a loaded machine one thread can beat all: the best is the peak)."""
    threads = torch.get_num_threads()
    table = Table("Machine peak", ["kernel", "dtype", "torch threads", "GFLOP/s"])
    try:
        for n in sorted({1, os.cpu_count() or 1}):
            torch.set_num_threads(n)
            _peak(table, seconds)
    finally:
        torch.set_num_threads(threads)
    return table


def _peak_conv() -> tuple[Callable[[], torch.Tensor], float]:
    """The peak's kernel: a 3x3 256-channel convolution of a batch of 8 at 56x56,
    channels_last, as a no-argument call, and its FLOPs."""
    x = torch.randn(8, 256, 56, 56).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    return (lambda: conv(x)), float(2 * 8 * 56 * 56 * 256 * 256 * 9)


def _dtypes() -> tuple[torch.dtype, ...]:
    """fp32, and bf16 where the CPU has it natively: emulated bf16 kernels take minutes
    here and measure nothing the engine would run (it picks fp32 there)."""
    native = resolve_precision("auto", torch.device("cpu")) == torch.bfloat16
    return (torch.float32, torch.bfloat16) if native else (torch.float32,)


def _peak(table: Table, seconds: float) -> None:
    n = torch.get_num_threads()
    conv, conv_flops = _peak_conv()
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    mm_flops = 2 * 2048**3
    for dtype in _dtypes():
        name = "fp32" if dtype == torch.float32 else "bf16"
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            conv_rate = _rate(conv, conv_flops, seconds)
            table.add("conv 3x3 256ch 56x56 b8", name, n, conv_rate / 1e9)
            table.add("matmul 2048^3", name, n, _rate(lambda: a @ b, mm_flops, seconds) / 1e9)


@torch.inference_mode()
def generator(
    colorizer: Colorizer, shape: tuple[int, int], batches: list[int], seconds: float
) -> tuple[Table, dict[str, float]]:
    """images/s and GFLOP/s of the generator at ``shape`` (h, w): PyTorch eager fp32 NCHW,
    eager bf16 channels_last, and OpenVINO (the engine's CPU default, restore.ov_runner)
    in fp32 and bf16.

    Returns the table and the best GFLOP/s per "<dtype>" and per "<dtype>, <runtime>"."""
    workers = max(1, colorizer.config.workers)
    cores = os.cpu_count() or 1
    model = colorizer.model  # folded, channels_last
    h, w = shape
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 1, h, w))
    flops = float(counter.get_total_flops())
    table = Table(
        f"Generator at {h}x{w} ({flops / 1e9:.1f} GFLOP per image, BatchNorm folded), "
        f"{torch.get_num_threads()} torch thread(s) per eager call",
        ["batch", "dtype / runtime", "images/s", "GFLOP/s"],
    )
    nchw = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    cl = torch.channels_last
    # (name, single-call runner, runner for `workers` calls at once, dtype, layout)
    variants: list[tuple[str, Runner, Runner, torch.dtype, torch.memory_format]] = [
        ("fp32, eager NCHW", nchw, nchw, torch.float32, torch.contiguous_format),
    ]
    if torch.bfloat16 in _dtypes():
        variants.append(("bf16 autocast, eager channels_last", model, model, torch.bfloat16, cl))
    if ov_runner.available():
        for dtype in _dtypes():
            kind = "fp32" if dtype == torch.float32 else "bf16"
            one = ov_runner.OpenVINORunner(model, dtype, streams=1, threads=cores)
            many = ov_runner.OpenVINORunner(model, dtype, streams=workers, threads=cores)
            variants.append((f"{kind}, OpenVINO", one, many, dtype, cl))
    best: dict[str, float] = {}
    for name, net, parallel, dtype, layout in variants:
        kind = "fp32" if dtype == torch.float32 else "bf16"
        runtime = name.split(", ", 1)[1]
        eager = isinstance(net, torch.nn.Module)
        for b in batches:
            x = torch.randn(b, 1, h, w).contiguous(memory_format=layout)
            with torch.autocast("cpu", dtype=dtype, enabled=eager and dtype != torch.float32):
                ips = _rate(lambda: net(x), b, seconds)  # noqa: B023
            table.add(b, name, ips, ips * flops / 1e9)
            _keep(best, kind, runtime, ips * flops / 1e9)
        # The two ways to use all cores: one call over all of them, or ``workers``
        # calls at once, each in its own thread (single-threaded eager calls, or one
        # OpenVINO stream each).
        b = colorizer.config.batch_size
        x = torch.randn(b, 1, h, w).contiguous(memory_format=layout)
        if cores > 1 and eager:
            threads = torch.get_num_threads()
            torch.set_num_threads(cores)
            with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                ips = _rate(lambda: net(x), b, seconds)  # noqa: B023
            torch.set_num_threads(threads)
            table.add(f"{b}, one call on {cores} threads", name, ips, ips * flops / 1e9)
            _keep(best, kind, runtime, ips * flops / 1e9)
        if workers > 1:
            ips = _concurrent_rate(parallel, x, dtype if eager else torch.float32, workers, seconds)
            table.add(f"{b}, {workers} calls at once", name, ips, ips * flops / 1e9)
            _keep(best, kind, runtime, ips * flops / 1e9)
    table.notes.append(
        "single-call rows: best of repeated calls; 'calls at once' rows: mean over the window; "
        f"OpenVINO single calls use all {cores} threads in one stream"
    )
    return table, best


@torch.inference_mode()
def share_samples(
    colorizer: Colorizer, shape: tuple[int, int], repeats: int, seconds: float
) -> Table:
    """The engine's generator against the conv peak, measured back to back ``repeats``
    times: on a shared host both drift, and a ratio of two moments minutes apart (the
    tables above) is noisier than one of neighbouring seconds.

    Each sample: the bf16 (or fp32, as the engine runs) 3x3 conv of :func:`peak` on all
    cores, then the engine's runner with its batch as one call on all cores and as
    ``workers`` concurrent single-threaded calls; the share is the better generator figure
    over the peak.
    """
    h, w = shape
    dtype = colorizer.dtype
    kind = "fp32" if dtype == torch.float32 else "bf16"
    with FlopCounterMode(display=False) as counter:
        colorizer.model(torch.zeros(1, 1, h, w))
    flops = float(counter.get_total_flops())
    cores = os.cpu_count() or 1
    b = colorizer.config.batch_size
    x = torch.randn(b, 1, h, w).contiguous(memory_format=torch.channels_last)
    conv, conv_flops = _peak_conv()
    workers = max(1, colorizer.config.workers)
    table = Table(
        f"Generator ({kind}, {runtime_label(colorizer)}, batch {b}) against the {kind} conv "
        f"peak on {cores} threads, measured back to back",
        ["sample", "peak GFLOP/s", "generator GFLOP/s", "share"],
    )
    threads = torch.get_num_threads()
    for i in range(repeats):
        torch.set_num_threads(cores)
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            top = _rate(conv, conv_flops, seconds) / 1e9
            one = _rate(lambda: colorizer.runner(x), b, seconds) * flops / 1e9
        torch.set_num_threads(threads)
        many = _concurrent_rate(colorizer.runner, x, dtype, workers, seconds) * flops / 1e9
        gen = max(one, many)
        table.add(i + 1, top, gen, f"{gen / top:.0%}")
    return table


def runtime_label(colorizer: Colorizer) -> str:
    """The :func:`generator` table's name for the runtime ``colorizer`` runs."""
    if isinstance(colorizer.runner, ov_runner.OpenVINORunner):
        return "OpenVINO"
    return "eager channels_last"


def _keep(best: dict[str, float], kind: str, runtime: str, gflops: float) -> None:
    for key in (kind, f"{kind}, {runtime}"):
        best[key] = max(best.get(key, 0.0), gflops)


def _concurrent_rate(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    dtype: torch.dtype,
    workers: int,
    seconds: float,
) -> float:
    """Aggregate images/s of ``workers`` threads each calling ``model(x)`` for ``seconds``."""
    counts = [0] * workers

    def loop(i: int) -> None:
        with (
            torch.inference_mode(),
            torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32),
        ):
            model(x)  # warm-up
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                model(x)
                counts[i] += x.shape[0]

    t0 = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)

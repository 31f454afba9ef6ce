"""Run every benchmark and print markdown tables: ``python -m benchmarks.run [--quick]``.

Inputs are synthesised into a temporary folder; nothing outside it is written. On an idle
2-core machine the default run takes about 6-8 minutes; ``--quick`` (short clips, fewer
repeats) about 2.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import torch

from benchmarks import inputs, memory, model, photos, train, video
from benchmarks.common import Table, colorizer, pick_weights
from restore.engine import Colorizer, render_shape
from restore.runtime import apply_threads, plan_threads, tune_allocator

SECTIONS = ("model", "video", "photos", "memory", "train")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    ap.add_argument("--weights", help="generator weights (default: shipped, else run, else random)")
    ap.add_argument("--only", choices=SECTIONS, action="append", help="run only these sections")
    ap.add_argument("--quick", action="store_true", help="short clips, one repeat (smoke test)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per figure (median)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the speed clips")
    ap.add_argument(
        "--long", action="store_true", help="memory check on a 10-minute 720p clip (slow)"
    )
    ap.add_argument("--long-seconds", type=float, default=40.0, help="long clip otherwise")
    ap.add_argument("--threads", type=int, help="cores to use, as `restore --threads`")
    ap.add_argument(
        "--train-data", type=Path, help="training photos for the train section (default: synthetic)"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats, args.seconds, args.long_seconds = 1, 3.0, 9.0
    long_seconds = 600.0 if args.long else args.long_seconds
    sections = args.only or list(SECTIONS)

    tune_allocator()  # as the CLI does, with its thread plan
    plan = plan_threads(args.threads)
    apply_threads(plan)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="restore-bench-") as tmp:
        work = Path(tmp)
        weights, note = pick_weights(args.weights, work)
        col = colorizer(weights, workers=plan.workers)
        print(f"# restore benchmarks, {datetime.datetime.now():%Y-%m-%d %H:%M}\n")
        print(
            f"- command: `python -m benchmarks.run {' '.join(sys.argv[1:] if argv is None else argv)}`"
        )
        print(
            f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"load average before start {os.getloadavg()[0]:.2f}"
        )
        print(
            f"- torch {torch.__version__}, {torch.get_num_threads()} intra-op threads; OpenCV "
            f"{cv2.__version__}, {cv2.getNumThreads()} threads"
        )
        print(f"- weights: {note}")
        print(
            f"- engine: device {col.device}, {col.dtype}, runtime {col.config.runtime}, render size "
            f"{col.config.render_size}, batch {col.config.batch_size}, {plan.workers} "
            "generator call(s) at once (restore.runtime.plan_threads)\n",
            flush=True,
        )
        summary = Table("Summary", ["figure", "value", "target"])

        if "model" in sections:
            span = 0.5 if args.quick else 2.0
            peak_tab = model.peak(span)
            _emit(peak_tab)
            shape = render_shape(720, 1280, col.config.render_size)
            table, best = model.generator(col, shape, [1, 4, 8, 16], span)
            peaks: dict[str, float] = {}
            for r in peak_tab.rows:  # the best conv figure per dtype, any thread count
                if r[0].startswith("conv"):
                    peaks[r[1]] = max(peaks.get(r[1], 0.0), float(r[3]))
            table.notes.append(
                "best share of the conv peak above (same dtype): "
                + ", ".join(
                    f"{k}: {v / peaks['fp32' if 'fp32' in k else 'bf16']:.0%}"
                    for k, v in best.items()
                )
            )
            _emit(table)
            kind = "fp32" if col.dtype == torch.float32 else "bf16"
            runtime = model.runtime_label(col)
            share = best[f"{kind}, {runtime}"] / peaks[kind]
            summary.add(
                f"generator as the engine runs it ({kind}, {runtime}), share of its conv peak",
                f"{share:.0%}",
                "≥ 50 %",
            )
            samples = model.share_samples(col, shape, max(3, args.repeats), span)
            _emit(samples)
            shares = sorted(float(r[3].rstrip("%")) for r in samples.rows)
            summary.add(
                f"the same, {len(shares)} back-to-back samples: median (range)",
                f"{statistics.median(shares):.0f}% ({shares[0]:.0f}-{shares[-1]:.0f}%)",
                "≥ 50 %",
            )

        if "video" in sections:
            for label, (w, h) in (("640x480", (640, 480)), ("1280x720", (1280, 720))):
                src = inputs.write_clip(work / f"clip_{h}.mp4", w, h, args.seconds)
                serial = None
                if h == 720 and col.config.workers > 1:
                    serial = Colorizer(col.model, replace(col.config, workers=1), col.info)
                table, figures = video.report(
                    label,
                    src,
                    col,
                    work,
                    frames=50 if args.quick else 100,
                    repeats=args.repeats,
                    serial=serial,
                )
                _emit(table)
                summary.add(
                    f"video {label} end to end (frames/s)",
                    figures["ours"],
                    "≥ 20 at 720p" if h == 720 else "",
                )
                summary.add(
                    f"video {label} end to end / ceiling",
                    figures["ours"] / figures["ceiling"],
                    "≥ 1.0",
                )
                summary.add(
                    f"video {label} end to end / frame dump",
                    figures["ours"] / figures["baseline"],
                    "≥ 1.5",
                )
                src.unlink()

        if "photos" in sections:
            for label, (w, h, n) in (("12 MP", (4000, 3000, 4)), ("1 MP", (1152, 864, 16))):
                folder = inputs.write_photos(work / f"photos_{h}", w, h, n)
                serial = None
                if col.config.workers > 1:
                    serial = Colorizer(col.model, replace(col.config, workers=1), col.info)
                table, ips = photos.report(label, folder, col, args.repeats, serial)
                _emit(table)
                summary.add(
                    f"photos {label} end to end (images/s)", ips, "≥ 4" if h == 3000 else ""
                )

        if "memory" in sections:
            table = Table(
                "Peak memory, restore video at 1280x720 (fresh process each)",
                [
                    "clip",
                    "frames",
                    "seconds",
                    "peak RSS MiB",
                    "peak anonymous MiB",
                    "file MiB",
                    "container index MiB",
                ],
            )
            peaks: list[memory.Peak] = []
            indexes: list[float] = []
            for secs in (args.seconds, long_seconds):
                src = inputs.write_clip(work / f"mem_{secs:.0f}.mp4", 1280, 720, secs)
                p = memory.peak_rss(src, work / "mem_out.mp4", weights)
                index = memory.container_index_mib(src, work / "mem_remux.mp4")
                table.add(
                    f"{secs:.0f} s", p.frames, p.seconds, p.rss_mib, p.anon_mib, p.file_mib, index
                )
                peaks.append(p)
                indexes.append(index)
                src.unlink()
            short, long = peaks
            table.notes.append(
                "anonymous: the program's own memory, sampled every 10 ms; RSS also counts "
                "library pages, which the kernel may page out (benchmarks/memory.py)"
            )
            table.notes.append(
                "container index: what a plain remux of the clip (no decoding) adds to "
                "anonymous memory: the input's sample index and the MP4 muxer's sample tables, "
                "which grow with the film's length by design"
            )
            summary.add(
                f"peak anonymous memory at 720p, {args.seconds:.0f} s vs {long_seconds:.0f} s "
                "clip (MiB)",
                f"{short.anon_mib:.0f} vs {long.anon_mib:.0f} "
                f"({long.anon_mib / short.anon_mib - 1:+.1%}); container indexes "
                f"{indexes[0]:.1f} vs {indexes[1]:.1f}",
                "equal",
            )
            summary.add(
                f"peak RSS at 720p, {args.seconds:.0f} s vs {long_seconds:.0f} s clip (MiB)",
                f"{short.rss_mib:.0f} vs {long.rss_mib:.0f} "
                f"({long.rss_mib / short.rss_mib - 1:+.1%})",
                "equal",
            )
            if not args.long:
                table.notes.append(
                    "the 10-minute clip of issue 5: add --long (about 10 more minutes)"
                )
            _emit(table)

        if "train" in sections:
            # training runs one process over all cores, as `restore train` does
            threads = torch.get_num_threads()
            torch.set_num_threads(os.cpu_count() or 1)
            try:
                table = train.report(args.train_data, 1.0 if args.quick else 3.0)
            finally:
                torch.set_num_threads(threads)
            _emit(table)
            for r in table.rows:
                if r[0] == "regression" and r[1] == "colour loss":
                    summary.add(
                        "training, regression head, phase 1, end to end (crops/s)", r[5], "≥ 92"
                    )

        _emit(summary)
        print(f"total {time.perf_counter() - started:.0f} s")
    return 0


def _emit(table: Table) -> None:
    print(table.render(), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())

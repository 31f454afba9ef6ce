"""The Ray engine against the local one: ``python -m benchmarks.ray_engine [--quick]``.

Runs `restore photos` and `restore video` on synthetic inputs with ``--engine local`` and
with ``--engine ray`` at 1 and 2 workers (a local cluster started by the command itself,
so the Ray figures include starting it and loading the model in every worker), and prints
wall time, throughput and the peak resident memory of each Ray worker process (sampled
from /proc every 0.2 s: Ray's own memory accounting does not see it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks import inputs

RESTORE = [str(Path(sys.executable).with_name("restore"))]  # the console script of this venv


def _worker_rss() -> dict[int, int]:
    """Resident KiB of every Ray actor process of ours (its title is ray::<Class>...)."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"ray::PhotoWorker" not in cmd and b"ray::VideoWorker" not in cmd:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    found[int(pid)] = int(line.split()[1])
        except OSError:
            continue
    return found


def timed(args: list[str], report: Path) -> tuple[float, dict, int]:
    """(wall seconds, the JSON report, peak RSS in MiB of any one Ray worker)."""
    peak: dict[int, int] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid, kib in _worker_rss().items():
                peak[pid] = max(peak.get(pid, 0), kib)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    subprocess.run([*args, "-q", "--report", str(report)], check=True, capture_output=True)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    return wall, json.loads(report.read_text()), max(peak.values(), default=0) // 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ray_engine", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer photos, a shorter clip")
    ap.add_argument("--weights", help="generator weights (default: the shipped ones)")
    a = ap.parse_args(argv)
    photos_n, clip_s = (8, 10.0) if a.quick else (32, 40.0)
    weights = ["--weights", a.weights] if a.weights else []
    engines = {
        "local (all cores)": ["--engine", "local"],
        "ray, 1 worker x 2 CPUs": ["--engine", "ray", "--ray-workers", "1", "--ray-cpus-per-worker", "2"],
        "ray, 2 workers x 1 CPU": ["--engine", "ray", "--ray-workers", "2", "--ray-cpus-per-worker", "1"],
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="restore-ray-bench-") as tmp:
        root = Path(tmp)
        album = inputs.write_photos(root / "album", 3000, 2000, photos_n, colour=False)
        clip = inputs.write_clip(root / "clip.mp4", 1280, 720, clip_s, gop=50)
        print(
            f"inputs: {photos_n} gray 6 MP JPEGs; one {clip_s:g} s 720p25 H.264+AAC clip "
            "(a keyframe every 2 s)"
        )
        print("| job | engine | wall s | throughput | peak RSS per Ray worker |")
        print("|---|---|---|---|---|")
        for name, extra in engines.items():
            out = root / f"photos-{len(extra)}-{extra[-1]}"
            wall, rep, rss = timed(
                [*RESTORE, "photos", str(album), "-o", str(out), *weights, *extra],
                root / "report.json",
            )
            done = rep["totals"]["done"]
            print(
                f"| photos | {name} | {wall:.1f} | {done / wall:.2f} images/s | {rss or '-'} MiB |"
            )
        for name, extra in engines.items():
            out = root / f"film-{len(extra)}-{extra[-1]}.mp4"
            segments = ["--ray-segment-seconds", str(clip_s / 4)] if "ray" in extra else []
            wall, rep, rss = timed(
                [*RESTORE, "video", str(clip), "-o", str(out), *weights, *extra, *segments],
                root / "report.json",
            )
            frames = rep["files"][0]["frames"]
            print(
                f"| video | {name} | {wall:.1f} | {frames / wall:.2f} frames/s | {rss or '-'} MiB |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Peak resident memory of `restore video` on a short and a long clip (streaming check).

Each clip runs in a fresh process (``python -m benchmarks.memory SRC DST WEIGHTS``) that
prints its own figures, so the two do not mix:

- ``rss_mib``: peak RSS (``VmHWM``), everything resident, library code included. Not
  ``ru_maxrss``: Linux carries the forked parent's RSS into the child's ``ru_maxrss`` across
  exec, so a parent that had just synthesised a 10-minute clip inflated the long clip's
  figure (measured: a child that only prints ``ru_maxrss`` reports 25 MiB from a small
  parent, 1049 MiB from one holding 1 GiB);
- ``anon_mib``: the largest anonymous (heap and stack) resident memory seen by a thread that
  samples ``/proc/self/status`` every 10 ms: what the program itself holds, without the
  pages of mapped files (the shared libraries, ~440 MiB with torch), whose residency the
  kernel decides.

``container_index_mib`` (``python -m benchmarks.memory --index SRC DST``) is the part of
that which grows with the film by design: the anonymous memory a plain remux of the clip's
packets (no decoding) adds, i.e. the input's sample index, read when the file is opened,
and the MP4 muxer's sample tables, kept until the header is written at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Peak:
    """One child's figures (MiB, seconds)."""

    rss_mib: float
    anon_mib: float
    file_mib: float  # file-backed resident memory at the end
    seconds: float
    frames: int


def _child_result(*args: str) -> dict[str, float]:
    """Run ``python -m benchmarks.memory ARGS`` in a fresh process; its JSON result."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def peak_rss(src: Path, dst: Path, weights: Path) -> Peak:
    """Peak memory of colorize_video in a child process."""
    t0 = time.perf_counter()
    r = _child_result(str(src), str(dst), str(weights))
    seconds = time.perf_counter() - t0
    return Peak(r["rss_mib"], r["anon_mib"], r["file_mib"], seconds, int(r["frames"]))


def container_index_mib(src: Path, dst: Path) -> float:
    """Anonymous memory (MiB) that opening ``src`` and remuxing its audio and video packets
    into an MP4 adds, in a child process."""
    return float(_child_result("--index", str(src), str(dst))["index_mib"])


def status_mib(*keys: str) -> dict[str, float]:
    """Fields of /proc/self/status given in kB (VmRSS, VmHWM, RssAnon, ...), in MiB."""
    found: dict[str, float] = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in keys:
                found[key] = int(line.split()[1]) / 1024
    return found


class _AnonSampler:
    """Largest RssAnon seen every ``interval`` seconds while running (Linux)."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="anon-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, status_mib("RssAnon").get("RssAnon", 0.0))
            self._stop.wait(self.interval)

    def __enter__(self) -> _AnonSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _child(src: str, dst: str, weights: str) -> None:
    from restore.engine import Colorizer, EngineConfig
    from restore.runtime import apply_threads, plan_threads, tune_allocator
    from restore.video.pipeline import colorize_video
    from restore.video.temporal import StabilizeConfig, stabilizer

    tune_allocator()  # set up as `restore video` does
    plan = plan_threads()
    apply_threads(plan)
    colorizer = Colorizer.from_weights(weights, EngineConfig(workers=plan.workers))
    stage = stabilizer(StabilizeConfig())  # `restore video`'s default
    with _AnonSampler() as anon:
        frames = colorize_video(Path(src), Path(dst), colorizer, stage=stage).frames
    status = status_mib("VmHWM", "RssFile")
    result = {
        "rss_mib": status.get("VmHWM", 0.0),
        "anon_mib": anon.peak,
        "file_mib": status.get("RssFile", 0.0),
        "frames": frames,
    }
    print(json.dumps(result))


def _index_child(src: str, dst: str) -> None:
    import av

    before = status_mib("RssAnon")["RssAnon"]
    with av.open(src) as inp, av.open(dst, "w") as out:
        routes = {
            s.index: out.add_stream_from_template(s)
            for s in inp.streams
            if s.type in ("video", "audio")
        }
        for packet in inp.demux():
            if packet.dts is None or packet.stream.index not in routes:
                continue
            packet.stream = routes[packet.stream.index]
            out.mux(packet)
        grown = status_mib("RssAnon")["RssAnon"] - before  # before the header is written
    print(json.dumps({"index_mib": grown}))


if __name__ == "__main__":
    if sys.argv[1] == "--index":
        _index_child(*sys.argv[2:4])
    else:
        _child(*sys.argv[1:4])

"""Video: isolated stage rates, their sum-of-stages ceiling, `restore video` end to end, and a
frame-dump baseline (PNG per frame -> photos path -> encode -> mux the audio back)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import av
import cv2
import numpy as np

from benchmarks.common import Table, median_time
from restore import color, photos
from restore.engine import Colorizer
from restore.jobs import FileResult
from restore.video.deflicker import Deflicker, DeflickerConfig
from restore.video.dirt import DirtConfig, DirtRemover
from restore.video.frames import frame_lightness, rgb_to_frame
from restore.video.pipeline import colorize_video
from restore.video.streams import EncodeConfig, open_output
from restore.video.temporal import ColourStabilizer, StabilizeConfig, stabilizer


def _frames(src: Path, limit: int) -> list[av.VideoFrame]:
    with av.open(str(src)) as c:
        out = []
        for f in c.decode(video=0):
            out.append(f)
            if len(out) >= limit:
                break
        return out


def stages(src: Path, colorizer: Colorizer, frames: int, repeats: int) -> dict[str, float]:
    """Seconds per frame of each stage run alone over the first ``frames`` frames (median)."""
    sample = _frames(src, frames)
    n = len(sample)

    def decode() -> None:
        with av.open(str(src)) as c:
            for i, f in enumerate(c.decode(video=0)):
                frame_lightness(f)
                if i + 1 >= n:
                    break

    lightness = [frame_lightness(f) for f in sample]
    bs = max(1, colorizer.config.batch_size)

    def model() -> None:
        for i in range(0, n, bs):
            colorizer.ab_small(lightness[i : i + bs])

    abs_ = colorizer.ab_small(lightness[:bs])
    abs_ = [abs_[i % len(abs_)] for i in range(n)]

    def merge() -> None:
        for lum, ab in zip(lightness, abs_, strict=True):
            color.merge_l_ab_u8(lum, ab)

    smalls = [colorizer.downsize(lum) for lum in lightness]  # the pipeline hands them on

    def stabilise() -> None:  # as `restore video` does by default
        state = ColourStabilizer(StabilizeConfig())
        for small, ab in zip(smalls, abs_, strict=True):
            state.step(small, ab)

    rgbs = [color.merge_l_ab_u8(lum, ab) for lum, ab in zip(lightness, abs_, strict=True)]
    scratch = src.with_name(src.stem + "_encode.mp4")

    def encode() -> None:
        with av.open(str(src)) as inp:
            layout = open_output(scratch, inp, inp.streams.video[0], EncodeConfig())
            try:
                for i, rgb in enumerate(rgbs):
                    frame = rgb_to_frame(rgb, layout.size, layout.pix_fmt)
                    frame.pts = i
                    frame.time_base = layout.time_base
                    layout.container.mux(layout.video.encode(frame))
                layout.container.mux(layout.video.encode(None))
            finally:
                layout.container.close()

    out = {
        "decode + L": median_time(decode, repeats) / n,
        "model (resize, generator)": median_time(model, repeats) / n,
        "stabilise (flow, temporal filter)": median_time(stabilise, repeats) / n,
        "merge (upsample ab, L+ab -> RGB8)": median_time(merge, repeats) / n,
        "encode (RGB->YUV, x264)": median_time(encode, repeats) / n,
    }
    scratch.unlink(missing_ok=True)
    return out


def repair_stage(src: Path, frames: int, repeats: int, dirt: bool = False) -> float:
    """Seconds per frame of `restore video --deflicker` (or, with ``dirt``, of
    `--remove-dirt`) alone (median; the copy of each frame's L is counted too)."""
    lightness = [frame_lightness(f) for f in _frames(src, frames)]

    def run() -> None:
        d: Deflicker[np.ndarray] | DirtRemover[np.ndarray] = (
            DirtRemover(DirtConfig(), lambda x: x)
            if dirt
            else Deflicker(DeflickerConfig(), lambda x: x)
        )
        for lum in lightness:
            d.push(lum.copy())
        d.flush()

    run()  # the first call loads the compiled kernels
    return median_time(run, repeats) / len(lightness)


def end_to_end(src: Path, dst: Path, colorizer: Colorizer, repeats: int) -> tuple[float, int]:
    """(median frames/s of colorize_video with `restore video`'s default stabiliser, frames)."""
    frames = 0

    def run() -> None:
        nonlocal frames
        stage = stabilizer(StabilizeConfig())
        frames = colorize_video(src, dst, colorizer, EncodeConfig(), stage=stage).frames

    seconds = median_time(run, repeats, warmup=0)
    return frames / seconds, frames


def frame_dump(src: Path, dst: Path, colorizer: Colorizer, work: Path) -> tuple[float, int]:
    """The way frame-dump colorizers work; returns (frames/s, frames). Same weights, same
    encoder settings; every frame goes through a PNG file twice."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "in").mkdir(parents=True)
    t0 = time.perf_counter()
    n = 0
    with av.open(str(src)) as inp:
        for f in inp.decode(video=0):
            cv2.imwrite(str(work / "in" / f"{n:06d}.png"), f.to_ndarray(format="bgr24"))
            n += 1
    plan = photos.plan([work / "in"], work / "out")
    results: list[FileResult] = []
    photos.run(plan.tasks, colorizer, photos.PhotosConfig(), results.append)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        rate = vin.average_rate or 25
        v = out.add_stream("libx264", rate=rate, options={"crf": "18", "preset": "veryfast"})
        v.width, v.height, v.pix_fmt = vin.width, vin.height, "yuv420p"
        audio = [s for s in inp.streams.audio]
        outs = {s.index: out.add_stream_from_template(s) for s in audio}
        for i, p in enumerate(sorted((work / "out").glob("*.png"))):
            bgr = cv2.imread(str(p))
            frame = av.VideoFrame.from_ndarray(bgr, format="bgr24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        for packet in inp.demux(*audio):
            if packet.size:
                packet.stream = outs[packet.stream_index]
                out.mux(packet)
    seconds = time.perf_counter() - t0
    shutil.rmtree(work, ignore_errors=True)
    return n / seconds, n


def report(
    label: str,
    src: Path,
    colorizer: Colorizer,
    work: Path,
    frames: int,
    repeats: int,
    serial: Colorizer | None = None,
) -> tuple[Table, dict[str, float]]:
    """One resolution: stages, ceiling, ours, baseline, ratios; with ``serial`` (the same
    model, one generator call at a time) also that end to end rate, once."""
    st = stages(src, colorizer, frames, repeats)
    total = sum(st.values())
    ours, n = end_to_end(src, work / "ours.mp4", colorizer, repeats)
    one = end_to_end(src, work / "ours.mp4", serial, 1)[0] if serial is not None else None
    base, _ = frame_dump(src, work / "baseline.mp4", colorizer, work / "dump")
    table = Table(
        f"Video {label} ({n} frames, with audio)", ["stage / run", "ms/frame", "frames/s"]
    )
    for name, s in st.items():
        table.add(name, s * 1e3, 1 / s)
    table.add("**sum-of-stages ceiling**", total * 1e3, 1 / total)
    for name, dirt in (("deflicker", False), ("remove-dirt", True)):
        t = repair_stage(src, frames, repeats, dirt)
        table.add(f"{name} (only with --{name} or --repair; not in the ceiling)", t * 1e3, 1 / t)
    table.add("**restore video, end to end**", 1e3 / ours, ours)
    if one is not None:
        table.add("restore video, one generator call at a time (1 run)", 1e3 / one, one)
    table.add("frame-dump baseline (PNG per frame)", 1e3 / base, base)
    table.notes += [
        f"end to end / ceiling = {ours * total:.2f}x; end to end / baseline = {ours / base:.2f}x",
        f"stages: median of {repeats} runs over {min(frames, n)} frames, each stage alone; "
        f"end to end: median of {repeats} runs",
    ]
    return table, {"ours": ours, "ceiling": 1 / total, "baseline": base}

"""Synthetic video clips written with PyAV, and readers to compare them (tests only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.subtitles.subtitle import SubtitleSet

# A minimal ASS header: text subtitle encoders (subrip, ass) refuse to open without one.
ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
    b"Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
    b"BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, "
    b"BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
    b"Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0"
    b"\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, "
    b"Text\n"
)


@dataclass(frozen=True)
class Audio:
    codec: str = "aac"
    rate: int = 48000
    language: str | None = None
    seconds: float = 1.0
    hz: float = 440.0


@dataclass(frozen=True)
class Clip:
    """What to write. ``pts`` (in ``time_base``) gives a variable frame rate."""

    width: int = 96
    height: int = 64
    frames: int = 25
    rate: int = 25
    pts: Sequence[int] | None = None
    time_base: Fraction | None = None
    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    audio: Sequence[Audio] = ()
    subtitles: Sequence[tuple[int, int, str]] = ()  # (start ms, duration ms, text)
    subtitle_language: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    chapters_ms: Sequence[tuple[int, int, str]] = ()  # (start, end, title)
    rotation: int | None = None
    levels: tuple[int, int] | None = None  # fixed gray levels (left half, right half) if set
    flicker: Sequence[float] = ()  # per-frame brightness gain (old film's flicker) if set
    specks: Sequence[tuple[int, int, int, int]] = ()  # (frame, y, x, side): black dirt squares
    line: tuple[int, int] | None = None  # (x, width): a white line scratch down every frame
    gop: int | None = None  # frames between keyframes (libx264), if set


def gray_picture(i: int, width: int, height: int) -> np.ndarray:
    """(height, width) uint8: a moving gradient with a bright square, a black-and-white frame."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = 128 + 90 * np.sin((xx + 3 * i) / max(width / 6, 1)) * np.cos(yy / max(height / 4, 1))
    s = max(2, min(width, height) // 4)
    x0 = (2 * i) % max(1, width - s)
    img[height // 4 : height // 4 + s, x0 : x0 + s] = 235
    return np.clip(img, 0, 255).astype(np.uint8)


def _video_frame(clip: Clip, i: int) -> av.VideoFrame:
    w, h = clip.width, clip.height
    if clip.levels is not None:  # exact Y values and neutral chroma (even sizes, 4:2:0 only)
        planar = np.full((h * 3 // 2, w), 128, np.uint8)
        planar[:h, : w // 2], planar[:h, w // 2 :] = clip.levels
        return av.VideoFrame.from_ndarray(planar, format=clip.pix_fmt)
    g = gray_picture(i, w, h)
    if clip.flicker:
        g = np.clip(g * clip.flicker[i], 0, 255).astype(np.uint8)
    for frame, y, x, side in clip.specks:
        if frame == i:
            g[y : y + side, x : x + side] = 0
    if clip.line is not None:
        g[:, clip.line[0] : clip.line[0] + clip.line[1]] = np.minimum(
            255, g[:, clip.line[0] : clip.line[0] + clip.line[1]].astype(np.int32) + 60
        ).astype(np.uint8)
    rgb = np.repeat(g[:, :, None], 3, axis=2)
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=clip.pix_fmt)


def write_clip(path: Path, clip: Clip) -> Path:
    """Write ``clip`` to ``path`` (container from the suffix) and return the path."""
    out = av.open(str(path), "w")
    out.metadata.update(clip.metadata)
    tb = clip.time_base or Fraction(1, clip.rate)
    v = out.add_stream(
        clip.codec,
        rate=clip.rate,
        options=(
            {"preset": "ultrafast", **({"g": str(clip.gop)} if clip.gop else {})}
            if clip.codec == "libx264"
            else {}
        ),
    )
    v.width, v.height, v.pix_fmt = clip.width, clip.height, clip.pix_fmt
    v.time_base = tb
    v.codec_context.time_base = tb
    if clip.pix_fmt.startswith("yuvj"):
        v.codec_context.color_range = 2
    if clip.rotation is not None:
        v.set_display_rotation(clip.rotation)
    audio = []
    for a in clip.audio:
        s = out.add_stream(a.codec, rate=a.rate)
        if a.language:
            s.metadata["language"] = a.language
        audio.append((s, a))
    sub = None
    if clip.subtitles:
        sub = out.add_stream("subrip")
        sub.codec_context.time_base = Fraction(1, 1000)
        sub.codec_context.subtitle_header = ASS_HEADER
        if clip.subtitle_language:
            sub.metadata["language"] = clip.subtitle_language
    if clip.chapters_ms:
        out.set_chapters(
            [
                {
                    "id": i + 1,
                    "start": s,
                    "end": e,
                    "time_base": Fraction(1, 1000),
                    "metadata": {"title": t},
                }
                for i, (s, e, t) in enumerate(clip.chapters_ms)
            ]
        )
    pts = list(clip.pts) if clip.pts is not None else list(range(clip.frames))
    for i, p in enumerate(pts):
        frame = _video_frame(clip, i)
        frame.pts = p
        frame.time_base = tb
        out.mux(v.encode(frame))
    out.mux(v.encode(None))
    for s, a in audio:
        t, n = 0, 1024
        while t < a.seconds * a.rate:
            x = (0.3 * np.sin(2 * np.pi * a.hz * np.arange(t, t + n) / a.rate)).astype(np.float32)
            fr = av.AudioFrame.from_ndarray(
                np.stack([x, x]).reshape(1, -1), format="flt", layout="stereo"
            )
            fr.sample_rate, fr.pts = a.rate, t
            out.mux(s.encode(fr))
            t += n
        out.mux(s.encode(None))
    if sub is not None:
        for start, dur, text in clip.subtitles:
            pkt = sub.codec_context.encode_subtitle(
                SubtitleSet.create(f"0,0,Default,,0,0,0,,{text}".encode(), 0, dur, pts=start)
            )
            pkt.stream = sub
            pkt.pts = pkt.dts = start
            pkt.duration = dur
            out.mux(pkt)
    out.close()
    return path


# ----------------------------------------------------------------------------- reading


def frame_times(path: Path) -> list[Fraction]:
    """Presentation time of every decodable frame of the first video stream, in order."""
    with av.open(str(path)) as c:
        return [f.pts * f.time_base for f in c.decode(video=0)]


def packets(path: Path, kind: str) -> dict[int, list[tuple[bytes, Fraction | None, Fraction]]]:
    """Per stream of ``kind`` (by position among its kind): (payload, pts, duration) in seconds."""
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        out: dict[int, list[tuple[bytes, Fraction | None, Fraction]]] = {
            i: [] for i in range(len(streams))
        }
        for p in c.demux(*streams):
            if p.size == 0:
                continue
            pts = p.pts * p.time_base if p.pts is not None else None
            out[streams.index(p.stream)].append((bytes(p), pts, p.duration * p.time_base))
        return out


def video_frames(path: Path, fmt: str = "rgb24") -> list[np.ndarray]:
    """All frames of the first video stream as arrays (small clips only)."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format=fmt) for f in c.decode(video=0)]

"""Reading what a film's container says about its video stream: which stream, its span and
its frame count."""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path

import av
from av.container import InputContainer
from av.video.stream import VideoStream

from restore.errors import UnsupportedMedia


def pick_video(inp: InputContainer, src: Path) -> VideoStream:
    cover = av.stream.Disposition.attached_pic
    for s in inp.streams.video:
        if not s.disposition & cover and s.codec_context is not None:
            return s
    raise UnsupportedMedia(f"{src.name} has no video stream")


def _seconds(ticks: int | None, time_base: Fraction | None) -> float | None:
    return float(ticks * time_base) if ticks is not None and time_base else None


def stream_span(inp: InputContainer, s: VideoStream) -> tuple[float | None, float | None]:
    """(start, end) of the video stream in seconds, from the best source the file offers."""
    start = _seconds(s.start_time, s.time_base)
    dur = _seconds(s.duration, s.time_base)
    if dur is None:  # Matroska keeps per-stream durations as a tag
        tag = next((v for k, v in s.metadata.items() if k.upper() == "DURATION"), None)
        if tag:
            with contextlib.suppress(ValueError):
                h, m, sec = tag.split(":")
                dur = int(h) * 3600 + int(m) * 60 + float(sec)
    if dur is None and inp.duration:
        dur = inp.duration / av.time_base
        if start is None and inp.start_time is not None:
            start = inp.start_time / av.time_base
    if dur is None:
        return start, None
    return start, (start or 0.0) + dur


def expected_frames(inp: InputContainer, s: VideoStream) -> int | None:
    if s.frames:
        return s.frames
    start, end = stream_span(inp, s)
    rate = s.average_rate or s.guessed_rate
    if end is None or not rate:
        return None
    return max(1, round((end - (start or 0.0)) * float(rate)))

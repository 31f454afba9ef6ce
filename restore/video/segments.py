"""Cutting a film into segments that are colorized apart and joined again (the Ray engine)."""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path

import av

from restore.errors import UnsupportedMedia
from restore.video.items import Window
from restore.video.probe import pick_video, stream_span
from restore.video.streams import NO_PTS_FORMATS

#: Frames each segment decodes before its first written frame: the temporal stabiliser's
#: memory decays as strength**n (0.9**48 < 0.01), the deflicker window needs its radius.
WARMUP_FRAMES = 48


def plan_segments(src: Path, seconds: float, warmup_frames: int = WARMUP_FRAMES) -> list[Window]:
    """Windows that cover the film's video end to end, each about ``seconds`` long and
    starting on a keyframe of the source (one window for a short film, a film of unknown
    length, or a container without timestamps).

    Raises:
        UnsupportedMedia: ``src`` cannot be read or has no video stream.
    """
    whole = [Window(None, None)]
    try:
        inp = av.open(str(src))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise UnsupportedMedia(f"cannot read {src.name}: {e}") from e
    with inp:
        vs = pick_video(inp, src)
        start, end = stream_span(inp, vs)
        tb = vs.time_base
        rate = vs.average_rate or vs.guessed_rate
        if inp.format.name in NO_PTS_FORMATS or end is None or not tb or not rate:
            return whole
        starts: list[int] = []
        first = int(Fraction(start or 0.0) / tb)  # the film's first pts: no empty segment
        t = (start or 0.0) + seconds
        while t + seconds / 4 < end:  # no segment shorter than a quarter of the others
            key = _keyframe_at_or_before(inp, vs, int(Fraction(t) / tb))
            if key is not None and key > (starts[-1] if starts else first):
                starts.append(key)
            t += seconds
    if not starts:
        return whole
    warmup = round(warmup_frames / (rate * tb))
    bounds: list[int | None] = [None, *starts, None]
    return [
        Window(a, b, seek=None if a is None else max(0, a - warmup))
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def _keyframe_at_or_before(
    inp: av.container.InputContainer, vs: av.video.stream.VideoStream, ticks: int
) -> int | None:
    """The pts of the keyframe a backward seek to ``ticks`` lands on, if any."""
    with contextlib.suppress(av.FFmpegError):
        inp.seek(ticks, stream=vs, backward=True)
        for packet in inp.demux(vs):
            if packet.is_keyframe and packet.pts is not None:
                return packet.pts
    return None

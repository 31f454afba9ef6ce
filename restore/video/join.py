"""Joining colorized segments of a film into one output (the Ray engine's last step).

The segments' video packets are copied in order (each segment starts on a keyframe and was
encoded with the same settings); every other stream is muxed once, packet for packet, from
the source, as :func:`restore.video.colorize_video` does. Audio is never cut and re-joined,
so no encoder padding clicks or drifts at the seams.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
from av.audio.stream import AudioStream
from av.container import InputContainer

from restore.errors import EncodeError, UnsupportedMedia
from restore.video.streams import (
    EncodeConfig,
    OutputLayout,
    Route,
    StreamNote,
    apply_display_matrix,
    open_output,
)

#: A packet on the merged timeline: (seconds, order, what to mux).
_Timed = tuple[Fraction, int, "av.Packet | None", "Route | None"]


def join_segments(
    src: Path, segments: Sequence[Path], dst: Path, config: EncodeConfig
) -> tuple[list[StreamNote], list[str]]:
    """Write ``dst``: the video of ``segments`` (in order) with the other streams, chapters
    and metadata of ``src``. Returns (the streams' notes, warnings).

    Raises:
        UnsupportedMedia: ``src`` or a segment cannot be read.
        EncodeError: the segments' video cannot be copied into one stream, or ``dst``
            cannot be written.
    """
    if not segments:
        raise EncodeError("no segments to join")
    try:
        inp = av.open(str(src))
        first = av.open(str(segments[0]))
    except (av.FFmpegError, OSError) as e:
        raise UnsupportedMedia(f"cannot read {src.name} or its first segment: {e}") from e
    try:
        video_in = next(s for s in inp.streams.video if not _is_cover(s))
        template = first.streams.video[0]
        try:
            layout = open_output(dst, inp, video_in, config, video_from=template)
        except av.FFmpegError as e:
            raise EncodeError(f"cannot create {dst.name}: {e}") from e
        dead: dict[int, str] = {}
        try:
            _display_matrix(src, layout)
            extradata = template.codec_context.extradata
            merged = heapq.merge(
                _video_packets(segments, extradata), _other_packets(inp, layout), key=_key
            )
            for _, _, packet, route in merged:
                _mux(layout, packet, route, dead)
            for route in layout.routes.values():
                if route.reencode:  # flush the audio decoder, then the encoder
                    _flush(layout, inp.streams[route.note.index], route, dead)
        finally:
            try:
                layout.container.close()
            except av.FFmpegError as e:
                raise EncodeError(f"cannot finish {dst.name}: {e}") from e
    finally:
        first.close()
        inp.close()
    warnings = layout.warnings + [
        f"stream #{index} could not be written and was cut short: {err}"
        for index, err in dead.items()
    ]
    return layout.notes, warnings


def _is_cover(s: av.stream.Stream) -> bool:
    return bool(s.disposition & av.stream.Disposition.attached_pic)


def _key(item: _Timed) -> tuple[Fraction, int]:
    return item[0], item[1]


def _display_matrix(src: Path, layout: OutputLayout) -> None:
    """The source's display matrix (rotation) on the output, from its first frame (read
    through a container of its own: seeking back would lose the other streams' first
    packets in some formats)."""
    try:
        with av.open(str(src)) as inp:
            video_in = next(s for s in inp.streams.video if not _is_cover(s))
            frame = next(inp.decode(video_in))
    except (StopIteration, av.FFmpegError, OSError):
        return
    apply_display_matrix(layout.video, frame)


def _video_packets(segments: Sequence[Path], extradata: bytes | None) -> Iterator[_Timed]:
    for path in segments:
        try:
            c = av.open(str(path))
        except (av.FFmpegError, OSError) as e:
            raise UnsupportedMedia(f"cannot read segment {path.name}: {e}") from e
        with c:
            s = c.streams.video[0]
            if s.codec_context.extradata != extradata:
                raise EncodeError(
                    f"segment {path.name} was encoded with other settings than the first"
                )
            for p in c.demux(s):
                if p.size and p.dts is not None and p.time_base is not None:
                    yield p.dts * p.time_base, 0, p, None


def _other_packets(inp: InputContainer, layout: OutputLayout) -> Iterator[_Timed]:
    """The source's other streams, in demux order (re-encoded audio as decoded frames)."""
    wanted = [inp.streams[i] for i in layout.routes]
    if not wanted:
        return
    for p in inp.demux(wanted):
        route = layout.routes[p.stream.index]
        if not p.size:
            continue
        ts = p.dts if p.dts is not None else p.pts
        if ts is None or p.time_base is None:
            continue  # untimed: left out, as the local engine does
        yield ts * p.time_base, 1, p, route


def _mux(
    layout: OutputLayout, packet: av.Packet | None, route: Route | None, dead: dict[int, str]
) -> None:
    out = layout.container
    if route is None:  # a video packet of a segment
        assert packet is not None
        packet.stream = layout.video
        try:
            out.mux(packet)
        except av.FFmpegError as e:
            raise EncodeError(f"joining the segments: {e}") from e
        return
    index = route.note.index
    if index in dead:
        return
    assert packet is not None
    try:
        if route.reencode:
            assert isinstance(route.out, AudioStream)
            for f in packet.decode():
                assert isinstance(f, av.AudioFrame)
                out.mux(route.out.encode(f))
        else:
            packet.stream = route.out
            out.mux(packet)
    except av.FFmpegError as e:
        dead[index] = str(e)


def _flush(
    layout: OutputLayout, stream: av.stream.Stream, route: Route, dead: dict[int, str]
) -> None:
    if route.note.index in dead:
        return
    assert isinstance(route.out, AudioStream) and isinstance(stream, AudioStream)
    try:
        for f in stream.decode(None):
            layout.container.mux(route.out.encode(f))
        layout.container.mux(route.out.encode(None))
    except av.FFmpegError as e:
        dead[route.note.index] = str(e)

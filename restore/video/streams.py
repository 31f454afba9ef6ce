"""Laying out the output container: the colorized video, every other stream, the metadata."""

from __future__ import annotations

import io
import logging
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.stream import Stream
from av.video.stream import VideoStream

from restore.errors import EncodeError
from restore.video.frames import AVCOL_BT709, AVCOL_RANGE_MPEG, encoded_size

log = logging.getLogger(__name__)

DEFAULT_CODEC = "libx264"
CRF_CODECS = frozenset({"libx264", "libx265", "libvpx", "libvpx-vp9", "libsvtav1", "libaom-av1"})
LOSSLESS_CODECS = frozenset({"ffv1", "ffvhuff", "huffyuv", "utvideo", "magicyuv", "png", "qtrle"})
PRESET_CODECS = frozenset({"libx264", "libx265"})
FFMPEG_QP2LAMBDA = 118
#: Containers that store no presentation timestamps: B-frames would come back mis-stamped.
NO_PTS_FORMATS = frozenset({"avi"})

# Tags a muxer writes itself (or statistics of the old file): carrying them over would lie.
_GENERATED_TAGS = frozenset(
    {"encoder", "major_brand", "minor_version", "compatible_brands", "duration", "bps",
     "number_of_frames", "number_of_bytes", "_statistics_tags", "_statistics_writing_app",
     "_statistics_writing_date_utc"}
)  # fmt: skip
_IDENTITY_MATRIX = (65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30)


@dataclass(frozen=True)
class EncodeConfig:
    """How the colorized video is encoded. Built once by the CLI."""

    codec: str | None = None  # None: libx264, or the container's own codec if it cannot hold H.264
    crf: int = 18  # constant quality; 18 is visually lossless for x264
    preset: str = "veryfast"  # x264/x265 speed preset
    pix_fmt: str = "yuv420p"  # plays everywhere; odd sizes are padded by one pixel
    threads: int = 0  # codec threads (decoder and encoder); 0 = FFmpeg's choice


@dataclass
class StreamNote:
    """What happened to one input stream, for the report."""

    index: int
    type: str
    codec: str | None
    action: str  # colorized | copied | re-encoded | dropped
    language: str | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"index": self.index, "type": self.type, "codec": self.codec, "action": self.action}
        if self.language:
            d["language"] = self.language
        if self.detail:
            d["detail"] = self.detail
        return d


@dataclass
class Route:
    """Where packets of one non-video input stream go."""

    out: Stream
    reencode: bool  # decode and encode (audio the output container cannot hold as it is)
    note: StreamNote


@dataclass
class OutputLayout:
    """The opened output container and how every input stream reaches it."""

    container: OutputContainer
    video: VideoStream
    time_base: Fraction  # of the encoded frames' pts
    size: tuple[int, int]  # (width, height) encoded
    pix_fmt: str
    routes: dict[int, Route]  # input stream index -> route (video and dropped streams absent)
    notes: list[StreamNote]
    warnings: list[str] = field(default_factory=list)


def carried_tags(tags: dict[str, str]) -> dict[str, str]:
    """Metadata worth carrying to the new file (title, language, creation_time, ...)."""
    out = {}
    for k, v in tags.items():
        low = k.lower()
        if low in _GENERATED_TAGS or low.startswith(("duration-", "bps-", "number_of_")):
            continue
        out[k] = v
    return out


def open_output(
    path: Path,
    inp: InputContainer,
    video_in: VideoStream,
    config: EncodeConfig,
    *,
    video_only: bool = False,
    video_from: VideoStream | None = None,
) -> OutputLayout:
    """Create the output container with every stream configured; nothing is written yet.

    ``video_only``: no other stream, no chapters or metadata (a segment of the Ray engine).
    ``video_from``: the video is copied from this stream (segments being joined) instead
    of being encoded.

    The header is written by the first mux, so the caller can still set the display matrix
    (known only from the first decoded frame) with :func:`apply_display_matrix`.

    Raises:
        EncodeError: the video codec is unknown or the container cannot hold it.
    """
    out = av.open(str(path), "w")
    try:
        return _layout(out, inp, video_in, config, video_only, video_from)
    except BaseException:
        out.close()
        raise


def _layout(
    out: OutputContainer,
    inp: InputContainer,
    video_in: VideoStream,
    config: EncodeConfig,
    video_only: bool = False,
    video_from: VideoStream | None = None,
) -> OutputLayout:
    warnings: list[str] = []
    if video_from is None:
        video, size, pix_fmt = _add_video(out, video_in, config, warnings)
    else:
        video = out.add_stream_from_template(video_from)
        video.time_base = video_from.time_base
        video.disposition = video_in.disposition
        video.metadata.update(carried_tags(dict(video_in.metadata)))
        cc = video_from.codec_context
        size, pix_fmt = (cc.width, cc.height), cc.pix_fmt or config.pix_fmt
    encoder = video.codec_context.name if video_from is None else video_from.codec_context.name
    notes = [
        StreamNote(
            video_in.index,
            "video",
            _codec_name(video_in),
            "colorized",
            video_in.metadata.get("language"),
            f"{encoder} {pix_fmt}",
        )
    ]
    time_base = (video.codec_context.time_base if video_from is None else video.time_base) or (
        Fraction(1, 90000)
    )
    if video_only:
        return OutputLayout(out, video, time_base, size, pix_fmt, {}, notes, warnings)
    out.metadata.update(carried_tags(dict(inp.metadata)))
    routes: dict[int, Route] = {}
    for s in inp.streams:
        if s is video_in:
            continue
        route = _route(out, s, warnings)
        if isinstance(route, Route):
            routes[s.index] = route
            notes.append(route.note)
        else:
            notes.append(route)
    try:
        chapters = inp.chapters()
        if chapters:
            out.set_chapters(chapters)
    except (av.FFmpegError, ValueError, TypeError) as e:  # chapters are optional per format
        warnings.append(f"chapters not carried over: {e}")
    notes.sort(key=lambda n: n.index)
    return OutputLayout(out, video, time_base, size, pix_fmt, routes, notes, warnings)


def _codec_name(s: Stream) -> str | None:
    """The codec's canonical name ("mp3", not the decoder's "mp3float")."""
    return s.codec_context.codec.canonical_name if s.codec_context is not None else None


def _add_video(
    out: OutputContainer, src: VideoStream, config: EncodeConfig, warnings: list[str]
) -> tuple[VideoStream, tuple[int, int], str]:
    rate = src.average_rate or src.guessed_rate or src.base_rate or Fraction(25)
    names = [config.codec] if config.codec else [DEFAULT_CODEC, out.default_video_codec]
    stream: VideoStream | None = None
    errors = []
    for tried, name in enumerate(names):
        try:
            codec = av.Codec(name, "w")
            stream = out.add_stream(codec.name, rate=rate)  # type: ignore[assignment]
        except (ValueError, av.FFmpegError) as e:
            errors.append(str(e))
            continue
        if tried:
            warnings.append(
                f"{out.format.name} cannot hold {names[0]}; video encoded with {codec.name}"
            )
        break
    if stream is None:
        raise EncodeError(f"cannot encode video into {out.format.name}: {'; '.join(errors)}")
    cc = stream.codec_context
    pix_fmt = config.pix_fmt
    supported = [f.name for f in (cc.codec.video_formats or [])]
    if supported and pix_fmt not in supported:
        pix_fmt = supported[0]
    width, height = src.codec_context.width, src.codec_context.height
    size = encoded_size(width, height, pix_fmt)
    if size != (width, height):
        warnings.append(
            f"{width}x{height} cannot be encoded in {pix_fmt}; padded to "
            f"{size[0]}x{size[1]} by repeating the last column/row"
        )
    stream.width, stream.height = size
    stream.pix_fmt = pix_fmt
    # Every frame keeps its input pts in the input's time base, except in AVI, which has no
    # pts: there a frame's time is its index, so the time base is one frame.
    time_base = src.time_base or Fraction(1, 90000)
    if out.format.name in NO_PTS_FORMATS:
        time_base = 1 / Fraction(rate)
    stream.time_base = time_base
    cc.time_base = time_base
    sar = src.codec_context.sample_aspect_ratio
    if sar:
        cc.sample_aspect_ratio = sar
    if not av.VideoFormat(pix_fmt).is_rgb:
        cc.color_range = AVCOL_RANGE_MPEG
        cc.colorspace = AVCOL_BT709
        cc.color_primaries = AVCOL_BT709
        cc.color_trc = AVCOL_BT709
    if config.threads:
        cc.thread_count = config.threads
    if out.format.name in NO_PTS_FORMATS:
        cc.max_b_frames = 0
    stream.options.update(_quality_options(cc.name, config, warnings))
    stream.disposition = src.disposition
    stream.metadata.update(carried_tags(dict(src.metadata)))
    return stream, size, pix_fmt


def _quality_options(codec: str, config: EncodeConfig, warnings: list[str]) -> dict[str, str]:
    if codec in CRF_CODECS:
        opts = {"crf": str(config.crf)}
        if codec in PRESET_CODECS:
            opts["preset"] = config.preset
        if codec.startswith("libvpx"):
            opts["b"] = "0"  # constant quality, no bitrate cap
        return opts
    if codec in LOSSLESS_CODECS:
        return {}
    # Codecs without CRF (mpeg4, mpeg2video, ...): a fixed quantiser of similar quality.
    q = max(1, min(31, round(config.crf / 6)))
    warnings.append(f"{codec} has no CRF; encoded with fixed quantiser q={q}")
    return {"flags": "+qscale", "global_quality": str(q * FFMPEG_QP2LAMBDA)}


def _route(out: OutputContainer, s: Stream, warnings: list[str]) -> Route | StreamNote:
    """Copy the stream, else re-encode it (audio), else leave it out with a warning."""
    lang = s.metadata.get("language")
    name = _codec_name(s)
    if s.type == "video" and not s.disposition & av.stream.Disposition.attached_pic:
        why = "only the first video stream is colorized"
        warnings.append(f"video stream #{s.index} ({name}) left out: {why}")
        return StreamNote(s.index, s.type, name, "dropped", lang, why)
    if _copyable(out.format.name, s):
        o = out.add_stream_from_template(s)
        o.metadata.update(carried_tags(dict(s.metadata)))
        o.disposition = s.disposition
        return Route(o, False, StreamNote(s.index, s.type, name, "copied", lang))
    if isinstance(s, AudioStream):
        audio = _audio_encoder(out, s)
        if audio is not None:
            audio.metadata.update(carried_tags(dict(s.metadata)))
            audio.disposition = s.disposition
            enc = audio.codec_context.name
            warnings.append(
                f"audio stream #{s.index} ({name}) cannot be copied into "
                f"{out.format.name}; re-encoded as {enc}"
            )
            return Route(audio, True, StreamNote(s.index, s.type, name, "re-encoded", lang, enc))
    why = f"{out.format.name} cannot hold it"
    warnings.append(f"{s.type} stream #{s.index} ({name}) left out: {why}")
    return StreamNote(s.index, s.type, name, "dropped", lang, why)


def _copyable(format_name: str, s: Stream) -> bool:
    """Can packets of ``s`` be copied into this format? Tried on a throw-away in-memory file."""
    cover_art = s.type == "video" and bool(s.disposition & av.stream.Disposition.attached_pic)
    if s.type not in ("audio", "subtitle", "data", "attachment") and not cover_art:
        return False
    try:
        with av.open(io.BytesIO(), "w", format=format_name) as probe:
            probe.add_stream_from_template(s)
            probe.start_encoding()
        return True
    except (ValueError, av.FFmpegError, NotImplementedError) as e:
        log.debug("stream #%d cannot be copied into %s: %s", s.index, format_name, e)
        return False


def _audio_encoder(out: OutputContainer, s: AudioStream) -> AudioStream | None:
    """An audio encoder the container accepts (its own default first), keeping the layout."""
    cc = s.codec_context
    for name in dict.fromkeys((out.default_audio_codec, "aac")):
        try:
            codec = av.Codec(name, "w")
        except (ValueError, av.FFmpegError):
            continue
        rate = cc.sample_rate
        rates = codec.audio_rates
        if rates and rate not in rates:
            rate = 48000 if 48000 in rates else max(rates)
        try:  # the muxer may refuse the pairing only when the header is written
            with av.open(io.BytesIO(), "w", format=out.format.name) as probe:
                # an audio codec: the stub types a name given as str as any kind of stream
                trial: AudioStream = probe.add_stream(codec.name, rate=rate)  # type: ignore[assignment]
                trial.codec_context.layout = cc.layout
                probe.start_encoding()
            o: AudioStream = out.add_stream(codec.name, rate=rate)  # type: ignore[assignment]
        except (ValueError, av.FFmpegError, NotImplementedError):
            continue
        o.codec_context.layout = cc.layout
        return o
    return None


def display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    """The frame's display matrix (rotation/flip for players), or None if it has none."""
    sd = frame.side_data.get("DISPLAYMATRIX")
    if sd is None:
        return None
    # PyAV's stub types side_data as a TypedDict of motion vectors (a SideDataContainer)
    raw = bytes(sd)  # type: ignore[call-overload]
    if len(raw) != 36:
        return None
    m = struct.unpack("=9i", raw)  # native int32, as FFmpeg stores it
    return None if m == _IDENTITY_MATRIX else m


def apply_display_matrix(stream: VideoStream, frame: av.VideoFrame) -> int | None:
    """Copy the first frame's display matrix to the output stream; returns the rotation."""
    m = display_matrix(frame)
    if m is None:
        return None
    stream.set_display_matrix(list(m))
    return frame.rotation

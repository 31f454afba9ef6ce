"""What flows through the film pipeline (:mod:`restore.video.pipeline`): frames, batches, the
window a segment covers, the result, and the hooks a caller may plug in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import av
import numpy as np

from restore.video.streams import Route, StreamNote


@dataclass
class FrameItem:
    """One input frame on its way through the pipeline."""

    # The decoded input frame, kept for the first frame only (its side data, the display
    # matrix, configures the output stream); later frames let go of their decoder buffer
    # as soon as their L is computed.
    frame: av.VideoFrame | None
    pts: int  # output pts in the input stream's time base (the input's, made strictly increasing)
    duration: int  # in the same time base; 0 if unknown
    lightness: np.ndarray  # (H, W) float32 L in [0, 100], full resolution
    # (h, w, 2) float32 ab at the generator's render size, set by the colorize stage; the
    # writer upsamples it while merging with the full-resolution L.
    ab: np.ndarray | None = None
    # (h, w) float32 L at render size, what the generator saw; set with ``ab`` (the temporal
    # stage compares it between frames).
    small: np.ndarray | None = None


#: A non-video stream's payload in demux order: a packet to copy, an audio frame to re-encode,
#: or None to flush that stream's encoder.
Passenger = tuple[Route, "av.Packet | av.AudioFrame | None"]


@dataclass
class Batch:
    """Up to ``batch_size`` consecutive frames plus the other streams' packets demuxed with them."""

    items: list[FrameItem] = field(default_factory=list)
    passengers: list[Passenger] = field(default_factory=list)


#: A stage between colorize and encode (e.g. flicker reduction). It receives the colorized
#: batches in order and must yield every batch, in order, with ``ab`` set (it may hold a few
#: back to look ahead, and replace ``ab``).
TemporalStage = Callable[[Iterator[Batch]], Iterator[Batch]]


class FrameProgress(Protocol):
    """Progress callbacks, called from the caller's thread."""

    def start(self, total_frames: int | None) -> None: ...

    def advance(self, frames: int) -> None: ...


@dataclass(frozen=True)
class Window:
    """A stretch of a film colorized on its own (one segment of the Ray engine).

    Decoding starts at the keyframe at or before ``seek``; frames before ``start`` warm the
    repair and temporal stages up and are not written, nor are the ``lookahead`` frames
    decoded past ``end`` for the stages that look ahead. Only the video is written.
    """

    start: int | None  # first pts written (input stream time base); None: the film's start
    end: int | None  # first pts not written; None: the film's end
    seek: int | None = None  # where decoding starts; None: the film's start
    lookahead: int = 16  # more than any stage looks ahead (deflicker radius, dirt's one frame)

    def keeps(self, pts: int) -> bool:
        return (self.start is None or pts >= self.start) and (self.end is None or pts < self.end)


@dataclass
class VideoResult:
    """What :func:`colorize_video` wrote."""

    frames: int
    duration: float | None  # seconds of video written
    size: tuple[int, int]  # (width, height) encoded
    streams: list[StreamNote]
    warnings: list[str]
    repairs: dict[str, dict[str, float | int]] = field(default_factory=dict)  # per stage run

    def report(self) -> dict[str, Any]:
        """Per-file fields for the job report."""
        fields: dict[str, Any] = {
            "frames": self.frames,
            "duration": round(self.duration, 6) if self.duration is not None else None,
            "size": list(self.size),
            "streams": [n.to_dict() for n in self.streams],
        }
        return {**fields, **self.repairs}

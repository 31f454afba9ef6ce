"""Colorizing one film, streaming: demux -> decode -> batch -> colorize -> encode -> mux.

Three threads with bounded queues overlap the work (PyAV codecs and torch release the GIL):

    reader:  demux, decode, L of each frame, batches   ──q_in──►
    caller:  generator at render size (``workers`` batches in flight, each in a pool
             thread, handed on in order), optional temporal stage ──q_out──►
    writer:  merge L+ab, encode with the input pts, mux; other streams copied in demux order

At most ``2 * queue_depth + 2 + workers`` batches exist at once, whatever the length of the
film (``workers`` from the colorizer's EngineConfig).
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol, TypeVar

import av
import numpy as np
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.video.stream import VideoStream

from restore import color
from restore.buffers import ArrayPool
from restore.engine import Colorizer, render_shape
from restore.errors import EncodeError, UnsupportedMedia
from restore.runtime import release_free_memory
from restore.video.deflicker import Deflicker, DeflickerConfig
from restore.video.dirt import DirtConfig, DirtRemover
from restore.video.frames import frame_lightness, rgb_to_frame
from restore.video.items import (
    Batch,
    FrameItem,
    FrameProgress,
    TemporalStage,
    VideoResult,
    Window,
)
from restore.video.probe import expected_frames, pick_video, stream_span
from restore.video.streams import (
    NO_PTS_FORMATS,
    EncodeConfig,
    OutputLayout,
    Route,
    apply_display_matrix,
    open_output,
)

log = logging.getLogger(__name__)

#: Non-video packets per batch once video is flowing (bounds memory on audio-only stretches).
MAX_PASSENGERS = 512
#: Non-video packets tolerated before the first video frame decodes.
MAX_PACKETS_BEFORE_VIDEO = 20_000
#: Frames between two returns of free heap pages to the system (runtime.release_free_memory).
RELEASE_EVERY = 100
#: Frames over which timestamps are re-sorted. Decoders return frames in display order, but
#: some files (AVI with packed B-frames) attach the timestamps in decode order; the set of
#: timestamps is right, their order is not. Well-formed input is unchanged by the sort.
REORDER_WINDOW = 8


#: A generator call in flight: (L, ab) at render size per frame (Colorizer.render).
_Job = Future[tuple[list[np.ndarray], list[np.ndarray]]]


T = TypeVar("T")


class Repair(Protocol[T]):
    """A repair of the frames' lightness (restore.video.deflicker, restore.video.dirt)."""

    @property
    def stats(self) -> Any: ...

    def push(self, item: T) -> list[T]: ...

    def flush(self) -> list[T]: ...


def _lightness(item: FrameItem) -> np.ndarray:
    return item.lightness


def colorize_video(
    src: Path,
    dst: Path,
    colorizer: Colorizer,
    config: EncodeConfig | None = None,
    *,
    progress: FrameProgress | None = None,
    stage: TemporalStage | None = None,
    deflicker: DeflickerConfig | None = None,
    dirt: DirtConfig | None = None,
    queue_depth: int = 1,
    window: Window | None = None,
    colorize: bool = True,
) -> VideoResult:
    """Colorize the first video stream of ``src`` into ``dst``, carrying every other stream.

    Each output frame keeps its input frame's pts (in the input's time base), so frame count,
    variable frame rate and duration survive. Audio, subtitle and data packets are copied
    unchanged; audio the output container cannot hold is re-encoded (with a warning).

    With ``deflicker``, each frame's lightness is matched to the tone of its neighbours
    (:mod:`restore.video.deflicker`), with ``dirt`` single-frame dirt is filled from them
    (:mod:`restore.video.dirt`), before it is colorized; the output carries that lightness.

    With ``window``, only that stretch of the video is written, and no other stream. Without
    ``colorize``, the generator is not run and the frames are written in black and white
    (after the repairs).

    ``dst`` is written directly (callers wrap it in :func:`restore.jobs.atomic_output`); on any
    exception, including KeyboardInterrupt, the worker threads are stopped before it propagates.

    Raises:
        UnsupportedMedia: ``src`` cannot be opened, has no video stream, or no frame decodes.
        EncodeError: the output cannot be encoded or written.
    """
    config = config or EncodeConfig()
    try:
        inp = av.open(str(src))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise UnsupportedMedia(f"cannot read {src.name}: {e}") from e
    try:
        video_in = pick_video(inp, src)
        video_in.thread_type = "AUTO"
        if config.threads:
            video_in.codec_context.thread_count = config.threads
        try:
            layout = open_output(dst, inp, video_in, config, video_only=window is not None)
        except av.FFmpegError as e:
            raise EncodeError(f"cannot create {dst.name}: {e}") from e
        if window is not None and window.seek is not None:
            try:
                inp.seek(window.seek, stream=video_in, backward=True)
            except av.FFmpegError as e:
                raise UnsupportedMedia(f"cannot seek in {src.name}: {e}") from e
        run = _Run(inp, video_in, layout, colorizer, stage, queue_depth, deflicker, dirt, window)
        run.colorize = colorize
        if progress is not None:
            progress.start(expected_frames(inp, video_in))
        ok = False
        try:
            run.execute(progress)
            ok = True
        finally:
            try:
                layout.container.close()  # writes the trailer
            except av.FFmpegError as e:
                if ok:
                    raise EncodeError(f"cannot finish {dst.name}: {e}") from e
        warnings = layout.warnings + run.warnings(inp)
    finally:
        inp.close()
    return VideoResult(
        run.frames_written,
        run.duration(),
        layout.size,
        layout.notes,
        warnings,
        {name: r.stats.to_dict() for name, r in run.repairs},
    )


def through_repairs(repairs: Sequence[Repair[T]], items: list[T], flush: bool = False) -> list[T]:
    """``items`` through each repair stage in turn (each may hold frames back); with
    ``flush``, everything they hold too, at the end of the film."""
    for repair in repairs:
        out = [done for it in items for done in repair.push(it)]
        items = out + repair.flush() if flush else out
    return items


class _Stopped(Exception):
    """A worker noticed the stop flag (another thread failed or the run was interrupted)."""


_END = object()


class _Run:
    """One pass over a file: owns the threads and their bookkeeping."""

    def __init__(
        self,
        inp: InputContainer,
        video_in: VideoStream,
        layout: OutputLayout,
        colorizer: Colorizer,
        stage: TemporalStage | None,
        queue_depth: int,
        deflicker: DeflickerConfig | None = None,
        dirt: DirtConfig | None = None,
        window: Window | None = None,
    ) -> None:
        self.inp = inp
        self.window = window
        self.colorize = True  # False: neutral ab, the generator is not run
        self.past_end = 0  # frames decoded at or after window.end
        # Repairs of the lightness, in order; they run in the reader thread, which sees the
        # frames in display order.
        self.repairs: list[tuple[str, Repair[FrameItem]]] = []
        if deflicker is not None:
            self.repairs.append(("deflicker", Deflicker(deflicker, _lightness)))
        if dirt is not None:
            self.repairs.append(("dirt", DirtRemover(dirt, _lightness)))
        self.video_in = video_in
        self.layout = layout
        self.colorizer = colorizer
        self.stage = stage
        self.batch_size = max(1, colorizer.config.batch_size)
        self.q_in: queue.Queue[Any] = queue.Queue(maxsize=max(1, queue_depth))
        self.q_out: queue.Queue[Any] = queue.Queue(maxsize=max(1, queue_depth))
        # Each frame's arrays are made in one thread and freed in another: recycled, so once
        # the queues have filled they are no longer allocated at all (see restore.buffers).
        self.pool = ArrayPool()
        self.rgb: np.ndarray | None = None  # the writer's merge buffer
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        tb = video_in.time_base or Fraction(1, 90000)
        self.time_base = tb
        rate = video_in.average_rate or video_in.guessed_rate or Fraction(25)
        self.default_step = max(1, round(1 / (rate * tb)))
        # reader bookkeeping
        self.frames_decoded = 0
        self.decode_errors = 0
        self.first_decode_error: str | None = None
        self.demux_error: str | None = None
        self.untimed_frames = 0
        self.nudged_frames = 0
        self.untimed_packets = 0
        self.last_pts: int | None = None
        self.last_stamp: int | None = None
        # AVI keeps no pts: a frame's time is its index. FFmpeg reads the first frame of some
        # AVIs one tick late; AVI to AVI, frames keep their index (the first packet's dts).
        self.index_timed = (
            inp.format.name in NO_PTS_FORMATS and layout.container.format.name in NO_PTS_FORMATS
        )
        self.first_packet_dts: int | None = None
        self.pts_shift: int | None = None
        self.first_pts: int | None = None
        # writer bookkeeping
        self.first_written_pts: int | None = None
        self.frames_written = 0
        self.last_written_pts: int | None = None
        self.end_pts: int | None = None
        self.dead_routes: dict[int, str] = {}
        self.resized_frames = 0

    # -- orchestration ---------------------------------------------------------------------

    def execute(self, progress: FrameProgress | None) -> None:
        reader = threading.Thread(
            target=self._guard, args=(self._read,), name="restore-read", daemon=True
        )
        writer = threading.Thread(
            target=self._guard, args=(self._write,), name="restore-write", daemon=True
        )
        reader.start()
        writer.start()
        try:
            batches = self._colorized()
            if self.stage is not None:
                batches = self.stage(batches)
            passed = 0
            for batch in batches:
                self._put(self.q_out, batch)
                if progress is not None and batch.items:
                    progress.advance(len(batch.items))
                passed += len(batch.items)
                if passed >= RELEASE_EVERY:
                    passed = 0
                    release_free_memory()
            self._put(self.q_out, _END)
        except _Stopped:
            pass  # a worker failed: its error is raised below
        except BaseException:
            self.stop.set()  # interrupted or the model failed: stop the workers, then propagate
            raise
        finally:
            reader.join()
            writer.join()
        if self.errors:
            raise self.errors[0]

    def _guard(self, work: Callable[[], None]) -> None:
        try:
            work()
        except _Stopped:
            pass
        except BaseException as e:  # handed to the caller's thread
            self.errors.append(e)
            self.stop.set()

    def _put(self, q: queue.Queue[Any], item: object) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _get(self, q: queue.Queue[Any]) -> Any:
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    raise _Stopped from None

    # -- caller's thread: the generator ------------------------------------------------------

    def _colorized(self) -> Iterator[Batch]:
        # ``workers`` batches in flight at once, handed on in order.
        workers = max(1, self.colorizer.config.workers)
        calls = ThreadPoolExecutor(workers, thread_name_prefix="restore-model")
        pending: deque[tuple[Batch, _Job | None]] = deque()
        try:
            while True:
                batch = self._get(self.q_in)
                if batch is _END:
                    break
                job = None
                if batch.items and not self.colorize:
                    for it in batch.items:
                        h, w = render_shape(it.lightness.shape[0], it.lightness.shape[1], 64)
                        it.ab = np.zeros((h, w, 2), np.float32)
                elif batch.items:
                    lightness = [it.lightness for it in batch.items]
                    job = calls.submit(self.colorizer.render, lightness, self.pool)
                pending.append((batch, job))
                if len(pending) >= workers:
                    yield self._with_ab(*pending.popleft())
            while pending:
                yield self._with_ab(*pending.popleft())
        finally:
            calls.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def _with_ab(batch: Batch, job: _Job | None) -> Batch:
        if job is not None:
            small, ab = job.result()
            for it, s, a in zip(batch.items, small, ab, strict=True):
                it.small, it.ab = s, a
        return batch

    # -- reader thread ----------------------------------------------------------------------

    def _read(self) -> None:
        vs = self.video_in
        batch = Batch()
        started = False  # nothing is handed on before the first frame (it carries the rotation)
        reencoded = [r for r in self.layout.routes.values() if r.reencode]

        def emit() -> None:
            nonlocal batch
            self._put(self.q_in, batch)
            batch = Batch()

        pending: deque[av.VideoFrame] = deque()  # decoded, waiting for their timestamp
        stamps: list[int] = []  # heap of the pending frames' timestamps

        def add(items: list[FrameItem]) -> None:
            nonlocal started
            for item in items:
                batch.items.append(item)
                started = True
                if len(batch.items) >= self.batch_size:
                    emit()

        def take(frames: list[av.VideoFrame], drain: bool = False) -> None:
            for frame in frames:
                pending.append(frame)
                heapq.heappush(stamps, self._stamp(frame))
            while pending and (drain or len(pending) > REORDER_WINDOW):
                add(self._repaired([self._item(pending.popleft(), heapq.heappop(stamps))]))
            if drain:
                add(self._repaired([], flush=True))

        try:
            for packet in self.inp.demux():
                if self.stop.is_set():
                    raise _Stopped
                if self.window is not None and self.past_end >= self.window.lookahead:
                    break
                if packet.stream.index == vs.index:
                    if packet.size:
                        if self.first_packet_dts is None:
                            self.first_packet_dts = packet.dts
                        take(self._decode_video(packet))
                    continue
                route = self.layout.routes.get(packet.stream.index)
                if route is None or not packet.size:
                    continue  # a dropped stream, or the demuxer's empty flush packet
                if packet.dts is None and packet.pts is None:
                    self.untimed_packets += 1
                    continue
                if route.reencode:
                    batch.passengers += [(route, f) for f in self._decode_audio(packet)]
                else:
                    batch.passengers.append((route, packet))
                if started and len(batch.passengers) >= MAX_PASSENGERS:
                    emit()
                elif not started and len(batch.passengers) > MAX_PACKETS_BEFORE_VIDEO:
                    raise UnsupportedMedia("no video frame decodes (only other streams' packets)")
        except av.FFmpegError as e:  # truncated or damaged container: keep what decoded
            self.demux_error = str(e)
        take(self._decode_video(None), drain=True)
        for route in reencoded:
            batch.passengers += [(route, f) for f in self._decode_audio(None, route)]
            batch.passengers.append((route, None))
        if not started:
            raise UnsupportedMedia(
                "no video frame could be decoded"
                + (f": {self.first_decode_error}" if self.first_decode_error else "")
            )
        if batch.items or batch.passengers:
            emit()
        self._put(self.q_in, _END)

    def _repaired(self, items: list[FrameItem], flush: bool = False) -> list[FrameItem]:
        """``items`` through the repair stages (each may hold frames back); with ``flush``,
        everything they hold, at the end of the film."""
        return through_repairs([r for _, r in self.repairs], items, flush)

    def _decode_video(self, packet: av.Packet | None) -> list[av.VideoFrame]:
        try:
            return self.video_in.decode(packet)
        except av.EOFError:
            return []
        except av.FFmpegError as e:  # a damaged packet: skip it, keep going
            self.decode_errors += 1
            self.first_decode_error = self.first_decode_error or str(e)
            return []

    def _decode_audio(self, packet: av.Packet | None, route: Route | None = None) -> list[Any]:
        """Audio frames to re-encode; ``packet=None`` flushes the decoder of ``route``'s stream."""
        try:
            if packet is None:
                assert route is not None
                stream = self.inp.streams[route.note.index]
                assert isinstance(stream, AudioStream)  # only audio is re-encoded
                return stream.decode(None)
            return packet.decode()
        except av.FFmpegError as e:
            log.debug("audio packet not decodable: %s", e)
            return []

    def _stamp(self, frame: av.VideoFrame) -> int:
        """The frame's pts in the stream time base (its dts, or the next tick, if it has none)."""
        ts = frame.pts if frame.pts is not None else frame.dts
        if ts is None:
            self.untimed_frames += 1
            base = self.last_stamp if self.last_stamp is not None else -self.default_step
            ts = base + (int(frame.duration or 0) or self.default_step)
        elif frame.time_base and frame.time_base != self.time_base:
            ts = round(ts * frame.time_base / self.time_base)
        self.last_stamp = ts
        return ts

    def _item(self, frame: av.VideoFrame, pts: int) -> FrameItem:
        if self.pts_shift is None:
            self.pts_shift = 0
            if self.index_timed and self.first_packet_dts is not None:
                self.pts_shift = self.first_packet_dts - pts
        pts += self.pts_shift
        if self.window is not None and self.window.end is not None and pts >= self.window.end:
            self.past_end += 1
        if self.last_pts is not None and pts <= self.last_pts:
            self.nudged_frames += 1  # encoders need strictly increasing pts
            pts = self.last_pts + 1
        first = self.first_pts is None
        if first:
            self.first_pts = pts
        self.last_pts = pts
        self.frames_decoded += 1
        lightness = frame_lightness(frame, self.pool.take((frame.height, frame.width)))
        return FrameItem(frame if first else None, pts, int(frame.duration or 0), lightness)

    # -- writer thread ----------------------------------------------------------------------

    def _write(self) -> None:
        out = self.layout.container
        video = self.layout.video
        configured = False
        while True:
            batch = self._get(self.q_out)
            if batch is _END:
                break
            if not configured and batch.items:
                first = batch.items[0].frame  # the first frame's (the only one kept)
                if first is not None:
                    apply_display_matrix(video, first)  # before the header is written
                configured = True
            for route, payload in batch.passengers:
                self._pass(route, payload)
            for it in batch.items:
                if it.ab is None:
                    raise RuntimeError(
                        "a frame reached the encoder without ab (temporal stage bug)"
                    )
                if self.window is not None and not self.window.keeps(it.pts):
                    continue  # warm-up or look-ahead of a segment
                if self.first_written_pts is None:
                    self.first_written_pts = it.pts
                frame = self._encodable(it)
                try:
                    out.mux(video.encode(frame))
                except av.FFmpegError as e:
                    raise EncodeError(f"encoding frame {self.frames_written}: {e}") from e
                self.frames_written += 1
                self.end_pts = it.pts + (it.duration or self.default_step)
        try:
            out.mux(video.encode(None))
        except av.FFmpegError as e:
            raise EncodeError(f"flushing the encoder: {e}") from e

    def _encodable(self, it: FrameItem) -> av.VideoFrame:
        assert it.ab is not None
        # (H, W, 3) uint8, ab upsampled; one buffer, reused (the encoder's frame is a copy)
        shape = (*it.lightness.shape, 3)
        if self.rgb is None or self.rgb.shape != shape:
            self.rgb = np.empty(shape, np.uint8)
        rgb = color.merge_l_ab_u8(it.lightness, it.ab, out=self.rgb)
        size = self.layout.size
        if abs(rgb.shape[1] - size[0]) > 1 or abs(rgb.shape[0] - size[1]) > 1:
            self.resized_frames += 1  # the input changed resolution mid-stream
        frame = rgb_to_frame(rgb, size, self.layout.pix_fmt)
        pts, duration, tb = it.pts, it.duration, self.layout.time_base
        if tb != self.time_base:  # only into AVI from elsewhere: time is the frame index
            pts = round(pts * self.time_base / tb)
            duration = round(duration * self.time_base / tb)
            if self.last_written_pts is not None and pts <= self.last_written_pts:
                pts = self.last_written_pts + 1
            self.last_written_pts = pts
        frame.pts = pts
        frame.time_base = tb
        frame.duration = duration
        return frame

    def _pass(self, route: Route, payload: av.Packet | av.AudioFrame | None) -> None:
        index = route.note.index
        if index in self.dead_routes:
            return
        try:
            if route.reencode:  # an audio encoder, fed decoded frames (None: flush)
                assert isinstance(route.out, AudioStream) and not isinstance(payload, av.Packet)
                self.layout.container.mux(route.out.encode(payload))
            else:
                assert isinstance(payload, av.Packet)
                payload.stream = route.out
                self.layout.container.mux(payload)
        except av.FFmpegError as e:
            self.dead_routes[index] = str(e)  # reported; the video goes on

    # -- results ----------------------------------------------------------------------------

    def duration(self) -> float | None:
        if self.first_written_pts is None or self.end_pts is None:
            return None
        return float((self.end_pts - self.first_written_pts) * self.time_base)

    def warnings(self, inp: InputContainer) -> list[str]:
        out = []
        n = self.frames_decoded
        start, expected_end = stream_span(inp, self.video_in)
        got_end = None if self.end_pts is None else float(self.end_pts * self.time_base)
        if self.demux_error:
            out.append(f"decoding stopped at frame {n}: {self.demux_error}")
        elif self.window is not None and self.window.end is not None:
            pass  # a segment ends before the film does
        elif expected_end is not None and got_end is not None:
            frame_time = float(self.default_step * self.time_base)
            if expected_end - got_end > 2 * frame_time + 0.05:
                out.append(
                    f"decoding stopped at frame {n} ({got_end - (start or 0.0):.2f} s of "
                    f"{expected_end - (start or 0.0):.2f} s): input truncated or damaged"
                )
        if self.decode_errors:
            out.append(
                f"{self.decode_errors} video packet(s) could not be decoded and were "
                f"skipped (first: {self.first_decode_error})"
            )
        if self.untimed_frames:
            out.append(
                f"{self.untimed_frames} frame(s) had no timestamp; placed after the previous one"
            )
        if self.nudged_frames:
            out.append(
                f"{self.nudged_frames} frame(s) had non-increasing timestamps; moved by one tick"
            )
        if self.untimed_packets:
            out.append(
                f"{self.untimed_packets} packet(s) of other streams had no timestamp; skipped"
            )
        if self.resized_frames:
            out.append(
                f"{self.resized_frames} frame(s) changed size mid-stream; rescaled to "
                f"{self.layout.size[0]}x{self.layout.size[1]}"
            )
        for index, err in self.dead_routes.items():
            out.append(f"stream #{index} could not be written and was cut short: {err}")
        return out

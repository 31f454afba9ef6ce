"""Video colorization: streaming PyAV pipeline that keeps timestamps and every other stream."""

from restore.video.files import VIDEO_SUFFIXES, plan
from restore.video.items import Batch, FrameItem, TemporalStage, VideoResult
from restore.video.pipeline import colorize_video
from restore.video.streams import EncodeConfig, StreamNote
from restore.video.temporal import ColourStabilizer, StabilizeConfig, stabilizer

__all__ = [
    "VIDEO_SUFFIXES",
    "Batch",
    "ColourStabilizer",
    "EncodeConfig",
    "FrameItem",
    "StabilizeConfig",
    "StreamNote",
    "TemporalStage",
    "VideoResult",
    "colorize_video",
    "plan",
    "stabilizer",
]

"""Synthetic inputs: clips with an audio track, and JPEG photos (made once per run)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def _texture(width: int, height: int, seed: int) -> np.ndarray:
    """(height, width) uint8: smooth shapes plus fine grain, like a scanned print."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(30, 220, (max(2, height // 64), max(2, width // 64))).astype(np.float32)
    img = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img += 25 * np.sin(xx / 23.0) * np.cos(yy / 31.0)
    img += rng.normal(0, 6, (height, width)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_clip(
    path: Path, width: int, height: int, seconds: float, rate: int = 25, gop: int | None = None
) -> Path:
    """An H.264 (ultrafast, yuv420p) + AAC stereo clip of moving gray texture; ``gop``:
    frames between keyframes (default x264's 250)."""
    base = _texture(width + 8 * int(seconds * rate) // 4 + 64, height, 1)
    out = av.open(str(path), "w")
    options = {"preset": "ultrafast", "crf": "20", **({"g": str(gop)} if gop else {})}
    v = out.add_stream("libx264", rate=rate, options=options)
    v.width, v.height, v.pix_fmt = width, height, "yuv420p"
    v.time_base = v.codec_context.time_base = Fraction(1, rate)
    a = out.add_stream("aac", rate=48000)
    frames = int(seconds * rate)
    for i in range(frames):
        x0 = (2 * i) % (base.shape[1] - width)
        g = np.ascontiguousarray(base[:, x0 : x0 + width])
        frame = av.VideoFrame.from_ndarray(g, format="gray").reformat(format="yuv420p")
        frame.pts = i
        out.mux(v.encode(frame))
    out.mux(v.encode(None))
    t, n = 0, 1024
    while t < seconds * 48000:
        s = (0.3 * np.sin(2 * np.pi * 440 * np.arange(t, t + n) / 48000)).astype(np.float32)
        fr = av.AudioFrame.from_ndarray(
            np.stack([s, s]).reshape(1, -1), format="flt", layout="stereo"
        )
        fr.sample_rate, fr.pts = 48000, t
        out.mux(a.encode(fr))
        t += n
    out.mux(a.encode(None))
    out.close()
    return path


def write_photos(folder: Path, width: int, height: int, count: int, colour: bool = True) -> Path:
    """``count`` JPEGs (quality 92) of gray texture: 3-channel like most scans, or 1-channel."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        g = _texture(width, height, 10 + i)
        img = cv2.merge((g, g, g)) if colour else g
        cv2.imwrite(str(folder / f"scan_{i:03d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return folder

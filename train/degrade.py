"""The damage model of old prints, applied to lightness: one module for the colorizer's
old-print augmentation and for the repair stage's synthetic training damage.

An old scan is not a clean gray photograph: its tone curve is faded or crushed, it is
blurred by the lens and the print, grainy, JPEG-compressed by whoever scanned it, darker
towards the corners, and carries dust specks and scratches. Each effect is drawn with its
own probability and strength; the caller keeps the clean image's ab as the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class DamageConfig:
    """Probabilities (p_*) and strength ranges of each effect; defaults for old prints."""

    p_tone: float = 0.7  # gamma, faded blacks/whites, crushed contrast
    gamma: tuple[float, float] = (0.65, 1.5)
    fade_black: tuple[float, float] = (0.0, 25.0)  # L units the black point rises to
    fade_white: tuple[float, float] = (75.0, 100.0)  # L units the white point falls to
    p_crush: float = 0.15
    p_blur: float = 0.4
    blur_sigma: tuple[float, float] = (0.3, 1.6)  # pixels
    p_grain: float = 0.5
    grain_sigma: tuple[float, float] = (1.0, 7.0)  # L units
    p_jpeg: float = 0.3
    jpeg_quality: tuple[int, int] = (30, 90)
    p_vignette: float = 0.25
    vignette: tuple[float, float] = (0.1, 0.45)  # lightness lost in the far corners
    p_specks: float = 0.3
    specks: tuple[int, int] = (1, 40)  # per 128x128 pixels
    p_scratches: float = 0.2
    scratches: tuple[int, int] = (1, 4)
    # Cracks of the emulsion and folds: jagged, branching, 1-3 px wide, paper-white or dark.
    # Off for the colorizer's augmentation (its runs resume with the same damage); the
    # defect detector trains with them.
    p_cracks: float = 0.0
    cracks: tuple[int, int] = (1, 4)
    # A small scan enlarged (down, then up by a factor drawn here) and salt-and-pepper
    # impulses (share of pixels): off for the colorizer and the detector, whose runs resume
    # with the same damage; the cleanup network trains with them.
    p_rescale: float = 0.0
    rescale: tuple[float, float] = (1.5, 3.0)
    p_impulse: float = 0.0
    impulse: tuple[float, float] = (0.001, 0.02)


DEFAULT_DAMAGE = DamageConfig()


def damage(
    lightness: np.ndarray, rng: np.random.Generator, config: DamageConfig = DEFAULT_DAMAGE
) -> tuple[np.ndarray, np.ndarray]:
    """An old-print version of a lightness map.

    Args:
        lightness: (H, W) float32 L in [0, 100].
        rng: the source of every random choice (the result is a function of its state).
    Returns:
        The damaged (H, W) float32 L in [0, 100], and the (H, W) bool mask of the pixels
        covered by specks and scratches (what a repair stage must fill).
    """
    aged = age(lightness, rng, config)
    return aged.image, aged.mask


@dataclass(frozen=True)
class Aged:
    """An old-print version of a lightness map (:func:`age`); (H, W) arrays."""

    image: np.ndarray  # float32 L in [0, 100]: the damaged print
    mask: np.ndarray  # bool: pixels covered by specks, scratches and cracks
    # float32 L: the print with its tone and vignetting only, before blur, defects, grain
    # and compression: what restoring the detail (not the tone) should give back
    faded: np.ndarray


def age(
    lightness: np.ndarray, rng: np.random.Generator, config: DamageConfig = DEFAULT_DAMAGE
) -> Aged:
    """:func:`damage`, keeping the faded print before its detail was damaged.

    Args:
        lightness: (H, W) float32 L in [0, 100].
        rng: the source of every random choice (the same draws as :func:`damage`).
    """
    x: np.ndarray = np.array(lightness, dtype=np.float32, copy=True)
    h, w = x.shape
    mask = np.zeros((h, w), dtype=bool)
    if rng.random() < config.p_tone:
        x = _tone(x, rng, config)
    if rng.random() < config.p_vignette:
        x *= _vignette(h, w, rng.uniform(*config.vignette), rng)
    faded = x.copy()
    if rng.random() < config.p_blur:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(*config.blur_sigma))
    if config.p_rescale and rng.random() < config.p_rescale:
        x = _rescale(x, rng.uniform(*config.rescale))
    if rng.random() < config.p_specks:
        _specks(x, mask, rng, config)
    if rng.random() < config.p_scratches:
        _scratches(x, mask, rng, config)
    if config.p_cracks and rng.random() < config.p_cracks:
        _cracks(x, mask, rng, config)
    if rng.random() < config.p_grain:
        x = _grain(x, rng, rng.uniform(*config.grain_sigma))
    if config.p_impulse and rng.random() < config.p_impulse:
        _impulses(x, rng, rng.uniform(*config.impulse))
    np.clip(x, 0.0, 100.0, out=x)
    if rng.random() < config.p_jpeg:
        x = jpeg(x, int(rng.integers(*config.jpeg_quality, endpoint=True)))
    return Aged(x, mask, faded)


def _rescale(x: np.ndarray, factor: float) -> np.ndarray:
    """A scan made this many times smaller, then enlarged back (its detail lost)."""
    h, w = x.shape
    small = cv2.resize(
        x, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA
    )
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), np.float32)


def _impulses(x: np.ndarray, rng: np.random.Generator, share: float) -> None:
    """Salt and pepper: single pixels near black or white (not in the defect mask: too small
    to inpaint, they are the cleanup network's)."""
    hit = rng.random(x.shape) < share
    n = int(hit.sum())
    x[hit] = np.where(rng.random(n) < 0.5, rng.uniform(0, 10, n), rng.uniform(90, 100, n))


def _tone(x: np.ndarray, rng: np.random.Generator, c: DamageConfig) -> np.ndarray:
    t = np.clip(x / 100.0, 0.0, 1.0) ** rng.uniform(*c.gamma)
    if rng.random() < c.p_crush:  # contrast pushed until shadows and highlights clip
        k = rng.uniform(1.2, 1.8)
        t = np.clip((t - 0.5) * k + 0.5 + rng.uniform(-0.1, 0.1), 0.0, 1.0)
    lo, hi = rng.uniform(*c.fade_black), rng.uniform(*c.fade_white)
    return (lo + (hi - lo) * t).astype(np.float32)


def _vignette(h: int, w: int, strength: float, rng: np.random.Generator) -> np.ndarray:
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    yy, xx = np.ogrid[:h, :w]
    r2 = ((yy - cy) / (0.5 * h)) ** 2 + ((xx - cx) / (0.5 * w)) ** 2
    return (1.0 - strength * np.clip(r2 / 2.0, 0.0, 1.0)).astype(np.float32)


def _grain(x: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return add_grain(x, rng, sigma)[0]


def add_grain(
    x: np.ndarray, rng: np.random.Generator, sigma: float, clump: tuple[float, float] = (0.5, 1.2)
) -> tuple[np.ndarray, float]:
    """Film grain or sensor noise of strength ``sigma`` (L units) added to L.

    Half the time the noise is clumped (blurred by a radius drawn from ``clump`` pixels, then
    scaled back to unit spread), as film grain is; it is strongest in the mid-tones.

    Args:
        x: (H, W) float32 L in [0, 100].
    Returns:
        The grainy (H, W) float32 L (not clipped) and the root mean square of what was
        added (L units): the grain a measure should find.
    """
    noise: np.ndarray = rng.standard_normal(x.shape, dtype=np.float32)
    if rng.random() < 0.5:  # clumped film grain rather than sensor noise
        noise = cv2.GaussianBlur(noise, (0, 0), rng.uniform(*clump))
        noise = noise / max(float(noise.std()), 1e-6)
    # grain is strongest in the mid-tones of a print
    mid = 0.5 + 2.0 * (x / 100.0) * (1.0 - x / 100.0)
    added = sigma * mid * noise
    return x + added, float(np.sqrt(np.mean(np.square(added))))


def jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    """L (float32, [0, 100]) through an 8-bit grayscale JPEG of this quality and back."""
    u8 = np.round(x * 2.55).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else None
    if decoded is None:
        return x
    return decoded.astype(np.float32) / 2.55


#: L units a defect must change a pixel by to count as damage to repair.
MASK_CHANGE = 4.0


def _paint(
    x: np.ndarray, mask: np.ndarray, shape: np.ndarray, value: float, opacity: float = 1.0
) -> None:
    """Blend ``value`` into ``x`` where ``shape`` (float coverage in [0, 1]) is set, at most
    ``opacity`` of the way; the pixels covered at least 0.3 and changed by at least
    MASK_CHANGE join ``mask`` (a defect that matches its surroundings needs no repair)."""
    cover = shape > 0.05
    alpha = shape[cover] * opacity
    change = alpha * (value - x[cover])
    x[cover] += change
    mask[cover] |= (shape[cover] > 0.3) & (np.abs(change) >= MASK_CHANGE)


def _specks(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator, c: DamageConfig) -> None:
    h, w = x.shape
    layer: np.ndarray = np.zeros((h, w), np.float32)
    count = max(1, round(rng.integers(*c.specks, endpoint=True) * h * w / (128 * 128)))
    for _ in range(count):
        centre = (int(rng.integers(w)), int(rng.integers(h)))
        axes = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        cv2.ellipse(layer, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    layer = cv2.GaussianBlur(layer, (0, 0), rng.uniform(0.4, 1.0))
    _paint(x, mask, layer, rng.choice([rng.uniform(85, 100), rng.uniform(0, 15)]))


def _scratches(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator, c: DamageConfig) -> None:
    h, w = x.shape
    for _ in range(int(rng.integers(*c.scratches, endpoint=True))):
        layer = np.zeros((h, w), np.float32)
        # a gently curving polyline across part of the image; hairs curl more
        n = int(rng.integers(3, 7))
        start = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        heading = rng.uniform(0, 2 * np.pi)
        step = rng.uniform(0.1, 0.35) * max(h, w)
        curl = rng.uniform(0.05, 0.8)
        pts = [start]
        for _ in range(n):
            heading += rng.normal(0, curl)
            pts.append(pts[-1] + step * np.array([np.cos(heading), np.sin(heading)]))
        poly = np.round(np.array(pts)).astype(np.int32)
        cv2.polylines(layer, [poly], False, 1.0, int(rng.integers(1, 3)), cv2.LINE_AA)
        _paint(x, mask, layer, rng.choice([rng.uniform(80, 100), rng.uniform(0, 20)]))


def _cracks(x: np.ndarray, mask: np.ndarray, rng: np.random.Generator, c: DamageConfig) -> None:
    h, w = x.shape
    size = max(h, w)
    for _ in range(int(rng.integers(*c.cracks, endpoint=True))):
        layer = np.zeros((h, w), np.float32)
        # (x, y, heading, steps left) of each branch still growing
        tips = [
            (
                rng.uniform(0, w),
                rng.uniform(0, h),
                rng.uniform(0, 2 * np.pi),
                int(size * rng.uniform(0.2, 1.0)),
            )
        ]
        width = int(rng.integers(1, 4))
        # crackle of the emulsion wanders; a fold or a break of the print runs straight
        # across it with a few sharp kinks
        wander, kinks = (0.2, 0.0) if rng.random() < 0.5 else (0.05, 0.04)
        while tips:
            px, py, heading, left = tips.pop()
            while left > 0:
                heading += rng.normal(0, wander)  # jagged, unlike a scratch's smooth curve
                if rng.random() < kinks:
                    heading += rng.choice([-1, 1]) * rng.uniform(0.3, 0.8)
                step = rng.uniform(2, 6)
                nx, ny = px + step * np.cos(heading), py + step * np.sin(heading)
                thick = max(1, width + int(rng.integers(-1, 2)))
                cv2.line(
                    layer, (round(px), round(py)), (round(nx), round(ny)), 1.0, thick, cv2.LINE_AA
                )
                px, py, left = nx, ny, left - round(step)
                if rng.random() < 0.04 and len(tips) < 6:
                    tips.append(
                        (px, py, heading + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2), left // 2)
                    )
        soft = cv2.GaussianBlur(layer, (0, 0), rng.uniform(0.3, 0.8))
        # Real cracks are seldom paper-white over everything: often grayish and partly
        # see-through, so some stand out from their surroundings by only 10-20 L units.
        value = rng.choice([rng.uniform(60, 100), rng.uniform(0, 30)])
        _paint(x, mask, soft, value, opacity=rng.uniform(0.6, 1.0))

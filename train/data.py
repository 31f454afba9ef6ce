"""Training batches from any folder tree of colour photos.

The batch for step ``s`` is a pure function of (seed, s), so a resumed run sees exactly
the batches an uninterrupted run would have seen, and batches can be prefetched.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from restore import color
from restore.imagefiles import list_images

from .degrade import DEFAULT_DAMAGE, DamageConfig, damage

log = logging.getLogger(__name__)


class CropSampler:
    """Random crops with flips as normalised (L, ab) tensors; a ``degrade`` share of the
    crops get an old print's damage on L (the ab target stays clean).

    Yields for step s: L_n (B, 1, c, c) float32 in [-1, 1], ab_n (B, 2, c, c) float32 in ~[-1, 1].
    """

    def __init__(
        self,
        root: Path,
        crop: int,
        seed: int,
        cache_mb: int = 0,
        degrade: float = 0.0,
        damage_config: DamageConfig = DEFAULT_DAMAGE,
    ) -> None:
        self.files = list_images(root)
        if not self.files:
            raise FileNotFoundError(f"no images under {root}")
        self.crop = crop
        self.seed = seed
        self.degrade = degrade
        self.damage_config = damage_config
        self.cache_bytes = cache_mb * 2**20
        self._cache: dict[int, np.ndarray] = {}
        self._cached = 0
        self._bad: set[int] = set()
        self._lock = threading.Lock()

    def _load(self, i: int) -> np.ndarray | None:
        img = self._cache.get(i)
        if img is not None:
            return img
        data = np.fromfile(self.files[i], dtype=np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if img is None:
            with self._lock:
                if i not in self._bad:
                    log.warning("skipping unreadable training image %s", self.files[i])
                    self._bad.add(i)
            return None
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        with self._lock:
            if self._cached + img.nbytes <= self.cache_bytes:
                self._cache[i] = img
                self._cached += img.nbytes
        return img

    def sample_images(self, count: int, seed: int) -> Iterator[np.ndarray]:
        """Up to ``count`` readable training images, float RGB (H, W, 3) in [0, 1], one at a
        time, chosen by a fixed permutation of ``seed`` (the same images on every run)."""
        order = np.random.default_rng([seed, 7]).permutation(len(self.files))
        for i in order[:count]:
            img = self._load(int(i))
            if img is not None:
                yield img.astype(np.float32) / 255.0

    def _crop(self, img: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
        h, w = img.shape[:2]
        if min(h, w) < size:
            s = size / min(h, w)
            # Bilinear: INTER_AREA was written here once, but as the third positional
            # argument (dst), so OpenCV ignored it; bilinear is what every model trained on,
            # and INTER_AREA would upscale near nearest-neighbour.
            img = cv2.resize(
                img,
                (max(size, round(w * s)), max(size, round(h * s))),
                interpolation=cv2.INTER_LINEAR,
            )
            h, w = img.shape[:2]
        y = int(rng.integers(0, h - size + 1))
        x = int(rng.integers(0, w - size + 1))
        out = img[y : y + size, x : x + size]
        if rng.random() < 0.5:
            out = out[:, ::-1]
        return out

    def batch(
        self, step: int, batch_size: int, crop: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The (L_n, ab_n) batch of global step ``step``."""
        rng = np.random.default_rng([self.seed, step])
        size = crop or self.crop
        crops: list[np.ndarray] = []
        while len(crops) < batch_size:
            i = int(rng.integers(len(self.files)))
            img = self._load(i)
            if img is None:
                if len(self._bad) == len(self.files):
                    raise RuntimeError("no readable training images")
                continue
            crops.append(self._crop(img, rng, size))
        rgb = np.stack(crops).astype(np.float32) / 255.0  # (B, c, c, 3)
        lab = np.stack([color.rgb_to_lab(x) for x in rgb])  # (B, c, c, 3)
        if self.degrade > 0:
            for x in lab:
                if rng.random() < self.degrade:
                    x[..., 0] = damage(x[..., 0], rng, self.damage_config)[0]
        t = torch.from_numpy(lab).permute(0, 3, 1, 2)
        return color.normalize_l(t[:, :1]).contiguous(), color.normalize_ab(t[:, 1:]).contiguous()

    def stream(
        self, start: int, stop: int, batch_size_for: Callable[[int], int], prefetch: int = 2
    ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """Batches for steps start..stop-1, produced one step ahead in a thread (bounded queue)."""
        q: queue.Queue = queue.Queue(maxsize=prefetch)
        stop_flag = threading.Event()

        def work() -> None:
            try:
                for s in range(start, stop):
                    if stop_flag.is_set():
                        return
                    q.put((s, *self.batch(s, batch_size_for(s))))
            except Exception as e:  # noqa: BLE001 - re-raised in the consumer
                q.put(e)
            q.put(None)

        th = threading.Thread(target=work, daemon=True)
        th.start()
        try:
            while (item := q.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            stop_flag.set()
            while not q.empty():
                q.get_nowait()

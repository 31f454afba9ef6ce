"""Photos: images/s of `restore photos` end to end and of each stage alone."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks.common import Table, median_time
from restore import color, photos
from restore.engine import Colorizer
from restore.imageio import read_image, write_image
from restore.jobs import FileResult, Status


def stages(folder: Path, colorizer: Colorizer, repeats: int) -> dict[str, float]:
    """Seconds per image of each stage alone (median over ``repeats`` passes over the folder)."""
    files = sorted(folder.glob("*.jpg"))
    pics = [read_image(p) for p in files]
    lum = [color.lightness_of(p.pixels) for p in pics]
    small = [colorizer.downsize(x) for x in lum]
    bs = max(1, colorizer.config.batch_size)
    ab = colorizer.predict(small[:bs])
    ab = [ab[i % len(ab)] for i in range(len(files))]
    rgb = [color.merge_full(x, a, np.uint8) for x, a in zip(lum, ab, strict=True)]
    scratch = folder.parent / "encode_scratch.jpg"
    n = len(files)

    def predict() -> None:
        for i in range(0, n, bs):
            colorizer.predict(small[i : i + bs])

    out = {
        "decode (file -> pixels, metadata)": median_time(
            lambda: [read_image(p) for p in files], repeats
        ),
        "L at full resolution": median_time(
            lambda: [color.lightness_of(p.pixels) for p in pics], repeats
        ),
        "model input (area resize)": median_time(
            lambda: [colorizer.downsize(x) for x in lum], repeats
        ),
        "generator": median_time(predict, repeats),
        "merge (upsample ab, L+ab -> RGB8)": median_time(
            lambda: [color.merge_full(x, a, np.uint8) for x, a in zip(lum, ab, strict=True)],
            repeats,
        ),
        "encode (JPEG + metadata)": median_time(
            lambda: [
                write_image(
                    scratch,
                    r,
                    None,
                    p.metadata,
                    photos.MARKING,
                    subsample_chroma=photos.colour_is_coarse(r.shape, a),
                )
                for r, p, a in zip(rgb, pics, ab, strict=True)
            ],
            repeats,
        ),
    }
    scratch.unlink(missing_ok=True)
    return {k: v / n for k, v in out.items()}


def end_to_end(folder: Path, colorizer: Colorizer, repeats: int) -> float:
    """Median images/s of photos.run over ``folder`` (outputs rewritten every run)."""
    out = folder.with_name(folder.name + "_out")
    plan = photos.plan([folder], out)
    config = photos.PhotosConfig(overwrite=True)

    def run() -> None:
        results: list[FileResult] = []
        photos.run(plan.tasks, colorizer, config, results.append)
        bad = [r for r in results if r.status != Status.DONE]
        if bad:
            raise RuntimeError(f"photos failed: {bad[0]}")

    seconds = median_time(run, repeats, warmup=0)
    shutil.rmtree(out, ignore_errors=True)
    return len(plan.tasks) / seconds


def report(
    label: str, folder: Path, colorizer: Colorizer, repeats: int, serial: Colorizer | None = None
) -> tuple[Table, float]:
    """Stages and end to end; with ``serial`` (same model, one worker) that rate too, once."""
    t0 = time.perf_counter()
    st = stages(folder, colorizer, repeats)
    ips = end_to_end(folder, colorizer, repeats)
    one = end_to_end(folder, serial, 1) if serial is not None else None
    n = len(list(folder.glob("*.jpg")))
    table = Table(f"Photos {label} ({n} JPEGs)", ["stage / run", "ms/image", "images/s"])
    for name, s in st.items():
        table.add(name, s * 1e3, 1 / s)
    table.add("sum of stages", sum(st.values()) * 1e3, 1 / sum(st.values()))
    table.add("**restore photos, end to end**", 1e3 / ips, ips)
    if one is not None:
        table.add("restore photos, one worker (1 run)", 1e3 / one, one)
    table.notes.append(f"median of {repeats} runs; section took {time.perf_counter() - t0:.0f} s")
    return table, ips

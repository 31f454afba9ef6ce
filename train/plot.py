"""Loss curves from a run's losses.csv (matplotlib, headless)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def plot_losses(csv_path: Path, png_path: Path) -> Path | None:
    """Plot L1 (left axis) and the adversarial losses (right axis) against step; None when
    there is nothing to plot or matplotlib (the ``train`` extra) is not installed."""
    if not csv_path.exists():
        return None
    try:
        import matplotlib
    except ImportError:
        log.warning("matplotlib is not installed: no loss plot (pip install 'restore[train]')")
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(csv_path.open()))
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    steps = [int(r["step"]) for r in rows]
    ax.plot(steps, [float(r["l1"]) for r in rows], color="tab:blue", lw=1, label="L1")
    ax.set_xlabel("step")
    ax.set_ylabel("L1 (normalised ab)")
    gan = [(int(r["step"]), float(r["g_adv"]), float(r["d"])) for r in rows if r.get("g_adv")]
    if gan:
        ax2 = ax.twinx()
        ax2.plot([g[0] for g in gan], [g[1] for g in gan], color="tab:red", lw=0.8, label="G adv")
        ax2.plot([g[0] for g in gan], [g[2] for g in gan], color="tab:green", lw=0.8, label="D")
        ax2.set_ylabel("adversarial")
        ax2.legend(loc="upper right")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = png_path.with_name(png_path.stem + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(png_path)
    return png_path

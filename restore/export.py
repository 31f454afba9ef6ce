"""The generator as a standalone ONNX file, for other runtimes and tools.

The exported graph maps normalised L to normalised ab exactly as :class:`restore.engine.
Colorizer` runs the network: BatchNorm folded, a classification head decoded with its
temperature, and the weights' calibrated chroma gain applied. What the engine does around
it (resizing, the edge-aware refinement, merging with the full-resolution L, the user's
saturation) stays outside; the file's metadata says how to prepare the input.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from restore import __version__
from restore.color import NORMALISATION
from restore.engine import MULTIPLE, fold_batchnorm
from restore.weights import load_generator

#: Opset written (torch.onnx's dynamo exporter supports 18 and later).
OPSET = 18


class _Calibrated(nn.Module):
    """The generator with the weights' chroma gain folded onto its output."""

    def __init__(self, model: nn.Module, gain: float) -> None:
        super().__init__()
        self.model = model
        self.gain = gain

    def forward(self, l_n: torch.Tensor) -> torch.Tensor:
        ab = self.model(l_n)
        return ab if self.gain == 1.0 else ab * self.gain


def export_onnx(
    out: str | Path, weights: str | Path | None = None, vividness: float | None = None
) -> dict[str, Any]:
    """Write the generator in ``weights`` (default: the shipped one) to ``out`` as ONNX.

    The graph takes ``L``: (B, 1, H, W) float32, L/50 - 1 in [-1, 1], H and W multiples of
    32 (batch, height and width are dynamic) and gives ``ab``: (B, 2, H, W) float32, ab/110.
    The file appears only when complete (written beside it, then renamed).

    Args:
        out: destination file.
        weights: a restore .safetensors generator.
        vividness: classification heads only: 1 - temperature (default: the weights').

    Returns:
        The metadata written into the file (also readable as its ``metadata_props``).
    """
    import onnx

    model, info = load_generator(weights)
    model = fold_batchnorm(model.eval())
    if vividness is not None:
        model.temperature = 1.0 - vividness
    elif info is not None:
        model.temperature = info.temperature
    net = _Calibrated(model, info.chroma_gain).eval()
    batch = torch.export.Dim("batch", max=1024)
    rows = torch.export.Dim("rows", min=1, max=1024)
    cols = torch.export.Dim("cols", min=1, max=1024)
    example = torch.zeros(2, 1, 2 * MULTIPLE, 3 * MULTIPLE)
    meta: dict[str, Any] = {
        "producer": f"restore {__version__}",
        "input": "L: (B, 1, H, W) float32, L/50 - 1 (CIELab D65 lightness in [0, 100]); "
        f"H and W multiples of {MULTIPLE}",
        "output": "ab: (B, 2, H, W) float32, ab/110 (chroma gain applied)",
        "normalisation": json.dumps(NORMALISATION),
        "weights": json.dumps({**info.identity, "path": info.path.name}),
        "generator": json.dumps(info.config.to_dict()),
        "chroma_gain": str(info.chroma_gain),
    }
    if info.config.head == "classes":
        meta["temperature"] = str(model.temperature)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        with torch.no_grad():
            program = torch.onnx.export(
                net,
                (example,),
                input_names=["L"],
                output_names=["ab"],
                dynamic_shapes=({0: batch, 2: MULTIPLE * rows, 3: MULTIPLE * cols},),
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
            )
        assert program is not None  # None only without dynamo=True
        proto = program.model_proto
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save_model(proto, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would outlive the rename
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return meta

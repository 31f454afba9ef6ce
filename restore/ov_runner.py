"""The generator on a CPU through OpenVINO: exported once, compiled per input shape.

OpenVINO is a maintained runtime for x86 and ARM CPUs that picks its own kernels (AMX,
AVX-512 or AVX2; bf16 where the CPU has it) and fuses the passes that only move data, so
the project needs no CPU code of its own for the network, whatever its head
(benchmarks/RESULTS.md has the comparison that chose it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

#: Compiled shapes kept. A photo tree meets few shapes (render sizes are multiples of 32
#: with the short side fixed, restore.engine.render_shape), a film one; compiling one
#: costs a fraction of a second.
MAX_SHAPES = 8


def available() -> bool:
    """True if the openvino package can be imported."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def export_program(model: nn.Module) -> torch.export.ExportedProgram:
    """``model`` traced by ``torch.export`` with dynamic batch, height and width.

    Args:
        model: eval-mode generator (B, 1, H, W) -> (B, 2, H, W), H and W multiples of 32.
    """
    batch = torch.export.Dim("batch", max=1024)
    rows = torch.export.Dim("rows", min=1, max=1024)
    cols = torch.export.Dim("cols", min=1, max=1024)
    example = torch.zeros(2, 1, 64, 96)
    with torch.no_grad():
        return torch.export.export(
            model, (example,), dynamic_shapes=({0: batch, 2: 32 * rows, 3: 32 * cols},)
        )


class OpenVINORunner:
    """Callable like the generator: (B, 1, H, W) float32 normalised L -> (B, 2, H, W)
    float32 normalised ab, computed by OpenVINO on the CPU.

    Safe to call from several threads at once: each thread has its own inference requests,
    and the compiled model runs ``streams`` of them in parallel. The classification head's
    temperature is fixed when the runner is built.
    """

    def __init__(
        self,
        model: nn.Module,
        dtype: torch.dtype = torch.bfloat16,
        streams: int = 1,
        threads: int = 1,
        max_shapes: int = MAX_SHAPES,
    ) -> None:
        """
        Args:
            model: eval-mode generator on the CPU, in fp32 (BatchNorm may be folded).
            dtype: bfloat16 asks OpenVINO for bf16 inference (it falls back to fp32 on CPUs
                without it); anything else runs fp32.
            streams: inference requests run at once (one per calling thread).
            threads: CPU threads OpenVINO uses over all its streams.
            max_shapes: compiled input shapes kept (least recently used dropped).
        """
        import openvino as ov

        self._core = ov.Core()
        self._model = ov.convert_model(export_program(model))
        self._properties = {
            "INFERENCE_PRECISION_HINT": "bf16" if dtype == torch.bfloat16 else "f32",
            "NUM_STREAMS": str(max(1, streams)),
            "INFERENCE_NUM_THREADS": str(max(1, threads)),
        }
        self.max_shapes = max_shapes
        self._compiled: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self._lock = threading.Lock()
        self._local = threading.local()
        self.compiles = 0  # shapes compiled so far (a figure for tests and benchmarks)

    def _compiled_for(self, shape: tuple[int, ...]) -> object:
        with self._lock:
            compiled = self._compiled.get(shape)
            if compiled is not None:
                self._compiled.move_to_end(shape)
                return compiled
            model = self._model.clone()
            model.reshape({0: list(shape)})
            compiled = self._core.compile_model(model, "CPU", self._properties)
            self.compiles += 1
            self._compiled[shape] = compiled
            while len(self._compiled) > self.max_shapes:
                self._compiled.popitem(last=False)
            return compiled

    def _request(self, shape: tuple[int, ...]) -> object:
        requests: OrderedDict[tuple[int, ...], object] | None = getattr(
            self._local, "requests", None
        )
        if requests is None:
            requests = self._local.requests = OrderedDict()
        request = requests.get(shape)
        if request is None:
            request = self._compiled_for(shape).create_infer_request()
            requests[shape] = request
            while len(requests) > self.max_shapes:
                requests.popitem(last=False)
        else:
            requests.move_to_end(shape)
        return request

    def release(self) -> None:
        """Let the calling thread's inference requests (and their buffers) go."""
        self._local.requests = OrderedDict()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) float L in [-1, 1] -> (B, 2, H, W) float32 ab in [-1, 1]."""
        array = np.ascontiguousarray(x.detach().float().cpu().numpy())
        request = self._request(tuple(array.shape))
        request.infer({0: array})
        return torch.from_numpy(request.get_output_tensor(0).data.copy())

"""The generator on a CPU through OpenVINO: exported once, compiled per input shape.

OpenVINO is a maintained runtime for x86 and ARM CPUs that picks its own kernels (AMX,
AVX-512 or AVX2; bf16 where the CPU has it) and fuses the passes that only move data, so
the project needs no CPU code of its own for the network, whatever its head
(benchmarks/RESULTS.md has the comparison that chose it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from torch import nn

#: Static compiled shapes kept. Each holds its own intermediate buffers (about 150 MiB
#: for two streams at batch 4, 256x448, bf16), so few: a film needs one, a folder of
#: photos from one camera two (both orientations).
MAX_SHAPES = 2
#: Calls with one input shape before it gets a compiled model of its own; rarer shapes
#: run on the one dynamic-shape model, which needs no compile and no memory of their own.
STATIC_AFTER = 3
#: Input shapes whose calls are counted (the least recently seen forgotten).
_COUNTED = 256


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

    Every shape first runs on one model compiled with dynamic shapes; a shape called
    ``STATIC_AFTER`` times (a film's frames, a camera's photos) gets a model compiled for
    it alone, which is faster. Safe to call from several threads at once: each thread has
    its own inference requests, and a compiled model runs ``streams`` of them in parallel.
    The classification head's temperature is fixed when the runner is built.
    """

    def __init__(
        self,
        model: nn.Module,
        dtype: torch.dtype = torch.bfloat16,
        streams: int = 1,
        threads: int = 1,
        max_shapes: int = MAX_SHAPES,
        static_after: int = STATIC_AFTER,
    ) -> None:
        """
        Args:
            model: eval-mode generator on the CPU, in fp32 (BatchNorm may be folded).
            dtype: bfloat16 asks OpenVINO for bf16 inference (it falls back to fp32 on CPUs
                without it); anything else runs fp32.
            streams: inference requests run at once (one per calling thread).
            threads: CPU threads OpenVINO uses over all its streams.
            max_shapes: static compiled shapes kept (least recently used dropped); 0 runs
                everything on the dynamic model.
            static_after: calls with one shape before it is compiled for that shape.
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
        self.static_after = max(1, static_after)
        self._dynamic: Any = None
        self._release_dynamic = False
        self._static: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._calls: OrderedDict[tuple[int, ...], int] = OrderedDict()
        self._lock = threading.Lock()
        self._local = threading.local()
        self.compiles = 0  # models compiled so far, dynamic one included (for tests)

    def _compile(self, shape: tuple[int, ...] | None) -> Any:
        model = self._model
        if shape is not None:
            model = model.clone()
            model.reshape({0: list(shape)})
        self.compiles += 1
        return self._core.compile_model(model, "CPU", self._properties)

    def _compiled_for(self, shape: tuple[int, ...]) -> Any:
        """The compiled model that runs ``shape`` now, compiling one if it is due."""
        with self._lock:
            calls = self._calls.pop(shape, 0) + 1
            self._calls[shape] = calls
            if len(self._calls) > _COUNTED:
                self._calls.popitem(last=False)
            compiled = self._static.get(shape)
            if compiled is None and calls >= self.static_after and self.max_shapes > 0:
                compiled = self._static[shape] = self._compile(shape)
                while len(self._static) > self.max_shapes:
                    self._static.popitem(last=False)
                self._release_dynamic = self._dynamic is not None
            if compiled is None:
                if self._dynamic is None:
                    self._dynamic = self._compile(None)
                self._release_dynamic = False
                return self._dynamic
            self._static.move_to_end(shape)
            if self._release_dynamic:
                # The dynamic model's buffers (sized for the largest shape it ran) are idle
                # once its shapes have their own models; OpenVINO refuses while another
                # thread's call is still on it, so this is retried on the next call.
                try:
                    self._dynamic.release_memory()
                    self._release_dynamic = False
                except RuntimeError:
                    pass
            return compiled

    def _request(self, shape: tuple[int, ...]) -> Any:
        compiled = self._compiled_for(shape)
        # One request per compiled model and thread; requests of models the cache has
        # dropped are let go with them.
        requests: dict[int, tuple[Any, Any]] = getattr(self._local, "requests", {})
        live = {id(m) for m in (self._dynamic, *self._static.values())}
        requests = {k: v for k, v in requests.items() if k in live}
        entry = requests.get(id(compiled))
        if entry is None:
            entry = requests[id(compiled)] = (compiled, compiled.create_infer_request())
        self._local.requests = requests
        return entry[1]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) float L in [-1, 1] -> (B, 2, H, W) float32 ab in [-1, 1]."""
        array = np.ascontiguousarray(x.detach().float().cpu().numpy())
        request = self._request(tuple(array.shape))
        request.infer({0: array})
        return torch.from_numpy(request.get_output_tensor(0).data.copy())

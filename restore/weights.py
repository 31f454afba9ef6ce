"""Weights as .safetensors whose metadata rebuilds the model. No pickle on the load path."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from restore.color import NORMALISATION
from restore.errors import WeightsError
from restore.models import (
    DEFAULT_TEMPERATURE,
    CleanupNet,
    CleanupNetConfig,
    DefectNet,
    DefectNetConfig,
    GeneratorConfig,
    GrainNet,
    GrainNetConfig,
    PatchDiscriminator,
    PatchDiscriminatorConfig,
    UNetGenerator,
)

FORMAT = "restore-colorizer"
#: Version written; 2 added the classification head (its bin table stays fp32).
FORMAT_VERSION = 2
READABLE_VERSIONS = ("1", "2")
DISCRIMINATOR_FORMAT = "restore-patchgan"
DISCRIMINATOR_VERSION = 1
#: Tensors saved at full precision whatever the file's dtype: the classes' ab table.
FULL_PRECISION = ("bin_ab",)

SHIPPED_NAME = "restore_g.safetensors"


def default_weights() -> Path:
    """The shipped generator: $RESTORE_WEIGHTS if set, else weights/ (installed as restore._weights)."""
    env = os.environ.get("RESTORE_WEIGHTS")
    if env:
        return Path(env)
    try:
        from importlib.resources import files

        return Path(str(files("restore._weights").joinpath(SHIPPED_NAME)))
    except (ModuleNotFoundError, TypeError):
        return Path(__file__).resolve().parent.parent / "weights" / SHIPPED_NAME


DEFAULT_WEIGHTS = default_weights()


@dataclass(frozen=True)
class WeightsInfo:
    """What a weights file says about itself."""

    path: Path
    sha256: str
    config: GeneratorConfig
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def chroma_gain(self) -> float:
        """Factor on the generator's ab calibrated for these weights (1 if none): a model
        trained for accuracy predicts colours duller than real ones; the factor is chosen on
        validation photos (weights/README.md). The engine multiplies it with the user's
        ``saturation``."""
        return float(self.metadata.get("inference", {}).get("chroma_gain", 1.0))

    @property
    def temperature(self) -> float:
        """Annealed-mean temperature calibrated for a classification head (the engine's
        default vividness is 1 minus this)."""
        return float(self.metadata.get("inference", {}).get("temperature", DEFAULT_TEMPERATURE))

    @property
    def identity(self) -> dict[str, Any]:
        """Short description for reports: file, hash, steps."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "steps": self.metadata.get("training", {}).get("steps"),
            "chroma_gain": self.chroma_gain,
            "head": self.config.head,
            **({"temperature": self.temperature} if self.config.head == "classes" else {}),
            "format_version": int(self.metadata.get("format_version", FORMAT_VERSION)),
        }


def _atomic_save(tensors: dict[str, torch.Tensor], meta: dict[str, str], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def _half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict for a small weights file: floating tensors fp16 on the CPU, contiguous."""
    return {
        k: (
            v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()
        ).contiguous()
        for k, v in state.items()
    }


def save_generator(
    model: UNetGenerator,
    path: str | Path,
    *,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    inference: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float16,
) -> Path:
    """Write the generator's state as safetensors (fp16 by default) with rebuild metadata.

    ``inference`` holds settings calibrated for these weights that the engine applies, e.g.
    ``{"chroma_gain": 1.3}`` (see :attr:`WeightsInfo.chroma_gain`).
    """
    path = Path(path)
    tensors = {
        k: (
            v.detach().to("cpu", dtype)
            if v.is_floating_point() and k not in FULL_PRECISION
            else v.detach().cpu()
        ).contiguous()
        for k, v in model.state_dict().items()
    }
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "architecture": json.dumps({"name": "unet-resnet18", **model.config.to_dict()}),
        "normalisation": json.dumps(NORMALISATION),
        "training": json.dumps(training or {}),
        "metrics": json.dumps(metrics or {}),
    }
    if inference:
        meta["inference"] = json.dumps(inference)
    _atomic_save(tensors, meta, path)
    return path


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise WeightsError(f"{path} is not a readable .safetensors file ({e})") from e
    return tensors, meta


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_info(path: str | Path) -> tuple[WeightsInfo, dict[str, torch.Tensor]]:
    """Validate a generator weights file and return its description and tensors."""
    path = Path(path)
    tensors, meta = _read(path)
    if meta.get("format") != FORMAT:
        raise WeightsError(
            f"{path} is not a restore colorizer weights file (format={meta.get('format')!r})"
        )
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise WeightsError(
            f"{path} has weights format version {meta.get('format_version')!r}; "
            f"this restore understands versions {', '.join(READABLE_VERSIONS)}: upgrade restore"
        )
    try:
        norm = json.loads(meta["normalisation"])
        arch = json.loads(meta["architecture"])
        if arch.pop("name") != "unet-resnet18":
            raise WeightsError(f"{path}: unknown architecture")
        config = GeneratorConfig.from_dict(arch)
        info_meta: dict[str, Any] = {
            k: json.loads(meta.get(k, "{}")) for k in ("training", "metrics", "inference")
        }
        info_meta["format_version"] = int(meta["format_version"])
        gain = float(info_meta["inference"].get("chroma_gain", 1.0))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise WeightsError(f"{path}: damaged metadata ({e})") from e
    if not 0.0 < gain <= 4.0:
        raise WeightsError(f"{path}: chroma_gain {gain} outside (0, 4]")
    if norm != NORMALISATION:
        raise WeightsError(
            f"{path} was trained with colour normalisation {norm}, expected {NORMALISATION}"
        )
    return WeightsInfo(path=path, sha256=_sha256(path), config=config, metadata=info_meta), tensors


def load_generator(path: str | Path | None = None) -> tuple[UNetGenerator, WeightsInfo]:
    """Rebuild the generator from a weights file (default: the shipped one), in fp32 and
    eval mode; strict loading."""
    path = Path(path) if path else default_weights()
    info, tensors = read_info(path)
    model = UNetGenerator(info.config)
    try:
        model.load_state_dict(_fp32(tensors), strict=True)
    except RuntimeError as e:
        raise WeightsError(
            f"{path}: tensors do not match the architecture in its metadata ({e})"
        ) from e
    return model.eval(), info


def _fp32(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating tensors as fp32 (files store fp16), others unchanged."""
    return {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}


def _save_small(
    model: DefectNet | GrainNet | CleanupNet | PatchDiscriminator,
    path: str | Path,
    fmt: str,
    version: int,
    **meta: Any,
) -> Path:
    """A model with a ``config.to_dict()`` as an fp16 file: format, version, its architecture
    and ``meta`` (JSON-encoded unless already a string)."""
    path = Path(path)
    header = {
        "format": fmt,
        "format_version": str(version),
        "architecture": json.dumps(model.config.to_dict()),
        **{k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()},
    }
    _atomic_save(_half(model.state_dict()), header, path)
    return path


def _load_small(
    path: str | Path,
    fmt: str,
    version: int,
    what: str,
    build: Callable[[dict[str, Any]], nn.Module],
) -> tuple[nn.Module, dict[str, str]]:
    """The model ``build`` makes from a :func:`_save_small` file's architecture, with its
    tensors (fp32), and the file's metadata. ``what`` names the file kind in errors."""
    path = Path(path)
    tensors, meta = _read(path)
    if meta.get("format") != fmt or meta.get("format_version") != str(version):
        raise WeightsError(f"{path} is not a restore {what} file")
    try:
        model = build(json.loads(meta["architecture"]))
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{path}: damaged metadata ({e})") from e
    try:
        model.load_state_dict(_fp32(tensors))
    except RuntimeError as e:
        raise WeightsError(f"{path}: tensors do not match its architecture ({e})") from e
    return model, meta


def save_discriminator(model: PatchDiscriminator, path: str | Path, *, steps: int) -> Path:
    """Small fp16 discriminator file so training can continue from what is committed."""
    return _save_small(model, path, DISCRIMINATOR_FORMAT, DISCRIMINATOR_VERSION, steps=str(steps))


def load_discriminator(path: str | Path) -> PatchDiscriminator:
    """Rebuild the PatchGAN from :func:`save_discriminator` output (fp32)."""

    def build(arch: dict[str, Any]) -> nn.Module:
        return PatchDiscriminator(PatchDiscriminatorConfig(**arch))

    model, _ = _load_small(
        path, DISCRIMINATOR_FORMAT, DISCRIMINATOR_VERSION, "discriminator", build
    )
    assert isinstance(model, PatchDiscriminator)
    return model


#: The repair networks' files, per model class: format, version, the name errors give, and
#: how a file's architecture rebuilds the model.
_REPAIR_KINDS: dict[
    type[nn.Module], tuple[str, int, str, Callable[[dict[str, Any]], nn.Module]]
] = {
    DefectNet: (
        "restore-defects",
        1,
        "defect-detector",
        lambda a: DefectNet(DefectNetConfig.from_dict(a)),
    ),
    GrainNet: (
        "restore-grain",
        1,
        "grain-estimator",
        lambda a: GrainNet(GrainNetConfig.from_dict(a)),
    ),
    CleanupNet: (
        "restore-cleanup",
        1,
        "cleanup",
        lambda a: CleanupNet(CleanupNetConfig.from_dict(a)),
    ),
}
_RepairNet = TypeVar("_RepairNet", DefectNet, GrainNet, CleanupNet)


def save_repair_net(
    model: DefectNet | GrainNet | CleanupNet,
    path: str | Path,
    *,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write a repair network (fp16) with the metadata that rebuilds it: its architecture,
    the normalisation, and how it was trained and what it measured."""
    fmt, version, _, _ = _REPAIR_KINDS[type(model)]
    return _save_small(
        model,
        path,
        fmt,
        version,
        normalisation=NORMALISATION,
        training=training or {},
        metrics=metrics or {},
    )


def load_repair_net(path: str | Path, kind: type[_RepairNet]) -> tuple[_RepairNet, dict[str, Any]]:
    """Rebuild a ``kind`` network from :func:`save_repair_net` output: (fp32 model in eval
    mode, its training and metrics metadata)."""
    fmt, version, what, build = _REPAIR_KINDS[kind]
    model, meta = _load_small(path, fmt, version, what, build)
    try:
        info = {k: json.loads(meta.get(k, "{}")) for k in ("training", "metrics")}
    except ValueError as e:
        raise WeightsError(f"{path}: damaged metadata ({e})") from e
    assert isinstance(model, kind)
    return model.eval(), info


# The names the callers use.
save_detector = save_grain_estimator = save_cleanup = save_repair_net


def load_detector(path: str | Path) -> tuple[DefectNet, dict[str, Any]]:
    """The defect detector: :func:`load_repair_net` (path, DefectNet)."""
    return load_repair_net(path, DefectNet)


def load_grain_estimator(path: str | Path) -> tuple[GrainNet, dict[str, Any]]:
    """The grain estimator: :func:`load_repair_net` (path, GrainNet)."""
    return load_repair_net(path, GrainNet)


def load_cleanup(path: str | Path) -> tuple[CleanupNet, dict[str, Any]]:
    """The cleanup network: :func:`load_repair_net` (path, CleanupNet)."""
    return load_repair_net(path, CleanupNet)

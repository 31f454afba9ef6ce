"""The networks and nothing else: no file access, no printing, no downloads."""

from .cleanup import CleanupNet, CleanupNetConfig
from .defects import DefectNet, DefectNetConfig
from .discriminator import PatchDiscriminator, PatchDiscriminatorConfig
from .generator import (
    DEFAULT_TEMPERATURE,
    SKIP_TABLE,
    GeneratorConfig,
    UNetGenerator,
    annealed_mean,
    decode_classes,
    load_imagenet_encoder,
)
from .grain import GrainNet, GrainNetConfig

__all__ = [
    "CleanupNet",
    "CleanupNetConfig",
    "DefectNet",
    "DefectNetConfig",
    "DEFAULT_TEMPERATURE",
    "annealed_mean",
    "decode_classes",
    "GrainNet",
    "GrainNetConfig",
    "SKIP_TABLE",
    "GeneratorConfig",
    "PatchDiscriminator",
    "PatchDiscriminatorConfig",
    "UNetGenerator",
    "load_imagenet_encoder",
]

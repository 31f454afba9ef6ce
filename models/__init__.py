"""The networks and nothing else: no file access, no printing, no downloads."""

from .discriminator import PatchDiscriminator, PatchDiscriminatorConfig
from .generator import SKIP_TABLE, GeneratorConfig, UNetGenerator, load_imagenet_encoder

__all__ = [
    "SKIP_TABLE",
    "GeneratorConfig",
    "PatchDiscriminator",
    "PatchDiscriminatorConfig",
    "UNetGenerator",
    "load_imagenet_encoder",
]

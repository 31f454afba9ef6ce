"""Specific exceptions raised deep in the library and turned into messages by the CLI."""


class RestoreError(Exception):
    """Base class of every error this package raises on purpose."""


class WeightsError(RestoreError):
    """A weights file is missing, corrupt, foreign, or of an unknown format version."""


class UnsupportedMedia(RestoreError):
    """A file is not an image/video we can read, or it fails to decode."""


class ImageTooLarge(UnsupportedMedia):
    """An image exceeds the pixel limit (decompression-bomb guard)."""


class EncodeError(RestoreError):
    """An output cannot be encoded or written (unknown codec, container cannot hold it)."""


class OutputPathError(RestoreError):
    """The requested output location cannot work (e.g. it is an input folder or a file)."""

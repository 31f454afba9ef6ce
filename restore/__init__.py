"""restore: batch colorization and restoration of black-and-white photos and films.

Python API: ``from restore import Colorizer`` (see :class:`restore.engine.Colorizer`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Colorizer", "__version__"]

if TYPE_CHECKING:
    from restore.engine import Colorizer


def __getattr__(name: str) -> Any:
    # Imported on first use: the engine pulls in torch, and `restore --help` or
    # `from restore import __version__` should not wait for it.
    if name == "Colorizer":
        from restore.engine import Colorizer

        return Colorizer
    raise AttributeError(f"module 'restore' has no attribute {name!r}")

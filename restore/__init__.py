"""restore: batch colorization and restoration of black-and-white photos and films."""

__version__ = "0.1.0"

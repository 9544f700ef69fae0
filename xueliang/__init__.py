"""xueliang: public cameras feeding grid-based city governance."""

__version__ = "0.1.0"

"""The sample plug-in under another module path (the path is part of the config hash)."""

from .sample_plugin import __version__, factory

__all__ = ["__version__", "factory"]

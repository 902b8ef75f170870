"""A guard proxy for Ollama with a Redis-backed verdict cache."""

__version__ = "0.1.0"

__all__ = ["__version__"]

"""ASGI race harness: deterministic race reproduction for ASGI servers."""

__version__ = "0.1.0"

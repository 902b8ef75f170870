"""The HTTP side: app factory, routes, upstream client, streaming, middlewares, metrics."""

from guard_proxy.proxy.app import create_app

__all__ = ["create_app"]

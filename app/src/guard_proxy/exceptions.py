"""The error hierarchy of guard_proxy.

    GuardProxyError
    ├── ConfigError            invalid configuration; carries one problem per key
    ├── CacheError
    │   └── CacheBackendError  a backend could not serve: refused, reset, timeout (breaker counts)
    │       ├── AuthFailed       the server refused our credentials (counted; logged as such)
    │       ├── PoolTimeout      every connection was busy, server not at fault (breaker ignores)
    │       └── CommandRejected  the server answered with an error: OOM, NOPERM (breaker ignores)
    ├── GuardError
    │   ├── ScannerLoadError   a scanner (built-in or plug-in) could not be built
    │   └── ScannerError       a scanner raised while scanning
    └── UpstreamError          Ollama could not be reached or broke the connection

Third-party errors are translated at the boundary that sees them (``raise ... from exc``),
and no message ever contains a secret or scanned text.
"""

from __future__ import annotations


class GuardProxyError(Exception):
    """Base class of every error raised by guard_proxy."""


class ConfigError(GuardProxyError):
    """The configuration is invalid. ``problems`` holds one ``(key, message)`` pair per error."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{key}: {message}" for key, message in self.problems))

    def lines(self) -> list[str]:
        """One human-readable line per problem, naming the key."""
        return [f"{key}: {message}" for key, message in self.problems]


class CacheError(GuardProxyError):
    """Base class of cache errors."""


class CacheBackendError(CacheError):
    """A cache backend could not serve a call (connection refused, reset, timeout, protocol)."""


class AuthFailed(CacheBackendError):
    """The server rejected the username/password (``WRONGPASS``, ``NOAUTH``)."""


class PoolTimeout(CacheBackendError):
    """No connection became free in time: a local limit, not a sign that the server is down."""


class CommandRejected(CacheBackendError):
    """The server is up and answered the command with an error (``OOM``, ``NOPERM``)."""


class GuardError(GuardProxyError):
    """Base class of guard errors."""


class ScannerLoadError(GuardError):
    """A scanner could not be built from its configuration; start-up must stop."""


class ScannerError(GuardError):
    """A scanner raised while scanning; ``guard.fail_mode`` decides what happens."""

    def __init__(self, scanner: str, message: str) -> None:
        self.scanner = scanner
        super().__init__(f"scanner {scanner!r} failed: {message}")


class UpstreamError(GuardProxyError):
    """Ollama could not be reached, timed out, or broke the connection."""

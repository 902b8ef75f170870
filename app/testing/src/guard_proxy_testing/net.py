"""Loopback networking for the test and bench harnesses: free ports, plain HTTP, readiness.

Stdlib only and no pytest: ``bench/procs.py`` and ``monitoring/render`` import it too (with
``app/tests`` on ``sys.path``). Failures are exceptions (``OSError``, :class:`NotReady`);
the pytest wrappers in ``guard_proxy_testing.processes`` turn them into test failures.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping

__all__ = ["NotReady", "free_port", "http_get", "http_request", "wait_answering"]


class NotReady(RuntimeError):
    """A process exited, or did not answer its URL in time; the message carries its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind to port 0, read it back, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def http_request(
    url: str,
    *,
    method: str = "GET",
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 2.0,
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """``(status, body)`` without environment proxies; raises ``OSError`` when nothing answers.

    HTTPS is verified with ``context`` (default: the system's CA store)."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    req = urllib.request.Request(url, data=data, headers=dict(headers or {}), method=method)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except urllib.error.URLError as exc:
        raise OSError(str(exc.reason)) from exc


def http_get(
    url: str, timeout: float = 2.0, context: ssl.SSLContext | None = None
) -> tuple[int, bytes]:
    """``GET`` as :func:`http_request`: ``(status, body)``, ``OSError`` when nothing answers."""
    return http_request(url, timeout=timeout, context=context)


def wait_answering(
    url: str,
    name: str,
    popen: subprocess.Popen[bytes],
    log_text: Callable[[], str],
    timeout: float,
    *,
    status: int | None = None,
    probe_timeout: float = 2.0,
    context: ssl.SSLContext | None = None,
) -> None:
    """Return once ``url`` answers (with ``status`` when given, else any HTTP answer);
    ``context`` verifies an ``https://`` URL.

    Raises :class:`NotReady` with ``log_text()`` when ``popen`` exits or ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise NotReady(f"{name} exited with {popen.returncode}:\n{log_text()}")
        try:
            got, _ = http_get(url, timeout=probe_timeout, context=context)
        except OSError:
            pass
        else:
            if status is None or got == status:
                return
        time.sleep(0.05)
    raise NotReady(f"{name} did not answer {url} in time:\n{log_text()}")

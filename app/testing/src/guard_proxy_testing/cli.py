"""Shared by the operator-command tests: a CLI run's :class:`Result`, ``generate`` and
``wait_until``. The fixtures (``run_cli``, ``secrets``, ``start_proxy``) live in
``app/tests/cli/conftest.py``; ``RunCli`` is the type of ``run_cli``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from .processes import START_TIMEOUT, Proxy


@dataclass
class Result:
    """What one CLI run printed and returned."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:  # shown by pytest when an assertion fails
        return (
            f"$ guard-proxy {' '.join(self.args)}\n-> exit {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


RunCli = Callable[..., Result]


def generate(instance: Proxy, prompt: str) -> int:
    """POST /api/generate (not streamed); the HTTP status."""
    body = json.dumps({"model": "llama3.2", "prompt": prompt, "stream": False}).encode()
    req = urllib.request.Request(
        f"{instance.url}/api/generate",
        data=body,
        method="POST",
        headers={"content-type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:
    """Poll ``predicate`` until true; fail the test naming ``what`` if it never becomes true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")

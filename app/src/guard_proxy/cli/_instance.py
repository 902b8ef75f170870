"""How the operator commands find and ask a running instance: ``--url``/``--config``, HTTP.

``status`` and ``cache`` share these. Requests go through ``httpx`` without environment
proxies; any HTTP status is a :class:`Reply`, and no answer at all is :class:`Unreachable`.

An instance whose listener serves TLS (``server.tls_cert_file`` set) is asked over HTTPS.
Which certificate is trusted (:func:`resolve` decides, :func:`request` uses it):

* ``--ca-file``: the CA bundle given, with the host name checked against the URL;
* else, when the URL comes from the configuration: exactly the instance's own certificate
  (``server.tls_cert_file``, pinned); the host name is not checked, because the URL is the
  loopback address of the local listener, which a certificate rarely names;
* else (``--url https://...``): the system's CA store.
"""

from __future__ import annotations

import argparse
import ssl
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from guard_proxy.cli import add_config_argument

if TYPE_CHECKING:
    from guard_proxy.config import Settings

EXIT_DOWN = 2
"""Exit code of every instance command when the instance does not answer (or cannot be found)."""
DEFAULT_TIMEOUT = 3.0


def add_url_arguments(parser: argparse.ArgumentParser) -> None:
    """``--url``, ``--config`` and ``--timeout``: how the CLI finds and waits for an instance."""
    parser.add_argument(
        "--url",
        metavar="URL",
        default=None,
        help="base URL of the instance (default: http://<server.host>:<server.port> from config)",
    )
    add_config_argument(parser)
    parser.add_argument(
        "--timeout",
        metavar="S",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait for each HTTP answer (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--ca-file",
        metavar="PEM",
        default=None,
        help="CA certificates to verify an HTTPS instance against (default: the instance's "
        "own server.tls_cert_file for the URL from config, else the system's CA store)",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be a number of seconds in (0, 3600], got {text!r}")
    return value


class Unreachable(Exception):
    """The instance did not answer: refused, timed out, reset, or not HTTP."""


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = ""

    def json(self) -> Any:
        import json

        return json.loads(self.body)


_verify: ssl.SSLContext | None = None
"""How :func:`request` verifies HTTPS; set by :func:`resolve` (``None``: the system store)."""


def base_url(host: str, port: int, tls: bool = False) -> str:
    """``http://host:port`` (``https://`` with ``tls``) for a listen address; wildcard
    binds map to loopback."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


def _trust(ca_file: str, check_hostname: bool, key: str) -> ssl.SSLContext:
    """A client context trusting the PEM certificates in ``ca_file``; ``ConfigError`` (named
    ``key``) when they cannot be read. Any certificate of the file is a trust anchor, so the
    server's own certificate pins it."""
    from guard_proxy.exceptions import ConfigError

    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    # Strict X.509 checks on every Python (3.13's default), as for Redis (tls_kwargs).
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | ssl.VERIFY_X509_STRICT
    ctx.check_hostname = check_hostname
    try:
        ctx.load_verify_locations(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError([(key, f"cannot load CA certificates from {ca_file}: {why}")]) from exc
    return ctx


def resolve(args: argparse.Namespace) -> tuple[str, Settings | None]:
    """The instance URL and the settings (``None`` when --url is given and config is invalid).

    Raises :class:`guard_proxy.exceptions.ConfigError` when the URL has to come from an invalid
    configuration, or the certificates to trust cannot be loaded. Sets how :func:`request`
    verifies HTTPS (see the module doc).
    """
    from guard_proxy.config import load_settings
    from guard_proxy.exceptions import ConfigError

    global _verify
    ca_file = getattr(args, "ca_file", None)
    _verify = _trust(ca_file, True, "--ca-file") if ca_file else None
    try:
        settings = load_settings(args.config)
    except ConfigError:
        if args.url is None:
            raise
        return args.url.rstrip("/"), None
    if args.url is not None:
        return args.url.rstrip("/"), settings
    server = settings.server
    tls = bool(server.tls_cert_file)
    if tls and _verify is None:
        _verify = _trust(server.tls_cert_file, False, "server.tls_cert_file")
    return base_url(server.host, server.port, tls), settings


def request(
    url: str,
    *,
    method: str = "GET",
    timeout: float = DEFAULT_TIMEOUT,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One HTTP call without environment proxies; any HTTP status is a :class:`Reply`.

    ``timeout`` bounds the connect and each read; HTTPS is verified as :func:`resolve` set
    (the system's CA store by default). Redirects are followed (an ``Authorization`` header
    never leaves the origin).
    """
    from urllib.parse import urlsplit

    import httpx

    # Checked here: httpx calls a URL without a host "missing an 'http://' protocol".
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Unreachable(f"not an http:// or https:// URL: {url!r}")
    if not parts.hostname:
        raise Unreachable(f"no host in {url!r}")
    content = b"" if method == "POST" else None
    try:
        with httpx.Client(
            trust_env=False,
            verify=_verify if _verify is not None else ssl.create_default_context(),
            timeout=timeout,
            follow_redirects=True,
        ) as client:
            resp = client.request(method, url, headers=headers, content=content)
            return Reply(resp.status_code, resp.content, resp.headers.get("content-type", ""))
    except httpx.TimeoutException as exc:
        raise Unreachable(f"no answer within {timeout:g} s") from exc
    except (httpx.TransportError, httpx.InvalidURL) as exc:
        raise Unreachable(str(exc) or type(exc).__name__) from exc


def error_text(body: bytes) -> str:
    """The message of an error answer (``{"error": ...}`` in either shape), or its text."""
    import json

    try:
        doc = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:200] or "(empty body)"
    if isinstance(doc, dict):
        err = doc.get("error", doc.get("detail", doc))
        if isinstance(err, dict):
            err = err.get("message", err)
        return str(err)
    return str(doc)


def get_json(url: str, timeout: float) -> tuple[Any, str | None]:
    """``(document, None)`` or ``(None, why not)`` for an endpoint that may be missing.

    A 503 with a JSON body is a document too: ``/cache/health`` answers so when unhealthy.
    """
    try:
        reply = request(url, timeout=timeout)
    except Unreachable as exc:
        return None, str(exc)
    if reply.status not in (200, 503):
        return None, f"HTTP {reply.status}: {error_text(reply.body)}"
    try:
        return reply.json(), None
    except ValueError:
        return None, "not JSON"


def resolve_or_report(args: argparse.Namespace) -> tuple[str, Settings | None] | None:
    """:func:`resolve`, or ``None`` after printing why the URL cannot be worked out."""
    from guard_proxy.exceptions import ConfigError

    try:
        return resolve(args)
    except ConfigError as exc:
        for line in exc.lines():
            print(f"error: {line}", file=sys.stderr)
        print("error: cannot work out the instance URL; pass --url", file=sys.stderr)
        return None

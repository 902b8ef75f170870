"""Field types of the settings: pydantic ``Annotated`` types whose validators state the rule.

A validator that refuses a value raises ``ValueError`` with the message the loader shows after
the key (``must be host:port, got 'x'``); pydantic's own type and bound errors are worded by
the loader. None of these types is used for a secret, so their messages may echo the value.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, GetCoreSchemaHandler
from pydantic_core import core_schema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$")
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_Choice = TypeVar("_Choice", str, tuple[str, ...])


def _none_is(empty: object) -> Callable[[object], object]:
    """YAML's bare ``key:`` (null) means the empty value of the field's type."""
    return lambda value: empty if value is None else value


def _split_commas(value: object) -> object:
    """A string is a comma-separated list (the environment's form, also accepted in YAML)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _duration(value: object) -> object:
    """``"200ms"``, ``"0.2s"`` and ``"0.2"`` are seconds as a float; numbers pass through."""
    if not isinstance(value, str):
        return value
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"must be a duration in seconds or like '200ms', got {value!r}")
    number = float(match.group(1))
    return number / 1000.0 if match.group(2) == "ms" else number


def _cpu_count(value: object) -> object:
    """``"auto"`` is the machine's CPU count; another string must be an integer."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.lower() == "auto":
        return os.cpu_count() or 1
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"must be an integer or auto, got {value!r}") from None


@dataclass(frozen=True)
class OneOf:
    """``Annotated`` metadata: the value, or each item of a list, is one of ``choices``."""

    choices: tuple[str, ...]

    def __get_pydantic_core_schema__(
        self, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def check(self, value: _Choice) -> _Choice:
        """``value`` itself, or ``ValueError`` naming the first item not among the choices."""
        for item in (value,) if isinstance(value, str) else value:
            if item not in self.choices:
                raise ValueError(f"must be one of {', '.join(self.choices)}; got {item!r}")
        return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL with a host, got {value!r}")
    return value


def _networks(value: tuple[str, ...]) -> tuple[str, ...]:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"not an IPv4/IPv6 address or CIDR: {item!r}") from None
    return value


def _header_name(value: str) -> str:
    if value and (not _HEADER.match(value) or value.lower() == "authorization"):
        raise ValueError(f"must be a header name other than Authorization, got {value!r}")
    return value


def _host_ports(value: tuple[str, ...]) -> tuple[str, ...]:
    for item in value:
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"must be host:port, got {item!r}")
    return value


Positive = Annotated[int, Field(ge=1)]
Port = Annotated[int, Field(ge=1, le=65535)]
Text = Annotated[str, BeforeValidator(_none_is(""))]
"""A string; ``null`` is the empty string."""
NonEmptyText = Annotated[Text, Field(min_length=1)]
StrMapping = Annotated[dict[str, str], BeforeValidator(_none_is({}))]
"""A mapping of strings to strings; ``null`` is the empty mapping."""
Options = Annotated[dict[str, Any], BeforeValidator(_none_is({}))]
"""Free-form options (a plug-in's own); ``null`` is the empty mapping."""
StrList = Annotated[tuple[str, ...], BeforeValidator(_split_commas)]
"""A list of strings: a YAML list, or a comma-separated string; ``null`` is the empty list."""
Duration = Annotated[float, BeforeValidator(_duration), Field(gt=0)]
"""Positive seconds: a number, or a string like ``"200ms"`` or ``"0.2s"``."""
DurationOrZero = Annotated[float, BeforeValidator(_duration), Field(ge=0)]
CpuCount = Annotated[int, BeforeValidator(_cpu_count), Field(ge=1)]
"""A count of at least 1, or ``"auto"`` (the CPU count)."""
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Networks = Annotated[StrList, AfterValidator(_networks)]
"""IPv4/IPv6 addresses or CIDR blocks."""
HeaderName = Annotated[NonEmptyText, AfterValidator(_header_name)]
HostPorts = Annotated[StrList, AfterValidator(_host_ports)]

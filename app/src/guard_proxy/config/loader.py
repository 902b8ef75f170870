"""Build :class:`Settings` from defaults, one YAML file and the environment (env > YAML > defaults).

Every value is type-checked, unknown keys are errors, and all problems are collected so that
one run names every bad key. Secret values never appear in a problem message.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import urlsplit

import yaml

from guard_proxy.config.settings import (
    ACTIONS,
    NOT_RESTORABLE,
    PII_KINDS,
    SECRET_KINDS,
    Settings,
)
from guard_proxy.exceptions import ConfigError

CONFIG_ENV = "GUARD_PROXY_CONFIG"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$")
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, key: str, message: str) -> None:
        self.items.append((key, message))


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load and validate the configuration, or raise :class:`ConfigError` naming every bad key.

    ``path`` defaults to ``$GUARD_PROXY_CONFIG``; with neither, only defaults and env apply.
    """
    env = os.environ if environ is None else environ
    problems = _Problems()
    data: Any = {}
    source = path if path is not None else env.get(CONFIG_ENV) or None
    if source is not None:
        data = _read_yaml(Path(source), problems)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.add("config", "the file must hold a mapping of sections")
        data = {}
    settings: Settings = _build(Settings, Settings(), data, "", env, problems)
    if not problems.items:
        _check_combinations(settings, env, problems)
        _check_keys(settings, env, problems)
    if not problems.items:
        settings = _read_secret_files(settings, problems)
    if problems.items:
        raise ConfigError(problems.items)
    return settings


def _read_yaml(path: Path, problems: _Problems) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.add("config", f"file not found: {path}")
        return {}
    except OSError as exc:
        problems.add("config", f"cannot read {path}: {exc.strerror}")
        return {}
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problems.add("config", f"invalid YAML in {path}{where}")
        return {}


def _build(
    cls: type[Any],
    base: Any,
    data: Any,
    prefix: str,
    env: Mapping[str, str],
    problems: _Problems,
) -> Any:
    """Return ``base`` with ``data`` (a YAML mapping) and env overrides applied to ``cls``."""
    if not isinstance(data, dict):
        problems.add(prefix.rstrip(".") or "config", "must be a mapping")
        data = {}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            suggestion = _closest(str(key), fields)
            hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
            problems.add(f"{prefix}{key}", f"unknown key{hint}")
    changes: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        typ = hints[name]
        current = getattr(base, name)
        if _is_settings_class(typ):
            if name in data:
                changes[name] = _build(typ, current, data[name], f"{key}.", env, problems)
            else:
                changes[name] = _build(typ, current, {}, f"{key}.", env, problems)
            continue
        value = current
        if name in data:
            value = _cast_yaml(data[name], typ, f, key, env, problems)
        env_name = f.metadata.get("env")
        if env_name and env_name in env:
            value = _cast_env(env[env_name], typ, f, f"{key} (from {env_name})", problems)
        if value is not _INVALID:
            _validate(
                value,
                f,
                key if not (env_name and env_name in env) else f"{key} (from {env_name})",
                problems,
            )
            changes[name] = value
    try:
        return dataclasses.replace(base, **changes)
    except (TypeError, ValueError) as exc:  # pragma: no cover - guarded by the casts above
        problems.add(prefix.rstrip(".") or "config", str(exc))
        return base


_INVALID: Any = object()


def _is_settings_class(typ: Any) -> TypeGuard[type[Any]]:
    return isinstance(typ, type) and dataclasses.is_dataclass(typ)


def _type_name(typ: Any) -> str:
    origin = typing.get_origin(typ)
    if origin is tuple:
        (inner, _) = typing.get_args(typ)
        return f"a list of {_type_name(inner)}s" if inner is not Any else "a list"
    if origin is dict:
        return "a mapping"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        typ, getattr(typ, "__name__", str(typ))
    )


def _cast_yaml(
    raw: Any,
    typ: Any,
    f: dataclasses.Field[Any],
    key: str,
    env: Mapping[str, str],
    problems: _Problems,
) -> Any:
    origin = typing.get_origin(typ)
    if origin is tuple:
        (inner, _) = typing.get_args(typ)
        if raw is None:
            return ()
        if isinstance(raw, str) and inner is str:
            return _split_list(raw)
        if not isinstance(raw, list):
            problems.add(key, f"must be {_type_name(typ)}, got {_describe(raw)}")
            return _INVALID
        items = []
        for i, item in enumerate(raw):
            item_key = f"{key}[{i}]"
            if _is_settings_class(inner):
                items.append(_build_item(inner, item, item_key, env, problems))
            else:
                value = _cast_yaml(item, inner, f, item_key, env, problems)
                if value is not _INVALID:
                    items.append(value)
        return tuple(items)
    if origin is dict:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            problems.add(key, f"must be a mapping, got {_describe(raw)}")
            return _INVALID
        return dict(raw)
    if typ is bool:
        if isinstance(raw, bool):
            return raw
    elif typ is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and f.metadata.get("auto_cpu"):
            return _cast_env(raw, typ, f, key, problems)
    elif typ is float:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, str) and f.metadata.get("duration"):
            return _cast_env(raw, typ, f, key, problems)
    elif typ is str:
        if isinstance(raw, str):
            return raw
        if raw is None:
            return ""
    problems.add(key, f"must be {_type_name(typ)}, got {_describe(raw)}")
    return _INVALID


def _build_item(
    cls: type[Any], raw: Any, key: str, env: Mapping[str, str], problems: _Problems
) -> Any:
    before = len(problems.items)
    item = _build(cls, cls(), raw, f"{key}.", {}, problems)
    if len(problems.items) == before and isinstance(raw, dict):
        for f in dataclasses.fields(cls):
            if f.metadata.get("required") and f.name not in raw:
                problems.add(f"{key}.{f.name}", "is required")
    return item


def _cast_env(raw: str, typ: Any, f: dataclasses.Field[Any], key: str, problems: _Problems) -> Any:
    secret = bool(f.metadata.get("secret"))
    shown = "<redacted>" if secret else repr(raw)
    origin = typing.get_origin(typ)
    if origin is tuple:
        return _split_list(raw)
    if typ is bool:
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        problems.add(key, f"must be a boolean (true/false), got {shown}")
        return _INVALID
    if typ is int:
        auto = bool(f.metadata.get("auto_cpu"))
        if auto and raw.strip().lower() == "auto":
            return os.cpu_count() or 1
        try:
            return int(raw.strip())
        except ValueError:
            problems.add(key, f"must be an integer{' or auto' if auto else ''}, got {shown}")
            return _INVALID
    if typ is float:
        if f.metadata.get("duration"):
            match = _DURATION.match(raw)
            if match:
                number = float(match.group(1))
                return number / 1000.0 if match.group(2) == "ms" else number
            problems.add(key, f"must be a duration in seconds or like '200ms', got {shown}")
            return _INVALID
        try:
            return float(raw.strip())
        except ValueError:
            problems.add(key, f"must be a number, got {shown}")
            return _INVALID
    return raw


def _split_list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _validate(value: Any, f: dataclasses.Field[Any], key: str, problems: _Problems) -> None:
    meta = f.metadata
    choices = meta.get("choices")
    if choices is not None:
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if v not in choices:
                problems.add(key, f"must be one of {', '.join(choices)}; got {v!r}")
    if "min" in meta and isinstance(value, int | float) and value < meta["min"]:
        problems.add(key, f"must be at least {meta['min']}, got {value}")
    if "max" in meta and isinstance(value, int | float) and value > meta["max"]:
        problems.add(key, f"must be at most {meta['max']}, got {value}")
    if meta.get("duration") and "min" not in meta and isinstance(value, float) and value <= 0:
        problems.add(key, f"must be a positive duration, got {value}")
    if meta.get("nonempty") and value == "":
        problems.add(key, "must not be empty")
    if meta.get("url"):
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.add(key, f"must be an http(s) URL with a host, got {value!r}")
    if meta.get("cidr"):
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                problems.add(key, f"not an IPv4/IPv6 address or CIDR: {item!r}")
    if meta.get("header") and value and (not _HEADER.match(value) or _is_authorization(value)):
        problems.add(key, f"must be a header name other than Authorization, got {value!r}")
    if meta.get("hostport"):
        for item in value:
            host, sep, port = item.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                problems.add(key, f"must be host:port, got {item!r}")


def _check_combinations(settings: Settings, env: Mapping[str, str], problems: _Problems) -> None:
    """Settings that are valid alone but contradict each other; named by the key that asks."""
    server = settings.server
    for have, want, env_name in (
        ("tls_cert_file", "tls_key_file", "PROXY_TLS_CERT_FILE"),
        ("tls_key_file", "tls_cert_file", "PROXY_TLS_KEY_FILE"),
    ):
        if getattr(server, have) and not getattr(server, want):
            key = f"server.{have}"
            if env_name in env:
                key += f" (from {env_name})"
            problems.add(key, f"needs server.{want} too (TLS takes a certificate and its key)")
    if settings.cache.require_redis:
        key = "cache.require_redis"
        if "CACHE_REQUIRE_REDIS" in env:
            key += " (from CACHE_REQUIRE_REDIS)"
        if not settings.cache.enabled:
            problems.add(key, "needs the cache, but cache.enabled is false")
        elif settings.cache.backend == "memory":
            problems.add(key, "needs Redis, but cache.backend is memory")
        if not settings.redis.enabled:
            problems.add(key, "needs Redis, but redis.enabled is false")
    _check_actions(settings, problems)


def _check_actions(settings: Settings, problems: _Problems) -> None:
    """``actions`` of ``pii``/``secrets``: known kinds, known actions; ``restore`` only where
    placeholders come from (``guard.input``) and never for a kind that cannot be restored."""
    for direction in ("input", "output"):
        scanners = getattr(settings.guard, direction)
        for name, known in (("pii", PII_KINDS), ("secrets", SECRET_KINDS)):
            section = getattr(scanners, name)
            prefix = f"guard.{direction}.{name}"
            for kind, action in section.actions.items():
                if kind not in known:
                    suggestion = _closest(str(kind), dict.fromkeys(known))
                    hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
                    problems.add(f"{prefix}.actions.{kind}", f"unknown kind{hint}")
                elif action not in ACTIONS:
                    problems.add(
                        f"{prefix}.actions.{kind}",
                        f"unknown action {action!r}; expected one of: " + ", ".join(ACTIONS),
                    )
            if not section.restore:
                continue
            if direction == "output":
                problems.add(
                    f"{prefix}.restore",
                    "cannot be set on guard.output: placeholders come from the prompt "
                    f"(set guard.input.{name}.restore)",
                )
                continue
            for kind in section.kinds:
                if kind in NOT_RESTORABLE and section.action(kind) == "redact":
                    problems.add(
                        f"{prefix}.restore",
                        f"{kind} cannot be restored (its value is never put back into "
                        f"an answer); set {prefix}.actions.{kind} to block",
                    )


def _is_authorization(name: str) -> bool:
    return name.lower() == "authorization"


def _check_keys(settings: Settings, env: Mapping[str, str], problems: _Problems) -> None:
    """With client keys on, the keys file must exist and be valid (each problem named)."""
    keys = settings.access.keys
    if not keys.enabled:
        return
    key = "access.keys.file" + (" (from ACCESS_KEYS_FILE)" if "ACCESS_KEYS_FILE" in env else "")
    if not keys.file:
        problems.add(key, "is required when access.keys.enabled is true")
        return
    from guard_proxy.keys.store import KeysFileError, load_keys_file

    try:
        load_keys_file(keys.file)
    except KeysFileError as exc:
        for where, what in exc.problems:
            problems.add(key, f"{where}: {what}")


def _read_secret_files(settings: Settings, problems: _Problems) -> Settings:
    """Replace secrets whose ``*_file`` field is set by the file's content (newline stripped)."""
    sections: dict[str, Any] = {}
    for section_field in dataclasses.fields(settings):
        section: Any = getattr(settings, section_field.name)
        if not (dataclasses.is_dataclass(section) and not isinstance(section, type)):
            continue
        changes = {}
        for f in dataclasses.fields(section):
            target = f.metadata.get("secret_file")
            path = getattr(section, f.name)
            if not target or not path:
                continue
            key = f"{section_field.name}.{f.name}"
            try:
                changes[target] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                problems.add(key, f"cannot read secret file {path}: {exc.strerror}")
        if changes:
            sections[section_field.name] = dataclasses.replace(section, **changes)
    return dataclasses.replace(settings, **sections) if sections else settings


def _describe(raw: Any) -> str:
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return "a boolean"
    if isinstance(raw, int):
        return "an integer"
    if isinstance(raw, float):
        return "a number"
    if isinstance(raw, str):
        return "a string"
    if isinstance(raw, list):
        return "a list"
    if isinstance(raw, dict):
        return "a mapping"
    return type(raw).__name__


def _closest(key: str, fields: Mapping[str, Any]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.7)
    return matches[0] if matches else None

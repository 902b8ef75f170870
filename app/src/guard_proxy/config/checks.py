"""Rules the field types cannot state: settings valid alone that contradict each other, the
keys file, and the secrets held in files. Each returns ``(key, message)`` problems."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from guard_proxy.config.settings import (
    ACTIONS,
    NOT_RESTORABLE,
    PII_KINDS,
    SECRET_KINDS,
    PiiSettings,
    SecretsSettings,
    Settings,
)

Problems = list[tuple[str, str]]


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name ``name`` is most likely a typo of, if any."""
    matches = difflib.get_close_matches(name, list(known), n=1, cutoff=0.7)
    return matches[0] if matches else None


def check_combinations(settings: Settings, env: Mapping[str, str]) -> Problems:
    """Settings that are valid alone but contradict each other; named by the key that asks."""
    problems: Problems = []
    server = settings.server
    for have, want, env_name in (
        ("tls_cert_file", "tls_key_file", "PROXY_TLS_CERT_FILE"),
        ("tls_key_file", "tls_cert_file", "PROXY_TLS_KEY_FILE"),
    ):
        if getattr(server, have) and not getattr(server, want):
            key = f"server.{have}"
            if env_name in env:
                key += f" (from {env_name})"
            problems.append((key, f"needs server.{want} too (TLS takes a certificate and its key)"))
    if settings.cache.require_redis:
        key = "cache.require_redis"
        if "CACHE_REQUIRE_REDIS" in env:
            key += " (from CACHE_REQUIRE_REDIS)"
        if not settings.cache.enabled:
            problems.append((key, "needs the cache, but cache.enabled is false"))
        elif settings.cache.backend == "memory":
            problems.append((key, "needs Redis, but cache.backend is memory"))
        if not settings.redis.enabled:
            problems.append((key, "needs Redis, but redis.enabled is false"))
    return problems + check_actions(settings)


def check_actions(settings: Settings) -> Problems:
    """``actions`` of ``pii``/``secrets``: known kinds, known actions; ``restore`` only where
    placeholders come from (``guard.input``) and never for a kind that cannot be restored."""
    problems: Problems = []
    for direction, scanners in (("input", settings.guard.input), ("output", settings.guard.output)):
        sections: tuple[tuple[str, PiiSettings | SecretsSettings, tuple[str, ...]], ...] = (
            ("pii", scanners.pii, PII_KINDS),
            ("secrets", scanners.secrets, SECRET_KINDS),
        )
        for name, section, known in sections:
            prefix = f"guard.{direction}.{name}"
            for kind, action in section.actions.items():
                if kind not in known:
                    suggestion = closest(kind, known)
                    hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
                    problems.append((f"{prefix}.actions.{kind}", f"unknown kind{hint}"))
                elif action not in ACTIONS:
                    problems.append(
                        (
                            f"{prefix}.actions.{kind}",
                            f"unknown action {action!r}; expected one of: " + ", ".join(ACTIONS),
                        )
                    )
            if not section.restore:
                continue
            if direction == "output":
                problems.append(
                    (
                        f"{prefix}.restore",
                        "cannot be set on guard.output: placeholders come from the prompt "
                        f"(set guard.input.{name}.restore)",
                    )
                )
                continue
            for kind in section.kinds:
                if kind in NOT_RESTORABLE and section.action(kind) == "redact":
                    problems.append(
                        (
                            f"{prefix}.restore",
                            f"{kind} cannot be restored (its value is never put back into "
                            f"an answer); set {prefix}.actions.{kind} to block",
                        )
                    )
    return problems


def check_keys(settings: Settings, env: Mapping[str, str]) -> Problems:
    """With client keys on, the keys file must exist and be valid (each problem named)."""
    keys = settings.access.keys
    if not keys.enabled:
        return []
    key = "access.keys.file" + (" (from ACCESS_KEYS_FILE)" if "ACCESS_KEYS_FILE" in env else "")
    if not keys.file:
        return [(key, "is required when access.keys.enabled is true")]
    from guard_proxy.keys.store import KeysFileError, load_keys_file

    try:
        load_keys_file(keys.file)
    except KeysFileError as exc:
        return [(key, f"{where}: {what}") for where, what in exc.problems]
    return []


def read_secret_files(settings: Settings) -> tuple[Settings, Problems]:
    """``settings`` with each secret whose ``*_file`` field is set replaced by the file's
    content (trailing newline stripped), and the files that could not be read."""
    problems: Problems = []
    sections: dict[str, Any] = {}
    for name in Settings.model_fields:
        section = getattr(settings, name)
        changes: dict[str, str] = {}
        for f in dataclasses.fields(section):
            target, path = f.metadata.get("secret_file"), getattr(section, f.name)
            if not target or not path:
                continue
            try:
                changes[target] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                why = f"cannot read secret file {path}: {exc.strerror}"
                problems.append((f"{name}.{f.name}", why))
        if changes:
            sections[name] = dataclasses.replace(section, **changes)
    return settings.model_copy(update=sections), problems

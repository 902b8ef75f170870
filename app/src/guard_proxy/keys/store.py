"""The keys file: named client keys stored as SHA-256 hashes, with their limits; watched.

Format (YAML; the ``guard_proxy`` role writes it from the vault, hashes only)::

    keys:
      - name: team-a
        sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
        limits: {requests_per_minute: 60, concurrent_streams: 2,
                 tokens_per_minute: 20000, tokens_per_day: 1000000}

A limit left out is no limit; one that is given must be a positive integer. Why plain SHA-256:
client keys are long random secrets (the role refuses fewer than 32 characters), so
inverting a hash costs a brute force of the key space, and a slow password hash (scrypt,
argon2) would only add tens of ms to every request; a keyed hash (HMAC with a pepper) would
add a second secret to every proxy for no gain against such keys. The lookup is a dict
lookup by the presented key's digest, so nothing compares secrets byte by byte.

:class:`KeyStore` re-reads the file when its ``stat`` changes (checked every
``access.keys.reload_interval``, so a replace by rename, an edit in place or a symlink swap
all count); a file that no longer parses keeps the previous keys and is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "LIMIT_NAMES",
    "KeyRecord",
    "KeyStore",
    "KeyTable",
    "KeysFileError",
    "Limits",
    "hash_key",
    "load_keys_file",
    "parse_keys",
]

logger = logging.getLogger("guard_proxy.keys")

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
DIGEST = re.compile(r"^[0-9a-f]{64}$")
LIMIT_NAMES = (
    "requests_per_minute",
    "concurrent_streams",
    "tokens_per_minute",
    "tokens_per_day",
)


class KeysFileError(Exception):
    """The keys file cannot be used; ``problems`` are ``(where, what)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{where}: {what}" for where, what in problems))


@dataclass(frozen=True, slots=True)
class Limits:
    """A key's limits; 0 means no limit."""

    requests_per_minute: int = 0
    concurrent_streams: int = 0
    tokens_per_minute: int = 0
    tokens_per_day: int = 0


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One client key: its name (shown in logs and metrics), digest and limits."""

    name: str
    digest: str
    limits: Limits


def hash_key(secret: str | bytes) -> str:
    """The hex SHA-256 of a key, as the keys file stores it."""
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hashlib.sha256(raw).hexdigest()


class KeyTable:
    """The keys of one version of the file, looked up by the presented key's digest."""

    __slots__ = ("by_digest", "by_name")

    def __init__(self, records: list[KeyRecord]) -> None:
        self.by_digest = {r.digest: r for r in records}
        self.by_name = {r.name: r for r in records}

    def lookup(self, secret: bytes) -> KeyRecord | None:
        """The key whose hash is ``secret``'s, or None."""
        return self.by_digest.get(hashlib.sha256(secret).hexdigest())

    def __len__(self) -> int:
        return len(self.by_digest)


def parse_keys(data: Any) -> KeyTable:
    """Validate the file's parsed YAML; raise :class:`KeysFileError` naming every bad entry."""
    problems: list[tuple[str, str]] = []
    if data is None:
        data = {"keys": []}
    if not isinstance(data, dict) or set(data) - {"keys"}:
        raise KeysFileError([("keys file", "must be a mapping with one key, 'keys'")])
    items = data.get("keys") or []
    if not isinstance(items, list):
        raise KeysFileError([("keys", "must be a list")])
    records: list[KeyRecord] = []
    names: set[str] = set()
    digests: set[str] = set()
    for i, item in enumerate(items):
        where = f"keys[{i}]"
        if not isinstance(item, dict):
            problems.append((where, "must be a mapping with name, sha256 and limits"))
            continue
        for extra in sorted(set(item) - {"name", "sha256", "limits"}, key=str):
            problems.append((f"{where}.{extra}", "unknown key"))
        name = item.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            problems.append((f"{where}.name", "must be 1-63 of a-z 0-9 _ . - (starting a-z0-9)"))
            name = None
        elif name in names:
            problems.append((f"{where}.name", f"{name!r} appears twice"))
        else:
            names.add(name)
            where = f"keys[{i}] ({name})"
        digest = item.get("sha256")
        if not isinstance(digest, str) or not DIGEST.match(digest):
            problems.append((f"{where}.sha256", "must be 64 lower-case hex digits (SHA-256)"))
            digest = None
        elif digest in digests:
            problems.append((f"{where}.sha256", "the same key is given twice"))
        else:
            digests.add(digest)
        limits = _limits(item.get("limits"), f"{where}.limits", problems)
        if name and digest and limits:
            records.append(KeyRecord(name, digest, limits))
    if problems:
        raise KeysFileError(problems)
    return KeyTable(records)


def _limits(raw: Any, where: str, problems: list[tuple[str, str]]) -> Limits | None:
    if raw is None:
        return Limits()
    if not isinstance(raw, dict):
        problems.append((where, "must be a mapping"))
        return None
    values: dict[str, int] = {}
    ok = True
    for key, value in raw.items():
        if key not in LIMIT_NAMES:
            problems.append((f"{where}.{key}", f"unknown limit (one of {', '.join(LIMIT_NAMES)})"))
            ok = False
        elif value is None:
            continue
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append((f"{where}.{key}", f"must be a positive integer, got {value!r}"))
            ok = False
        else:
            values[key] = value
    return Limits(**values) if ok else None


def load_keys_file(path: str | os.PathLike[str]) -> KeyTable:
    """Read and validate the keys file at ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise KeysFileError([("keys file", f"cannot read {path}: {exc.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise KeysFileError([("keys file", f"invalid YAML in {path}")]) from None
    return parse_keys(data)


def _signature(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


class KeyStore:
    """The current :class:`KeyTable`, re-read from ``path`` when the file changes.

    ``table`` is replaced whole, so a request sees one version of the file. A missing or
    invalid file on reload keeps the previous keys (logged as an error, counted in
    ``reload_errors``); a missing key is revoked by the next good version of the file.
    """

    def __init__(self, path: str, interval: float) -> None:
        self.path = path
        self.interval = interval
        self.table = load_keys_file(path)
        self.signature = _signature(path)
        self.reloads = 0
        self.reload_errors = 0
        self._task: asyncio.Task[None] | None = None

    def check(self) -> bool:
        """Re-read the file if its stat changed; True when a new version was loaded."""
        signature = _signature(self.path)
        if signature == self.signature:
            return False
        self.signature = signature
        try:
            table = load_keys_file(self.path)
        except KeysFileError as exc:
            self.reload_errors += 1
            logger.error("keys: %s; keeping the previous %d keys", exc, len(self.table))
            return False
        before = set(self.table.by_name)
        self.table = table
        self.reloads += 1
        after = set(table.by_name)
        logger.warning(
            "keys: reloaded %s (%d keys; added %s; removed %s)",
            self.path,
            len(table),
            ", ".join(sorted(after - before)) or "none",
            ", ".join(sorted(before - after)) or "none",
        )
        return True

    def start(self) -> None:
        """Watch the file in the background until :meth:`aclose`."""
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="guard-keys-watch")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.check()
            except Exception:  # never let the watcher die
                logger.exception("keys: checking %s failed", self.path)

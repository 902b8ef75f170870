"""JSON-lines logging on stdout (journald stores each line as one entry).

Every record becomes ``{"ts", "level", "logger", "msg", ...fields}``; structured fields are
passed as ``extra={"fields": {...}}``. Nothing here ever formats prompt or answer text: callers
pass only routes, statuses, counts and scanner names.

Under systemd with stdout on the journal (``$JOURNAL_STREAM`` names stdout's device and
inode), each line starts with its syslog priority, ``<6>`` for info, ``<4>`` for a warning,
which journald strips and stores as the entry's priority: ``journalctl -p warning`` then shows
warnings and errors only. The JSON after it is unchanged; elsewhere nothing is prefixed.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import orjson

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


# Python level -> syslog priority (sd-daemon(3) prefixes): debug 7, info 6, warning 4,
# error 3, critical 2. Levels in between take the priority of the level below them.
_PRIORITIES = {
    logging.DEBUG: "<7>",
    logging.INFO: "<6>",
    logging.WARNING: "<4>",
    logging.ERROR: "<3>",
    logging.CRITICAL: "<2>",
}


def _priority(levelno: int) -> str:
    prefix = "<7>"
    for level, text in sorted(_PRIORITIES.items()):
        if levelno >= level:
            prefix = text
    return prefix


def stdout_is_journal(environ: dict[str, str] | None = None) -> bool:
    """Whether stdout is the journal stream systemd named in ``$JOURNAL_STREAM`` (dev:inode)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return st.st_dev == int(device) and st.st_ino == int(inode)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object on one line."""

    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # one strftime per second, not per line
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        ts = self._stamp
        data: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            data.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            data["exc_type"] = record.exc_info[0].__name__
            if record.levelno <= logging.DEBUG or record.levelno >= logging.ERROR:
                data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


class JournalJsonFormatter(JsonFormatter):
    """:class:`JsonFormatter` with the ``<N>`` syslog priority prefix journald reads."""

    def __init__(self) -> None:
        super().__init__()
        self._prefixes: dict[int, str] = dict(_PRIORITIES)

    def format(self, record: logging.LogRecord) -> str:
        prefix = self._prefixes.get(record.levelno)
        if prefix is None:
            prefix = self._prefixes[record.levelno] = _priority(record.levelno)
        return prefix + super().format(record)


def setup_logging(level: str = "info", environ: dict[str, str] | None = None) -> None:
    """Send every logger (ours and uvicorn's) to stdout as JSON lines at ``level``.

    With stdout on the journal (see :func:`stdout_is_journal`) each line gets its priority.
    """
    # The JSON lines carry no caller, thread or process: don't look them up for every record
    # (the logging HOWTO's "Optimization" switches).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stdout)
    journal = stdout_is_journal(environ)
    handler.setFormatter(JournalJsonFormatter() if journal else JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS.get(level, logging.INFO))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # httpx logs every request at INFO, and redis-py may log connection details: keep quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)

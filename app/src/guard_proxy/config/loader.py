"""Build :class:`Settings` with pydantic-settings from the environment, one YAML file and the
defaults (env > YAML > defaults), or raise :class:`ConfigError` naming every bad key.

pydantic checks every value against its field's type; its errors are reworded here into one
``(key, message)`` problem each, the key dotted (``guard.plugins[0].path``) and followed by
the variable when one set it. A secret's value never appears in a message.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import PydanticBaseSettingsSource
from pydantic_settings.sources import DefaultSettingsSource

from guard_proxy.config.checks import check_combinations, check_keys, closest, read_secret_files
from guard_proxy.config.settings import Settings
from guard_proxy.config.sources import EnvironmentSource, YamlFileSource
from guard_proxy.exceptions import ConfigError

CONFIG_ENV = "GUARD_PROXY_CONFIG"


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load and validate the configuration, or raise :class:`ConfigError` naming every bad key.

    ``path`` defaults to ``$GUARD_PROXY_CONFIG``; with neither, only defaults and env apply.
    """
    env = os.environ if environ is None else environ
    source = path if path is not None else env.get(CONFIG_ENV) or None
    sources: list[PydanticBaseSettingsSource] = [EnvironmentSource(Settings, env)]
    if source is not None:
        sources.append(YamlFileSource(Settings, Path(source)))
    sources.append(DefaultSettingsSource(Settings))
    try:
        settings = Settings(_build_sources=(tuple(sources), {}))
    except ValidationError as exc:
        # Not chained: pydantic's own text carries the input values, secrets among them.
        raise ConfigError([_problem(error, env) for error in exc.errors()]) from None
    problems = check_combinations(settings, env) + check_keys(settings, env)
    if not problems:
        settings, problems = read_secret_files(settings)
    if problems:
        raise ConfigError(problems)
    return settings


def _problem(error: ErrorDetails, env: Mapping[str, str]) -> tuple[str, str]:
    loc = error["loc"]
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    known, spec = _locate(loc)
    env_name = spec.metadata.get("env") if spec is not None else None
    if env_name and env_name in env:
        key += f" (from {env_name})"
    secret = spec is not None and bool(spec.metadata.get("secret"))
    return key.lstrip(".") or "config", _message(error, secret, known)


def _locate(
    loc: tuple[int | str, ...],
) -> tuple[list[str], dataclasses.Field[object] | None]:
    """The field names known where ``loc`` ends, and the settings field it names (the last
    named one: ``guard.plugins[0]`` names ``plugins``, ``...actions.email`` names ``actions``)."""
    known: list[str] = list(Settings.model_fields)
    spec: dataclasses.Field[object] | None = None
    at: object = None
    for i, part in enumerate(loc):
        if i == 0:
            if part not in Settings.model_fields:
                break
            at = Settings.model_fields[str(part)].annotation
            continue
        if isinstance(part, int):
            at = next(iter(typing.get_args(at)), None)
            continue
        if not (isinstance(at, type) and dataclasses.is_dataclass(at)):
            break
        fields = {f.name: f for f in dataclasses.fields(at)}
        known = list(fields)
        if part not in fields:
            break
        spec = fields[part]
        at = typing.get_type_hints(at)[part]
    return known, spec


def _message(error: ErrorDetails, secret: bool, known: list[str]) -> str:
    kind, value, ctx = error["type"], error["input"], error.get("ctx", {})
    if not isinstance(value, str):
        got = shown = _describe(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            shown = str(value)  # a bound's message shows the number
    else:
        got = "<redacted>" if secret else repr(value)
        shown = "<redacted>" if secret else value
    if kind in ("extra_forbidden", "unexpected_keyword_argument", "invalid_key"):
        suggestion = closest(str(error["loc"][-1]), known)
        return "unknown key" + (f" (did you mean {suggestion!r}?)" if suggestion else "")
    if kind in ("missing", "missing_keyword_argument"):
        return "is required"
    if kind == "value_error":
        return str(ctx["error"])
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}, got {shown}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}, got {shown}"
    if kind == "greater_than":  # only durations have an exclusive bound (> 0)
        return f"must be a positive duration, got {shown}"
    if kind == "finite_number":
        return "must be a finite number"
    if kind in ("string_too_short", "too_short"):
        return "must not be empty"
    for kinds, expected in _EXPECTED:
        if kind in kinds:
            return f"must be {expected}, got {got}"
    return error["msg"]


_EXPECTED = (
    (("bool_type", "bool_parsing"), "a boolean (true/false)"),
    (("int_type", "int_parsing", "int_from_float", "int_parsing_size"), "an integer"),
    (("float_type", "float_parsing"), "a number"),
    (("string_type",), "a string"),
    (("tuple_type", "list_type", "iterable_type"), "a list"),
    (("dict_type", "dataclass_type", "dataclass_exact_type", "model_type"), "a mapping"),
)


def _describe(value: object) -> str:
    if value is None:
        return "null"
    for types, name in (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (list | tuple, "a list"),
        (dict, "a mapping"),
    ):
        if isinstance(value, types):
            return name
    return type(value).__name__

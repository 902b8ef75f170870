"""The pydantic-settings sources of one load: the documented environment variables and one
YAML file. Both yield raw values by section; pydantic types and checks them afterwards."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, YamlConfigSettingsSource

from guard_proxy.exceptions import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def env_variables(section: DataclassInstance, environ: Mapping[str, str]) -> dict[str, Any]:
    """The fields of ``section`` (a settings dataclass) set in ``environ``, by name; nested
    sections (the fields whose default is one) as mappings. A field's variable is its ``env``
    metadata."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(section):
        if dataclasses.is_dataclass(f.default) and not isinstance(f.default, type):
            nested = env_variables(f.default, environ)
            if nested:
                values[f.name] = nested
        elif (name := f.metadata.get("env")) and name in environ:
            values[f.name] = environ[name]
    return values


class EnvironmentSource(PydanticBaseSettingsSource):
    """The documented environment variables (``REDIS_HOST`` -> ``redis.host``), read from
    ``environ`` rather than the process environment so that a load can be given its own."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.values: dict[str, Any] = {}
        for name, info in settings_cls.model_fields.items():
            nested = env_variables(info.default, environ)
            if nested:
                self.values[name] = nested

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: :meth:`__call__` returns every section at once."""
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.values


class YamlFileSource(YamlConfigSettingsSource):
    """One YAML file that must exist, parse and hold a mapping of sections; anything else is
    a :class:`ConfigError` on the key ``config`` (the library's source skips a missing file)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        if not path.is_file():
            raise ConfigError([("config", f"file not found: {path}")])
        super().__init__(settings_cls, yaml_file=path)

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        try:
            text = file_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([("config", f"cannot read {file_path}: {exc.strerror}")]) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError([("config", f"invalid YAML in {file_path}{where}")]) from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError([("config", "the file must hold a mapping of sections")])
        if odd := [(str(key), "unknown key") for key in data if not isinstance(key, str)]:
            raise ConfigError(odd)
        return data

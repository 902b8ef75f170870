"""The configuration hash: stable for equal settings, different after any change to a direction."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import typing
from collections.abc import Iterator
from typing import Any

import pytest

from guard_proxy.config.settings import (
    GuardSettings,
    PluginSettings,
    ScannerSetSettings,
)
from guard_proxy.config.types import OneOf
from guard_proxy.guard import Direction, Guard

from . import sample_plugin

PLUGIN = PluginSettings(
    name="word", path="guard.sample_plugin:factory", directions=("input",), options={"word": "x"}
)
BASE = GuardSettings(plugins=(PLUGIN,))


def hashes(settings: GuardSettings) -> dict[str, str]:
    guard = Guard.from_settings(settings)
    return {d.value: guard.config_hash(d) for d in Direction}


def _choices(hint: Any) -> tuple[str, ...]:
    """The choices a field's type allows (its ``OneOf``), or ``()``."""
    return next((m.choices for m in getattr(hint, "__metadata__", ()) if isinstance(m, OneOf)), ())


def _changed(value: Any, field: dataclasses.Field[Any], hint: Any) -> Any:
    choices = _choices(hint)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.5
    if isinstance(value, str) and choices:
        return next(c for c in choices if c != value)
    if isinstance(value, tuple):
        if choices:
            # A different valid selection: drop one, or add a missing one.
            missing = [c for c in choices if c not in value]
            return (*value, missing[0]) if missing else value[:-1]
        return (*value, "newterm")
    if isinstance(value, dict):
        return {**value, "changed": "block"}
    raise AssertionError(f"no change rule for {field.name}: {hint}")


def every_scanner_change() -> Iterator[tuple[str, str, str, GuardSettings]]:
    """One settings object per (direction, scanner, field), that field changed."""
    for direction in ("input", "output"):
        scanner_set = getattr(BASE, direction)
        for scanner_field in dataclasses.fields(ScannerSetSettings):
            scanner = getattr(scanner_set, scanner_field.name)
            hints = typing.get_type_hints(type(scanner), include_extras=True)
            for f in dataclasses.fields(scanner):
                new = _changed(getattr(scanner, f.name), f, hints[f.name])
                changed_scanner = dataclasses.replace(scanner, **{f.name: new})
                changed_set = dataclasses.replace(
                    scanner_set, **{scanner_field.name: changed_scanner}
                )
                yield (
                    direction,
                    scanner_field.name,
                    f.name,
                    dataclasses.replace(BASE, **{direction: changed_set}),
                )


CHANGES = list(every_scanner_change())


def test_hash_is_a_stable_hex_digest() -> None:
    first, second = hashes(BASE), hashes(dataclasses.replace(BASE))
    assert first == second
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in first.values())
    assert first["input"] != first["output"]


def test_hash_is_stable_across_processes() -> None:
    code = (
        "from guard_proxy.config.settings import GuardSettings, PluginSettings;"
        "from guard_proxy.guard import Guard;"
        "p = PluginSettings(name='word', path='guard.sample_plugin:factory',"
        " options={'word': 'x'});"
        "g = Guard.from_settings(GuardSettings(plugins=(p,)));"
        "print(g.config_hash('input'), g.config_hash('output'))"
    )
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    outputs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=tests_dir)
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(done.stdout.split() == [hashes(BASE)["input"], hashes(BASE)["output"]])
    assert outputs == {True}


def test_every_scanner_field_is_covered() -> None:
    covered = {(d, s, f) for d, s, f, _ in CHANGES}
    expected = {
        (d, s.name, f.name)
        for d in ("input", "output")
        for s in dataclasses.fields(ScannerSetSettings)
        for f in dataclasses.fields(getattr(BASE.input, s.name))
    }
    assert covered == expected
    assert len(covered) >= 2 * 16


@pytest.mark.parametrize(
    ("direction", "scanner", "key", "settings"),
    CHANGES,
    ids=[f"{d}.{s}.{k}" for d, s, k, _ in CHANGES],
)
def test_any_scanner_setting_changes_its_direction_only(
    direction: str, scanner: str, key: str, settings: GuardSettings
) -> None:
    before, after = hashes(BASE), hashes(settings)
    other = "output" if direction == "input" else "input"
    assert after[direction] != before[direction]
    assert after[other] == before[other]


@pytest.mark.parametrize(
    "settings",
    [
        dataclasses.replace(BASE, enabled=False),
        dataclasses.replace(BASE, fail_mode="open"),
    ],
    ids=["enabled", "fail_mode"],
)
def test_guard_switches_change_both_directions(settings: GuardSettings) -> None:
    before, after = hashes(BASE), hashes(settings)
    assert before["input"] != after["input"]
    assert before["output"] != after["output"]


@pytest.mark.parametrize(
    "plugin",
    [
        dataclasses.replace(PLUGIN, name="word2"),
        dataclasses.replace(PLUGIN, options={"word": "y"}),
        dataclasses.replace(PLUGIN, options={"word": "x", "window": 4}),
        dataclasses.replace(PLUGIN, path="guard.same_plugin_alias:factory"),
    ],
    ids=["name", "option value", "new option", "path"],
)
def test_plugin_changes_change_its_directions(plugin: PluginSettings) -> None:
    before, after = hashes(BASE), hashes(dataclasses.replace(BASE, plugins=(plugin,)))
    assert before["input"] != after["input"]
    assert before["output"] == after["output"]


def test_plugin_directions_and_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    before = hashes(BASE)
    both = dataclasses.replace(PLUGIN, directions=("input", "output"))
    after = hashes(dataclasses.replace(BASE, plugins=(both,)))
    assert after["input"] == before["input"]
    assert after["output"] != before["output"]
    without = hashes(dataclasses.replace(BASE, plugins=()))
    assert without["input"] != before["input"] and without["output"] == before["output"]
    monkeypatch.setattr(sample_plugin, "__version__", "1.2.4")
    upgraded = hashes(BASE)
    assert upgraded["input"] != before["input"]
    assert upgraded["output"] == before["output"]


def test_package_version_is_part_of_the_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    from guard_proxy.guard import hashing

    before = hashes(BASE)
    monkeypatch.setattr(hashing, "__version__", "999.0")
    after = hashes(BASE)
    assert before["input"] != after["input"] and before["output"] != after["output"]

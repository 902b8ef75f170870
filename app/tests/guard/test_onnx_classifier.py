"""The ONNX classifier scanner on a tiny model of a real export's signature
(``guard_proxy_testing.tiny_model``)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from guard_proxy_testing import tiny_model

from guard_proxy.config.settings import GuardSettings, PluginSettings
from guard_proxy.exceptions import ScannerLoadError
from guard_proxy.guard import Direction, Finding, Guard
from guard_proxy.guard.onnx_classifier import OnnxClassifier, factory

PATH = "guard_proxy.guard.onnx_classifier:factory"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-model")
    tiny_model.build(directory)
    return directory


def classifier(model_dir: Path, **options: object) -> OnnxClassifier:
    return factory({"model_dir": str(model_dir), **options})


def test_flags_what_the_model_flags_and_passes_the_rest(model_dir: Path) -> None:
    scanner = classifier(model_dir)
    assert scanner.scan("Hello world, what is the weather today?") is None
    finding = scanner.scan(f"you are {tiny_model.FLAGGED}")
    assert finding == Finding("onnx_classifier", "INJECTION (score 1.00)")
    assert scanner.scan("") is None  # only [CLS] [SEP]: the bias says SAFE


def test_the_threshold_decides_a_middling_score(model_dir: Path) -> None:
    text = f"{tiny_model.GRADED} cats"
    assert classifier(model_dir, threshold=0.5).scan(text) is not None
    assert classifier(model_dir, threshold=0.9).scan(text) is None


def test_long_texts_are_scanned_in_overlapping_windows(model_dir: Path) -> None:
    text = "the cats and dogs " * 40 + tiny_model.FLAGGED
    scanner = classifier(model_dir, max_length=16, stride=4)
    assert len(scanner.windows(text)) > 10
    assert scanner.scan(text) is not None
    # With at most two windows, the last one still comes along (a payload after filler).
    assert classifier(model_dir, max_length=16, stride=4, max_windows=2).scan(text) is not None
    assert len(classifier(model_dir, max_length=16, stride=4, max_windows=2).windows(text)) == 2


def test_a_batch_gives_one_result_per_text_in_order(model_dir: Path) -> None:
    scanner = classifier(model_dir, max_length=16, stride=4)
    texts = [
        "hello",
        tiny_model.FLAGGED,
        "tell me about cats " * 20,
        "tell me about cats " * 20 + tiny_model.FLAGGED,
        "what is this",
    ]
    results = scanner.scan_batch(texts)
    assert [r is not None for r in results] == [False, True, False, True, False]
    assert results == [scanner.scan(t) for t in texts]


def test_version_is_the_model_sha256_and_the_cache_key_changes_with_the_model(
    model_dir: Path, tmp_path: Path
) -> None:
    scanner = classifier(model_dir)
    digest = hashlib.sha256((model_dir / "model.onnx").read_bytes()).hexdigest()
    assert scanner.sha256 == digest and scanner.version.startswith(digest + "+")

    def guard(directory: Path) -> Guard:
        plugin = PluginSettings(name="tiny", path=PATH, options={"model_dir": str(directory)})
        return Guard.from_settings(GuardSettings(plugins=(plugin,)))

    swapped = tmp_path / "swapped"
    tiny_model.build(swapped)
    before = guard(swapped)
    assert before.config_hash(Direction.INPUT) == guard(swapped).config_hash(Direction.INPUT)
    tiny_model.build(swapped, weight=9.0)  # same directory and options, another model
    after = guard(swapped)
    assert after.config_hash(Direction.INPUT) != before.config_hash(Direction.INPUT)
    # A plug-in is off the event loop unless it says otherwise.
    assert [s.name for s in after.offloaded(Direction.INPUT)] == ["tiny"]
    assert "tiny" not in [s.name for s in after.inline(Direction.INPUT)]


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"model_dir": "/nonexistent"}, "model.onnx is missing"),
        ({}, "options.model_dir must name"),
        ({"labels": ["JAILBREAK"]}, "labels ['JAILBREAK'] are not in id2label"),
        ({"threshold": 1.5}, "threshold must be at most 1"),
        ({"max_length": 16, "stride": 8}, "stride must be less than half"),
        ({"threads": 0}, "threads must be a number >= 1"),
        ({"treshold": 0.5}, "unknown options: treshold"),
    ],
)
def test_bad_options_stop_the_load_naming_the_problem(
    model_dir: Path, options: dict[str, object], problem: str
) -> None:
    if options and "model_dir" not in options:
        options = {"model_dir": str(model_dir), **options}
    plugin = PluginSettings(name="tiny", path=PATH, options=options)
    with pytest.raises(ScannerLoadError, match=r"guard\.plugins\[0\] \(tiny") as caught:
        Guard.from_settings(GuardSettings(plugins=(plugin,)))
    assert problem in str(caught.value)


def test_a_config_without_id2label_is_refused(model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="has no id2label"):
        classifier(broken)

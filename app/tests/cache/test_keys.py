"""Key format: prefix, direction, and a digest over the config hash and the text."""

from __future__ import annotations

import hashlib

from guard_proxy.cache import make_key
from guard_proxy.cache.keys import glob_escape


def test_format() -> None:
    key = make_key("guard:", "input", "cfg1", "hello")
    expected = hashlib.sha256(b"cfg1\0hello").hexdigest()
    assert key == f"guard:input:{expected}"


def test_key_changes_with_config_hash_direction_and_text() -> None:
    base = make_key("guard:", "input", "cfg1", "hello")
    assert make_key("guard:", "input", "cfg2", "hello") != base
    assert make_key("guard:", "output", "cfg1", "hello") != base
    assert make_key("guard:", "input", "cfg1", "hello!") != base
    assert make_key("other:", "input", "cfg1", "hello").startswith("other:input:")


def test_separator_prevents_ambiguity() -> None:
    # "ab" + "c" and "a" + "bc" must not collide.
    assert make_key("p:", "input", "ab", "c") != make_key("p:", "input", "a", "bc")


def test_text_never_in_key() -> None:
    text = "my secret prompt"
    assert text not in make_key("guard:", "input", "cfg", text)


def test_unicode_and_lone_surrogates_do_not_raise() -> None:
    assert make_key("g:", "input", "c", "caf\u00e9 \ud800").startswith("g:input:")


def test_glob_escape() -> None:
    assert glob_escape("guard:") == "guard:"
    assert glob_escape("a*b?c[d]e\\") == "a\\*b\\?c\\[d\\]e\\\\"

"""Redaction: values of the redacted kinds masked by placeholders on the way to the model
(:mod:`.vault`), found by :mod:`.find`, and put back on the way out (:mod:`.restore`)."""

from guard_proxy.guard.redaction.find import Finder, label
from guard_proxy.guard.redaction.restore import Edit, Rewriter, apply, masked, rewrite
from guard_proxy.guard.redaction.vault import Vault
from guard_proxy.guard.types import Span

__all__ = ["Edit", "Finder", "Rewriter", "Span", "Vault", "apply", "label", "masked", "rewrite"]

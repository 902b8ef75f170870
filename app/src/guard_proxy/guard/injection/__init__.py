"""A rule engine for prompt injections and jailbreaks: normalise, match families of intent,
decode obvious encodings, and block on evidence (see :class:`~.engine.Engine`)."""

from guard_proxy.guard.injection.engine import Engine, Hit
from guard_proxy.guard.injection.rules import FAMILIES

__all__ = ["FAMILIES", "Engine", "Hit"]

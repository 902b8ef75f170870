"""Moved to :mod:`guard_proxy_testing.notify`; this name stays for the test modules that still
import it (see :mod:`support`)."""

from guard_proxy_testing.notify import *  # noqa: F403

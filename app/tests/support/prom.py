"""Moved to :mod:`guard_proxy_testing.prom`; this name stays for the test modules that still
import it (see :mod:`support`)."""

from guard_proxy_testing.prom import *  # noqa: F403

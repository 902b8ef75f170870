"""Moved to :mod:`guard_proxy_testing.processes`; this name stays for the test modules that still
import it (see :mod:`support`)."""

from guard_proxy_testing.processes import *  # noqa: F403

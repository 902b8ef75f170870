"""Moved to :mod:`guard_proxy_testing.proxies`; this name stays for the test modules that still
import it (see :mod:`support`)."""

from guard_proxy_testing.proxies import *  # noqa: F403

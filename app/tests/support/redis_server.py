"""Moved to :mod:`guard_proxy_testing.redis_server`; this name stays for the test modules that still
import it (see :mod:`support`)."""

from guard_proxy_testing.redis_server import *  # noqa: F403

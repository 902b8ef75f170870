"""The verdict cache: :class:`GuardCache` over Redis and memory, and the key format."""

from guard_proxy.cache.facade import GuardCache
from guard_proxy.cache.keys import make_key

__all__ = ["GuardCache", "make_key"]

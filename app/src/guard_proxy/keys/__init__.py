"""Client keys, per-key limits shared through Redis, and per-key usage (``access.keys``).

* :mod:`.store` - the keys file (names, SHA-256 hashes, limits), validated and watched.
* :mod:`.credentials` - the key a request presents (``Authorization: Bearer`` or a header).
* :mod:`.limits` - requests, concurrent streams and tokens per key: Redis (atomic Lua),
  per-process counting while Redis is away.
* :mod:`.tokens` - the model tokens an answer reports (Ollama's counts, OpenAI's ``usage``).
* :mod:`.usage` - the per-key counters of ``/metrics``.
* :mod:`.middleware` - the ASGI layer that puts them on the request path.
"""

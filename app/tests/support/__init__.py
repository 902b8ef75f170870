"""Test support shared by the cache, proxy and ops tests, and by the bench.

Import as ``support.*``: ``app/tests`` has no ``__init__.py``, so pytest puts it on
``sys.path`` for every test package below it (each of which has an ``__init__.py``).
In a conftest: ``from support.fixtures import redis_server, redis_server_factory``.

Conftests hold fixtures only; the helpers tests import live here (``caches``, ``cli``,
``proxies``, ...). ``net`` and ``redis_server`` need no pytest: ``bench/procs.py`` and
``monitoring/render`` put ``app/tests`` on ``sys.path`` and use them (``bench/fake_upstream.py``
likewise takes its ASGI plumbing from ``fake_ollama``).
"""

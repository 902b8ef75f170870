"""Test support shared by the cache, proxy and ops tests.

Import as ``support.*``: ``app/tests`` has no ``__init__.py``, so pytest puts it on
``sys.path`` for every test package below it (each of which has an ``__init__.py``).
In a conftest: ``from support.fixtures import redis_server, redis_server_factory``.
"""

"""The harness shared by the app tests (``app/tests``), the benchmarks (``bench/``) and
``monitoring/render``: real processes and sockets, loopback HTTP, fixtures.

An installed package (``app/testing``, editable in ``.venv`` through
``scripts/setup-app-venv.sh``), so every user imports it by name, no ``sys.path`` edits.
In a conftest: ``from guard_proxy_testing.fixtures import redis_server, redis_server_factory``.

Conftests hold fixtures only; the helpers tests import live here (``caches``, ``cli``,
``proxies``, ...). ``net``, ``processes``, ``redis_server`` and ``fake_ollama`` need no pytest.
"""

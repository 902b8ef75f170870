from support.fixtures import redis_server, redis_server_factory  # noqa: F401

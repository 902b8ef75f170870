"""The settings loader: precedence, type checks, unknown keys, secrets and redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard_proxy.config import DEFAULT_SETTINGS, REDACTED, load_settings, redacted
from guard_proxy.exceptions import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> dict[str, str]:
    return dict(exc.value.problems)


def test_defaults_without_file_or_env() -> None:
    settings = load_settings(environ={})
    assert settings == DEFAULT_SETTINGS
    assert settings.cache.backend == "auto"
    assert settings.cache.ttl == 3600
    assert settings.cache.max_size == 1000
    assert settings.redis.max_connections == 50
    assert settings.redis.socket_timeout < 1.0
    assert settings.redis.socket_connect_timeout < 1.0
    assert settings.guard.fail_mode == "closed"


def test_env_overrides_yaml_overrides_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "server: {port: 9000, host: 0.0.0.0}\nredis: {host: yaml-host, port: 6380}\n",
    )
    settings = load_settings(path, environ={"REDIS_HOST": "env-host", "PROXY_PORT": "9100"})
    assert settings.redis.host == "env-host"  # env beats YAML
    assert settings.redis.port == 6380  # YAML beats default
    assert settings.server.port == 9100
    assert settings.server.host == "0.0.0.0"
    assert settings.redis.db == 0  # default


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "cache: {backend: memory}\n")
    settings = load_settings(environ={"GUARD_PROXY_CONFIG": str(path)})
    assert settings.cache.backend == "memory"


@pytest.mark.parametrize(
    ("env", "attr", "expected"),
    [
        ({"CACHE_ENABLED": "false"}, ("cache", "enabled"), False),
        ({"CACHE_ENABLED": "1"}, ("cache", "enabled"), True),
        ({"CACHE_BACKEND": "redis"}, ("cache", "backend"), "redis"),
        ({"CACHE_TTL": "60"}, ("cache", "ttl"), 60),
        ({"CACHE_MAX_SIZE": "5"}, ("cache", "max_size"), 5),
        ({"REDIS_ENABLED": "no"}, ("redis", "enabled"), False),
        ({"REDIS_PORT": "6390"}, ("redis", "port"), 6390),
        ({"REDIS_DB": "15"}, ("redis", "db"), 15),
        ({"REDIS_USERNAME": "guard"}, ("redis", "username"), "guard"),
        ({"REDIS_MAX_CONNECTIONS": "8"}, ("redis", "max_connections"), 8),
        ({"REDIS_SOCKET_CONNECT_TIMEOUT": "150ms"}, ("redis", "socket_connect_timeout"), 0.15),
        ({"REDIS_SOCKET_TIMEOUT": "0.5"}, ("redis", "socket_timeout"), 0.5),
        ({"REDIS_SOCKET_TIMEOUT": "2s"}, ("redis", "socket_timeout"), 2.0),
        ({"OLLAMA_URL": "http://ollama:11434"}, ("ollama", "url"), "http://ollama:11434"),
        ({"ACCESS_ALLOW": "10.0.0.0/8, ::1"}, ("access", "allow"), ("10.0.0.0/8", "::1")),
        (
            {"REDIS_SENTINELS": "s1:26379,s2:26379"},
            ("redis", "sentinels"),
            ("s1:26379", "s2:26379"),
        ),
    ],
)
def test_every_documented_environment_variable(
    env: dict[str, str], attr: tuple[str, str], expected: object
) -> None:
    settings = load_settings(environ=env)
    assert getattr(getattr(settings, attr[0]), attr[1]) == expected


def test_unknown_keys_are_errors_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "redis: {hots: x}\ncahce: {}\nguard: {input: {regexx: {}}}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ={})
    found = problems(exc)
    assert "did you mean 'host'" in found["redis.hots"]
    assert found["cahce"].startswith("unknown key")
    assert "guard.input.regexx" in found


def test_every_problem_is_reported_once_naming_its_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "server: {port: abc}\nredis: {db: 16}\ncache: {ttl: 0, backend: disk}\n"
        "guard: {fail_mode: maybe, plugins: [{name: x}]}\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ={"CACHE_ENABLED": "perhaps"})
    found = problems(exc)
    assert set(found) == {
        "server.port",
        "redis.db",
        "cache.ttl",
        "cache.backend",
        "guard.fail_mode",
        "guard.plugins[0].path",
        "cache.enabled (from CACHE_ENABLED)",
    }
    assert "at most 15" in found["redis.db"]
    assert all(line.split(":")[0] in found for line in exc.value.lines())


def test_wrong_types_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, "guard: {input: {banned_substrings: {patterns: [ok, 3]}}}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ={})
    assert "must be a string" in problems(exc)["guard.input.banned_substrings.patterns[1]"]


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, "server: [unclosed\n"), environ={})
    assert "invalid YAML" in problems(exc)["config"]
    with pytest.raises(ConfigError) as exc:
        load_settings(tmp_path / "nope.yaml", environ={})
    assert "not found" in problems(exc)["config"]


def test_bad_cidr_url_and_sentinel(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(
            environ={
                "ACCESS_ALLOW": "10.0.0.0/33",
                "OLLAMA_URL": "ftp://x",
                "REDIS_SENTINELS": "nohostport",
            }
        )
    found = problems(exc)
    assert "access.allow (from ACCESS_ALLOW)" in found
    assert "ollama.url (from OLLAMA_URL)" in found
    assert "redis.sentinels (from REDIS_SENTINELS)" in found


def test_secret_values_never_appear_in_errors() -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(environ={"REDIS_PASSWORD": "hunter2", "REDIS_PORT": "hunter2"})
    # the port message may show the bad port, but a secret field never echoes its value
    with pytest.raises(ConfigError) as exc2:
        load_settings(environ={"REDIS_PASSWORD_FILE": "/nonexistent/hunter2-file"})
    assert "hunter2" in str(exc.value)  # REDIS_PORT is not a secret: its bad value is shown
    assert "redis.password_file" in dict(exc2.value.problems)


def test_secret_files_are_read_and_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "redis_password"
    secret.write_text("s3cr3t\n", encoding="utf-8")
    token = tmp_path / "token"
    token.write_text("admintoken", encoding="utf-8")
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("sentinel-pw\r\n", encoding="utf-8")
    settings = load_settings(
        environ={
            "REDIS_PASSWORD": "ignored",
            "REDIS_PASSWORD_FILE": str(secret),
            "GUARD_PROXY_ADMIN_TOKEN_FILE": str(token),
            "REDIS_SENTINEL_PASSWORD_FILE": str(sentinel),
        }
    )
    assert settings.redis.password == "s3cr3t"
    assert settings.access.admin_token == "admintoken"
    assert settings.redis.sentinel_password == "sentinel-pw"


def test_redacted_dump_masks_secrets_only() -> None:
    settings = load_settings(
        environ={
            "REDIS_PASSWORD": "pw-XYZ-123",
            "GUARD_PROXY_ADMIN_TOKEN": "tok-QRS-987",
            "REDIS_HOST": "h",
        }
    )
    dump = redacted(settings)
    assert dump["redis"]["password"] == REDACTED
    assert dump["access"]["admin_token"] == REDACTED
    assert dump["redis"]["host"] == "h"
    assert "pw-XYZ-123" not in repr(dump) and "tok-QRS-987" not in repr(dump)
    assert redacted(load_settings(environ={}))["redis"]["password"] == ""


def test_guard_directions_have_their_own_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "guard:\n  output:\n    banned_substrings: {patterns: [forbidden]}\n",
    )
    settings = load_settings(path, environ={})
    assert settings.guard.output.banned_substrings.patterns == ("forbidden",)
    assert settings.guard.input.banned_substrings.patterns == ()
    # untouched output settings keep the output defaults
    assert settings.guard.output.prompt_injection.enabled is False


def test_require_redis_is_a_bool_off_by_default(tmp_path: Path) -> None:
    assert load_settings(environ={}).cache.require_redis is False
    assert load_settings(environ={"CACHE_REQUIRE_REDIS": "yes"}).cache.require_redis is True
    path = write(tmp_path, "cache: {require_redis: true, backend: redis}\n")
    assert load_settings(path, environ={}).cache.require_redis is True


@pytest.mark.parametrize(
    ("yaml_text", "env", "key", "says"),
    [
        ("cache: {require_redis: true, backend: memory}\n", {}, "cache.require_redis", "memory"),
        ("cache: {require_redis: true, enabled: false}\n", {}, "cache.require_redis", "enabled"),
        (
            "cache: {require_redis: true}\nredis: {enabled: false}\n",
            {},
            "cache.require_redis",
            "redis.enabled",
        ),
        (
            "cache: {backend: memory}\n",
            {"CACHE_REQUIRE_REDIS": "1"},
            "cache.require_redis (from CACHE_REQUIRE_REDIS)",
            "cache.backend is memory",
        ),
    ],
)
def test_require_redis_contradicting_settings_are_errors_naming_the_key(
    tmp_path: Path, yaml_text: str, env: dict[str, str], key: str, says: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, yaml_text), environ=env)
    assert [k for k, _ in exc.value.problems] == [key]
    assert says in exc.value.problems[0][1]
    assert exc.value.lines()[0].startswith(f"{key}: ")


def test_secret_values_never_appear_in_a_repr() -> None:
    secrets = {
        "REDIS_PASSWORD": "pw-XYZ-123",
        "REDIS_SENTINEL_PASSWORD": "spw-ABC-456",
        "GUARD_PROXY_ADMIN_TOKEN": "tok-QRS-987",
    }
    settings = load_settings(environ=secrets)
    assert settings.redis.password == "pw-XYZ-123"
    shown = repr(settings) + str(settings)
    assert "redis" in shown and not [v for v in secrets.values() if v in shown]


def test_every_error_of_a_secret_hides_its_value(tmp_path: Path) -> None:
    """A secret of the wrong type is named with its type, never its value."""
    path = write(tmp_path, "redis: {password: 918273645}\naccess: {admin_token: [tok-QRS-987]}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ={})
    found = problems(exc)
    assert found["redis.password"] == "must be a string, got an integer"
    assert "access.admin_token" in found
    assert "918273645" not in str(exc.value) and "tok-QRS-987" not in str(exc.value)


@pytest.mark.parametrize(
    ("yaml_text", "key", "says"),
    [
        ("Redis: {host: x}\n", "Redis", "did you mean 'redis'"),
        ("redis: {Host: x}\n", "redis.Host", "did you mean 'host'"),
        ("1: x\n", "1", "unknown key"),
    ],
)
def test_keys_are_case_sensitive_strings(
    tmp_path: Path, yaml_text: str, key: str, says: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, yaml_text), environ={})
    assert says in problems(exc)[key]

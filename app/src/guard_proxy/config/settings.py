"""Settings value objects: one frozen dataclass per YAML section, under one root.

Each field's type states its rule (:mod:`guard_proxy.config.types`: bounds, choices,
durations, lists); pydantic checks it when :func:`guard_proxy.config.load_settings` builds
the :class:`Settings`. Field metadata names the environment variable that overrides the
field (``env``), masks it in every dump, error and repr (``secret``), or says which secret
a file setting holds (``secret_file``: the field it replaces with the file's content).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from guard_proxy.config.types import (
    CpuCount,
    Duration,
    DurationOrZero,
    HeaderName,
    HostPorts,
    HttpUrl,
    Networks,
    NonEmptyText,
    OneOf,
    Options,
    Port,
    Positive,
    StrList,
    StrMapping,
    Text,
)

_T = TypeVar("_T")


def _f(default: _T, *, env: str = "", secret: bool = False, secret_file: str = "") -> _T:
    """A dataclass field with ``default`` and the metadata above (only what is set); a
    secret is left out of ``repr``."""
    meta = {"env": env, "secret": secret, "secret_file": secret_file}
    return field(default=default, repr=not secret, metadata={k: v for k, v in meta.items() if v})


# --------------------------------------------------------------------------- server / ollama

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """Where the proxy listens and how it treats request bodies and logs."""

    host: Text = _f("127.0.0.1", env="PROXY_HOST")
    port: Port = _f(8080, env="PROXY_PORT")
    log_level: Annotated[str, OneOf(LOG_LEVELS)] = _f("info", env="LOG_LEVEL")
    max_body_bytes: Positive = _f(10 * 1024 * 1024, env="PROXY_MAX_BODY_BYTES")
    access_log: bool = _f(True, env="PROXY_ACCESS_LOG")
    # On SIGTERM: how long in-flight requests and streams may still run before they are ended.
    drain_timeout: DurationOrZero = _f(300.0, env="PROXY_DRAIN_TIMEOUT")
    # Processes serving the one listening socket; ``auto`` is the CPU count.
    workers: CpuCount = _f(1, env="PROXY_WORKERS")
    # HTTPS on the listener: a PEM certificate (chain) and its key; both or neither.
    tls_cert_file: Text = _f("", env="PROXY_TLS_CERT_FILE")
    tls_key_file: Text = _f("", env="PROXY_TLS_KEY_FILE")


@dataclass(frozen=True, kw_only=True)
class OllamaSettings:
    """The upstream Ollama server. Streams have no read timeout; other calls use ``timeout``."""

    url: HttpUrl = _f("http://127.0.0.1:11434", env="OLLAMA_URL")
    connect_timeout: Duration = _f(2.0, env="OLLAMA_CONNECT_TIMEOUT")
    timeout: Duration = _f(600.0, env="OLLAMA_TIMEOUT")


# --------------------------------------------------------------------------- guard


@dataclass(frozen=True, kw_only=True)
class BannedSubstringsSettings:
    """Case-insensitive (unless ``case_sensitive``) substrings that block a text."""

    enabled: bool = True
    patterns: StrList = ()
    case_sensitive: bool = False


@dataclass(frozen=True, kw_only=True)
class RegexSettings:
    """A deny-list of regular expressions; ``max_match_length`` bounds a match for streaming."""

    enabled: bool = True
    patterns: StrList = ()
    max_match_length: Annotated[int, Field(ge=1, le=65536)] = 256


SECRET_KINDS = (
    "private_key",
    "aws_access_key",
    "aws_secret_key",
    "azure_storage_key",
    "github_token",
    "gitlab_token",
    "slack_token",
    "slack_webhook",
    "google_api_key",
    "openai_api_key",
    "anthropic_api_key",
    "huggingface_token",
    "stripe_live_key",
    "npm_token",
    "pypi_token",
    "rubygems_token",
    "pulumi_token",
    "hashicorp_vault_token",
    "sendgrid_api_key",
    "twilio_api_key",
    "mailgun_api_key",
    "digitalocean_token",
    "shopify_token",
    "databricks_token",
    "grafana_token",
    "postman_api_key",
    "linear_api_key",
    "jwt",
    "password_assignment",
    "generic_secret_assignment",
)
PII_KINDS = ("email", "credit_card", "phone", "iban")
ACTIONS = ("block", "redact")
"""What a finding of a kind does: refuse the request (``block``) or mask it (``redact``)."""

PII_ACTIONS: dict[str, str] = dict.fromkeys(PII_KINDS, "redact")
"""Built-in action per PII kind (``actions`` overrides them kind by kind): personal data in a
document is masked, the user can still ask about the document."""
SECRET_ACTIONS: dict[str, str] = {
    **dict.fromkeys(SECRET_KINDS, "block"),
    "password_assignment": "redact",
    "generic_secret_assignment": "redact",
}
"""Built-in action per credential kind: a credential of a known format is refused (it must be
rotated, and the model never needs it); an assignment in pasted config is masked."""
NOT_RESTORABLE = frozenset({"private_key"})
"""Kinds whose value is never put back into an answer (key material spans many lines and is
the one thing a client-side log must not receive from the model)."""


@dataclass(frozen=True, kw_only=True)
class SecretsSettings:
    """Private keys, cloud, AI, registry, CI and SaaS tokens, JWTs and secret assignments.

    ``actions`` maps a kind to ``block`` or ``redact`` (kinds not named keep
    :data:`SECRET_ACTIONS`); ``restore`` (``guard.input`` only) puts the values of redacted
    kinds back where the answer repeats their placeholders.
    """

    enabled: bool = True
    kinds: Annotated[StrList, OneOf(SECRET_KINDS)] = SECRET_KINDS
    actions: StrMapping = field(default_factory=dict)
    restore: bool = False

    def action(self, kind: str) -> str:
        """The action of ``kind`` (its setting, else the built-in one)."""
        return self.actions.get(kind, SECRET_ACTIONS[kind])


@dataclass(frozen=True, kw_only=True)
class PiiSettings:
    """Personal data: e-mail addresses, card numbers (Luhn-checked), phone numbers, IBANs.

    ``actions`` and ``restore`` as for :class:`SecretsSettings` (built-ins: :data:`PII_ACTIONS`).
    """

    enabled: bool = True
    kinds: Annotated[StrList, OneOf(PII_KINDS)] = ("email", "credit_card", "iban")
    actions: StrMapping = field(default_factory=dict)
    restore: bool = True

    def action(self, kind: str) -> str:
        """The action of ``kind`` (its setting, else the built-in one)."""
        return self.actions.get(kind, PII_ACTIONS[kind])


INJECTION_FAMILIES = (
    "override",
    "persona",
    "rule_removal",
    "prompt_extraction",
    "output_hijack",
    "fake_turn",
    "exfiltration",
    "encoded",
    "learned",
)
INJECTION_PROFILES = ("default", "strict")


@dataclass(frozen=True, kw_only=True)
class PromptInjectionSettings:
    """Prompt injections and jailbreaks: the built-in rule engine (``use_builtin``, its
    ``families``, ``profile`` and evidence ``threshold``) plus operators' ``phrases``."""

    enabled: bool = True
    use_builtin: bool = True
    phrases: StrList = ()
    families: Annotated[StrList, OneOf(INJECTION_FAMILIES)] = INJECTION_FAMILIES
    # ``strict`` counts the weak rules double: one weak signal blocks.
    profile: Annotated[str, OneOf(INJECTION_PROFILES)] = "default"
    # Summed rule weights within one window that block a text (1.0: one strong rule).
    threshold: Annotated[float, Field(ge=0.1, le=10.0)] = 1.0


@dataclass(frozen=True, kw_only=True)
class InvisibleTextSettings:
    """Zero-width, bidi-control and Unicode tag characters."""

    enabled: bool = True


@dataclass(frozen=True, kw_only=True)
class SizeSettings:
    """An upper bound on the scanned text, in characters."""

    enabled: bool = True
    max_chars: Positive = 200_000


@dataclass(frozen=True, kw_only=True)
class ScannerSetSettings:
    """The built-in scanners of one direction (``guard.input`` or ``guard.output``)."""

    banned_substrings: BannedSubstringsSettings = BannedSubstringsSettings()
    regex: RegexSettings = RegexSettings()
    secrets: SecretsSettings = SecretsSettings()
    pii: PiiSettings = PiiSettings()
    prompt_injection: PromptInjectionSettings = PromptInjectionSettings()
    invisible_text: InvisibleTextSettings = InvisibleTextSettings()
    size: SizeSettings = SizeSettings()


DEFAULT_INPUT_SCANNERS = ScannerSetSettings()
DEFAULT_OUTPUT_SCANNERS = ScannerSetSettings(
    pii=PiiSettings(restore=False),
    prompt_injection=PromptInjectionSettings(enabled=False),
    size=SizeSettings(max_chars=1_000_000),
)


@dataclass(frozen=True, kw_only=True)
class PluginSettings:
    """An external scanner: ``path`` is ``package.module:factory`` returning a scanner."""

    name: str
    path: str
    directions: Annotated[StrList, OneOf(("input", "output"))] = ("input",)
    options: Options = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class GuardSettings:
    """What is scanned and what happens when a scanner fails (``closed`` blocks with 503)."""

    enabled: bool = _f(True, env="GUARD_ENABLED")
    fail_mode: Annotated[str, OneOf(("closed", "open"))] = _f("closed", env="GUARD_FAIL_MODE")
    input: ScannerSetSettings = DEFAULT_INPUT_SCANNERS
    output: ScannerSetSettings = DEFAULT_OUTPUT_SCANNERS
    plugins: tuple[PluginSettings, ...] = ()
    # Off-loop scanners (plug-ins unless they say ``inline = True``; see guard/offload.py):
    # threads per worker (0: the CPUs this worker may use, divided among server.workers),
    # how long a request waits for one of them (queue included; then it counts as a scanner
    # failure under fail_mode), how many texts may wait for a thread (beyond: 503 with
    # Retry-After), and the most texts one scan_batch call gets.
    model_threads: Annotated[int, Field(ge=0, le=256)] = _f(0, env="GUARD_MODEL_THREADS")
    scan_timeout: Duration = _f(5.0, env="GUARD_SCAN_TIMEOUT")
    scan_queue: Positive = _f(64, env="GUARD_SCAN_QUEUE")
    max_batch: Annotated[int, Field(ge=1, le=1024)] = _f(16, env="GUARD_MAX_BATCH")


# --------------------------------------------------------------------------- access


@dataclass(frozen=True, kw_only=True)
class KeysSettings:
    """Client keys and their per-key limits (:mod:`guard_proxy.keys`); off by default.

    The keys themselves (names, SHA-256 hashes, limits) are in ``file``, re-read when it
    changes (checked every ``reload_interval``), so adding or revoking a key restarts nothing.
    """

    enabled: bool = _f(False, env="ACCESS_KEYS_ENABLED")
    file: Text = _f("", env="ACCESS_KEYS_FILE")
    # The header ollama clients set (``Authorization: Bearer`` is always accepted too).
    header: HeaderName = _f("X-API-Key", env="ACCESS_KEYS_HEADER")
    reload_interval: Duration = _f(2.0, env="ACCESS_KEYS_RELOAD_INTERVAL")
    # Redis keys of the shared counters start with this (give the app's ACL user ``prefix*``).
    prefix: NonEmptyText = _f("guard-keys:", env="ACCESS_KEYS_PREFIX")
    # Proxies sharing the limits: while Redis is away each process allows
    # limit // (proxies * server.workers), at least 1.
    proxies: Positive = _f(1, env="ACCESS_KEYS_PROXIES")
    # Failed key attempts one source address may make per minute before it gets 429.
    failed_attempts_per_minute: Positive = _f(20, env="ACCESS_KEYS_FAILED_ATTEMPTS_PER_MINUTE")
    # A generation request holds a concurrency slot at most this long (a crashed proxy's
    # slots are freed after it).
    stream_lease: Duration = _f(900.0, env="ACCESS_KEYS_STREAM_LEASE")


@dataclass(frozen=True, kw_only=True)
class AccessSettings:
    """Who may talk to the proxy, which proxies are trusted, and the admin token."""

    allow: Networks = _f(("0.0.0.0/0", "::/0"), env="ACCESS_ALLOW")
    trusted_proxies: Networks = _f((), env="ACCESS_TRUSTED_PROXIES")
    admin_token: Text = _f("", env="GUARD_PROXY_ADMIN_TOKEN", secret=True)
    admin_token_file: Text = _f("", env="GUARD_PROXY_ADMIN_TOKEN_FILE", secret_file="admin_token")
    keys: KeysSettings = KeysSettings()


# --------------------------------------------------------------------------- cache / redis


@dataclass(frozen=True, kw_only=True)
class CacheSettings:
    """The verdict cache. ``backend``: ``auto`` and ``redis`` try Redis, ``memory`` never does."""

    enabled: bool = _f(True, env="CACHE_ENABLED")
    backend: Annotated[str, OneOf(("auto", "redis", "memory"))] = _f("auto", env="CACHE_BACKEND")
    ttl: Positive = _f(3600, env="CACHE_TTL")
    max_size: Positive = _f(1000, env="CACHE_MAX_SIZE")
    prefix: NonEmptyText = _f("guard:", env="CACHE_PREFIX")
    sweep_interval: Duration = _f(30.0, env="CACHE_SWEEP_INTERVAL")
    # Readiness (``GET /ready``) then also needs the cache on Redis and a live PING.
    require_redis: bool = _f(False, env="CACHE_REQUIRE_REDIS")


@dataclass(frozen=True, kw_only=True)
class RedisSettings:
    """Connection to Redis. Timeouts are short on purpose: a cache must never stall a request."""

    enabled: bool = _f(True, env="REDIS_ENABLED")
    host: NonEmptyText = _f("localhost", env="REDIS_HOST")
    port: Port = _f(6379, env="REDIS_PORT")
    db: Annotated[int, Field(ge=0, le=15)] = _f(0, env="REDIS_DB")
    username: Text = _f("", env="REDIS_USERNAME")
    password: Text = _f("", env="REDIS_PASSWORD", secret=True)
    password_file: Text = _f("", env="REDIS_PASSWORD_FILE", secret_file="password")
    max_connections: Positive = _f(50, env="REDIS_MAX_CONNECTIONS")
    socket_connect_timeout: Duration = _f(0.2, env="REDIS_SOCKET_CONNECT_TIMEOUT")
    socket_timeout: Duration = _f(0.1, env="REDIS_SOCKET_TIMEOUT")
    tls: bool = _f(False, env="REDIS_TLS")
    tls_ca_file: Text = _f("", env="REDIS_TLS_CA_FILE")
    tls_cert_file: Text = _f("", env="REDIS_TLS_CERT_FILE")
    tls_key_file: Text = _f("", env="REDIS_TLS_KEY_FILE")
    tls_verify: bool = _f(True, env="REDIS_TLS_VERIFY")
    breaker_threshold: Positive = _f(1, env="REDIS_BREAKER_THRESHOLD")
    probe_interval: Duration = _f(1.0, env="REDIS_PROBE_INTERVAL")
    sentinels: HostPorts = _f((), env="REDIS_SENTINELS")
    sentinel_service: NonEmptyText = _f("mymaster", env="REDIS_SENTINEL_SERVICE")
    sentinel_username: Text = _f("", env="REDIS_SENTINEL_USERNAME")
    sentinel_password: Text = _f("", env="REDIS_SENTINEL_PASSWORD", secret=True)
    sentinel_password_file: Text = _f(
        "", env="REDIS_SENTINEL_PASSWORD_FILE", secret_file="sentinel_password"
    )


# --------------------------------------------------------------------------- root


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`guard_proxy.config.load_settings`.

    A value object: constructing it reads nothing (no environment, no file); the loader
    hands pydantic-settings the sources (environment > YAML > defaults) of one load.
    """

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        case_sensitive=True,  # ``Redis:`` is an unknown key, as ``redis.Host`` is
        allow_inf_nan=False,
        # A section given in part keeps its other defaults (guard.output's own among them).
        nested_model_default_partial_update=True,
    )

    server: ServerSettings = ServerSettings()
    ollama: OllamaSettings = OllamaSettings()
    guard: GuardSettings = GuardSettings()
    access: AccessSettings = AccessSettings()
    cache: CacheSettings = CacheSettings()
    redis: RedisSettings = RedisSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the keyword arguments: the loader passes its own sources per load."""
        return (init_settings,)


DEFAULT_SETTINGS = Settings()

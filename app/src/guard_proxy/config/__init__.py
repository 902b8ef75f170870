"""Configuration: settings value objects, the loader (env > YAML > defaults) and redaction."""

from guard_proxy.config.dump import REDACTED, redacted
from guard_proxy.config.loader import CONFIG_ENV, load_settings
from guard_proxy.config.settings import (
    DEFAULT_SETTINGS,
    AccessSettings,
    CacheSettings,
    GuardSettings,
    KeysSettings,
    OllamaSettings,
    PluginSettings,
    RedisSettings,
    ScannerSetSettings,
    ServerSettings,
    Settings,
)

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_SETTINGS",
    "REDACTED",
    "AccessSettings",
    "CacheSettings",
    "GuardSettings",
    "KeysSettings",
    "OllamaSettings",
    "PluginSettings",
    "RedisSettings",
    "ScannerSetSettings",
    "ServerSettings",
    "Settings",
    "load_settings",
    "redacted",
]

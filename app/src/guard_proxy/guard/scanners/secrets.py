"""``secrets``: private keys, cloud, AI, registry, CI and SaaS tokens, JWTs, secret assignments.

Each kind matches only as much of a secret as identifies it (a token's prefix and its body),
so matches, and the text a stream holds back, stay short. Every pattern begins with a literal
(or a narrow class) and checks what precedes it after it, so ``re`` skips ahead. Each kind
names its source: the gitleaks rule set (``config/gitleaks.toml``, rule id given), Yelp's
detect-secrets plugins, or the provider's published token format; docs/scanners.md has the
table. Where a finding is redacted rather than blocked, :func:`span` says which characters
hold the value (the whole token, or the value of an assignment).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import NamedTuple

from guard_proxy.config.settings import SecretsSettings
from guard_proxy.guard.scanners._base import (
    Judge,
    MultiPatternScanner,
    PatternScanner,
    constant,
    max_width,
)

NAME = "secrets"

_B64URL = "A-Za-z0-9_-"
_TOKEN_TAIL = "[A-Za-z0-9_-]*"


class Kind(NamedTuple):
    """One credential format.

    ``anchors``: the pattern runs on lower-cased text around these literals; ``lookahead``:
    it looks one character past its match; ``tail``: the characters that still belong to the
    value after the match (what a redaction covers); ``value``: the match is an assignment
    and only the value after its ``=``/``:`` is the secret; ``source``: where the format is from.
    """

    reason: str
    pattern: str
    source: str
    anchors: tuple[str, ...] = ()
    lookahead: bool = False
    tail: str = _TOKEN_TAIL
    value: bool = False
    judge: Judge | None = None


MIN_GENERIC_ENTROPY = 3.5
"""Shannon bits per character a generic assignment's value needs (random tokens of 16+
characters have ~4; words, paths and placeholders have less)."""
_SEPARATORS = re.compile(r"[_.-]")
_IDENTIFIER_PART = 12
_GENERIC_VALUE = re.compile(r"(?::=|=>|[:=])[ \t]*[\"']?([a-z0-9/+_.=-]+)")


def entropy(value: str) -> float:
    """Shannon entropy of ``value`` in bits per character."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


def _generic(m: re.Match[str]) -> str | None:
    v = _GENERIC_VALUE.search(m.group())
    if v is None:
        return None
    value = v.group(1)
    if not any(ch.isdigit() for ch in value) or not any(ch.isalpha() for ch in value):
        return None
    # An identifier (``batch_1_day_max_tokens``, ``config.keys``): short parts between
    # separators. A token's random part is longer.
    if max(map(len, _SEPARATORS.split(value))) <= _IDENTIFIER_PART:
        return None
    return "secret assignment" if entropy(value) >= MIN_GENERIC_ENTROPY else None


# Literals come first and boundary look-behinds after them, so ``re`` can skip ahead; kinds
# with ``anchors`` run on lower-cased text at their anchors.
KINDS: dict[str, Kind] = {
    "private_key": Kind(
        "private key",
        r"-----BEGIN (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY",
        "gitleaks private-key; RFC 7468 (also a GCP service-account JSON's private_key)",
        tail="",
    ),
    "aws_access_key": Kind(
        "AWS access key ID",
        r"A(?<![A-Za-z0-9]A)(?:KIA|SIA)[A-Z0-9]{16}",
        "gitleaks aws-access-token; AWS IAM docs (unique ID prefixes)",
    ),
    "aws_secret_key": Kind(
        "AWS secret access key",
        r"aws(?<![a-z0-9]aws)[_.-]?secret[_.-]?(?:access[_.-]?)?key[\"']?[ \t]{0,3}"
        r"(?::=|=>|[:=])[ \t]{0,3}[\"']?[a-z0-9/+]{40}",
        "detect-secrets AWSKeyDetector (secret key assignment); AWS IAM docs (40 base64)",
        anchors=("secret",),
        tail="[A-Za-z0-9/+]*",
        value=True,
    ),
    "azure_storage_key": Kind(
        "Azure storage account key",
        r"AccountKey=(?<![A-Za-z0-9]AccountKey=)[A-Za-z0-9+/]{86}==",
        "Microsoft Learn: Azure Storage connection strings (AccountKey, 64 bytes base64)",
        tail="",
        value=True,
    ),
    "github_token": Kind(
        "GitHub token",
        r"g(?<![A-Za-z0-9_]g)(?:h[pousr]_[A-Za-z0-9]{30}|ithub_pat_[A-Za-z0-9_]{22})",
        "gitleaks github-pat, github-oauth, github-app-token, github-fine-grained-pat",
    ),
    "gitlab_token": Kind(
        "GitLab token",
        r"gl(?<![A-Za-z0-9_-]gl)(?:pat|cbt|ptt|rt|dt)-[A-Za-z0-9_-]{20}",
        "gitleaks gitlab-pat, gitlab-cicd-job-token, gitlab-ptt, gitlab-rrt, gitlab-deploy-token",
    ),
    "slack_token": Kind(
        "Slack token",
        r"xox(?<![A-Za-z0-9_-]xox)[baprs]-[A-Za-z0-9-]{10}",
        "gitleaks slack-bot-token, slack-user-token, slack-app-token",
    ),
    "slack_webhook": Kind(
        "Slack webhook URL",
        r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/]{20}",
        "gitleaks slack-webhook-url",
        tail="[A-Za-z0-9+/]*",
    ),
    "google_api_key": Kind(
        "Google API key",
        r"AIza(?<![A-Za-z0-9_-]AIza)[A-Za-z0-9_-]{35}",
        "gitleaks gcp-api-key",
    ),
    "openai_api_key": Kind(
        "OpenAI API key",
        r"sk-(?<![A-Za-z0-9_-]sk-)(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20}|[A-Za-z0-9]{20})",
        "gitleaks openai-api-key; OpenAI docs (project, service-account, admin keys)",
    ),
    "anthropic_api_key": Kind(
        "Anthropic API key",
        r"sk-ant-(?<![A-Za-z0-9_-]sk-ant-)(?:api03|admin01)-[A-Za-z0-9_-]{93}AA",
        "gitleaks anthropic-api-key, anthropic-admin-api-key",
        tail="",
    ),
    "huggingface_token": Kind(
        "Hugging Face token",
        r"(?<![A-Za-z0-9_])(?:hf|api_org)_[A-Za-z]{34}(?![A-Za-z0-9])",
        "gitleaks huggingface-access-token, huggingface-organization-api-token",
        lookahead=True,
    ),
    "stripe_live_key": Kind(
        "Stripe live key",
        r"(?<![A-Za-z0-9_])[rs]k_live_[A-Za-z0-9]{24}",
        "gitleaks stripe-access-token (live secret and restricted keys)",
    ),
    "npm_token": Kind(
        "npm access token",
        r"npm_(?<![A-Za-z0-9_]npm_)[A-Za-z0-9]{36}(?![A-Za-z0-9])",
        "gitleaks npm-access-token",
        lookahead=True,
    ),
    "pypi_token": Kind(
        "PyPI upload token",
        r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50}",
        "gitleaks pypi-upload-token",
    ),
    "rubygems_token": Kind(
        "RubyGems API key",
        r"rubygems_(?<![A-Za-z0-9_]rubygems_)[a-f0-9]{48}(?![a-f0-9])",
        "gitleaks rubygems-api-token",
        lookahead=True,
    ),
    "sendgrid_api_key": Kind(
        "SendGrid API key",
        r"SG\.(?<![A-Za-z0-9]SG\.)[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}",
        "gitleaks sendgrid-api-token; SendGrid docs (SG.<id>.<secret>)",
    ),
    "twilio_api_key": Kind(
        "Twilio API key",
        r"SK(?<![A-Za-z0-9]SK)[0-9a-fA-F]{32}(?![0-9A-Za-z])",
        "gitleaks twilio-api-key",
        lookahead=True,
    ),
    "mailgun_api_key": Kind(
        "Mailgun API key",
        r"key-(?<![A-Za-z0-9_-]key-)[0-9a-f]{32}(?![0-9A-Za-z])",
        "gitleaks mailgun-private-api-token",
        lookahead=True,
    ),
    "digitalocean_token": Kind(
        "DigitalOcean token",
        r"do(?<![A-Za-z0-9_]do)[opr]_v1_[a-f0-9]{64}",
        "gitleaks digitalocean-pat, digitalocean-access-token, digitalocean-refresh-token",
    ),
    "shopify_token": Kind(
        "Shopify token",
        r"shp(?<![A-Za-z0-9_]shp)(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",
        "gitleaks shopify-access-token, shopify-custom-access-token, shopify-private-app-"
        "access-token, shopify-shared-secret",
    ),
    "databricks_token": Kind(
        "Databricks token",
        r"dapi(?<![A-Za-z0-9_]dapi)[a-f0-9]{32}(?![A-Za-z0-9])",
        "gitleaks databricks-api-token",
        lookahead=True,
        tail="(?:-[0-9])?",
    ),
    "grafana_token": Kind(
        "Grafana token",
        r"gl(?<![A-Za-z0-9_]gl)(?:sa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|c_[A-Za-z0-9+/]{32})",
        "gitleaks grafana-service-account-token, grafana-cloud-api-token",
        tail="[A-Za-z0-9+/=_-]*",
    ),
    "postman_api_key": Kind(
        "Postman API key",
        r"PMAK-(?<![A-Za-z0-9]PMAK-)[a-f0-9]{24}-[a-f0-9]{34}",
        "gitleaks postman-api-token",
    ),
    "linear_api_key": Kind(
        "Linear API key",
        r"lin_api_(?<![A-Za-z0-9_]lin_api_)[A-Za-z0-9]{40}",
        "gitleaks linear-api-key",
    ),
    "pulumi_token": Kind(
        "Pulumi access token",
        r"pul-(?<![A-Za-z0-9_-]pul-)[a-f0-9]{40}(?![A-Za-z0-9])",
        "gitleaks pulumi-api-token",
        lookahead=True,
    ),
    "hashicorp_vault_token": Kind(
        "HashiCorp Vault token",
        r"hv[sb]\.(?<![A-Za-z0-9_]hv[sb]\.)[A-Za-z0-9_-]{90}",
        "gitleaks vault-service-token, vault-batch-token",
    ),
    "jwt": Kind(
        "JSON Web Token",
        rf"eyJ(?<![{_B64URL}]eyJ)[{_B64URL}]{{5,160}}\.eyJ[{_B64URL}]{{5}}",
        "gitleaks jwt; RFC 7519",
        tail=r"[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)?",
    ),
    "password_assignment": Kind(
        "password assignment",
        # password = "..." | passwd: '...' | secret=a value with a digit or symbol in its first 12
        r"(?<![a-z0-9])(?:pass(?:word|wd|phrase)|pwd|secret)[\"']?[ \t]{0,3}(?::=|=>|[:=])"
        r"[ \t]{0,3}(?:\"[^\"\r\n]{4}|'[^'\r\n]{4}|[a-z]{0,11}[0-9!@#^&+=?~|\\])",
        "detect-secrets KeywordDetector (password keywords)",
        anchors=("pass", "pwd", "secret"),
        tail="[^\\s\"'`,;]*",
        value=True,
    ),
    "generic_secret_assignment": Kind(
        "secret assignment",
        # API_KEY=..., auth_token: ..., client_secret = "..." with a random-looking value
        r"(?<![a-z0-9])[a-z0-9_.-]{0,24}(?:key|token|secret)[a-z0-9_]{0,8}[\"']?[ \t]{0,3}"
        r"(?::=|=>|[:=])[ \t]{0,3}[\"']?[a-z0-9/+_.=-]{16,64}",
        "gitleaks generic-api-key (keyword + entropy); own entropy bound, measured in bench/",
        anchors=("key", "token", "secret"),
        tail="[^\\s\"'`,;]*",
        value=True,
        judge=_generic,
    ),
}

_VALUE_START = re.compile(r"(?::=|=>|[:=])[ \t]*[\"']?")
_END_KEY = re.compile(r"-----END [A-Z0-9 ]{0,60}PRIVATE KEY-----")
_TAILS = {kind: re.compile(k.tail) for kind, k in KINDS.items() if k.tail}


def span(kind: str, text: str, m: re.Match[str]) -> tuple[int, int]:
    """The characters of ``text`` that hold the secret ``m`` found (a match of ``kind``):
    a token with the rest of its body, an assignment's value, a private key to its END line
    (or the end of the text)."""
    start, end = m.span()
    if kind == "private_key":
        close = _END_KEY.search(text, end)
        return start, close.end() if close else len(text)
    if KINDS[kind].value:
        v = _VALUE_START.search(text, start, end)
        if v is not None and v.end() < end:
            start = v.end()
    tail = _TAILS.get(kind)
    if tail is not None:
        t = tail.match(text, end)
        if t is not None:
            end = t.end()
    return start, end


def compiled(kind: str) -> re.Pattern[str]:
    """``kind``'s pattern, compiled as the scanner runs it."""
    return _COMPILED[kind]


_COMPILED = {kind: re.compile(k.pattern) for kind, k in KINDS.items()}


def build(direction: str, settings: SecretsSettings) -> MultiPatternScanner | None:
    """The scanner of the kinds that block; ``None`` when it is off or none does."""
    if not settings.enabled:
        return None
    kinds = [k for k in dict.fromkeys(settings.kinds) if settings.action(k) == "block"]
    if not kinds:
        return None
    parts = []
    for kind in kinds:
        k = KINDS[kind]
        longest = max_width(k.pattern)
        assert longest is not None, kind
        parts.append(
            PatternScanner(
                NAME,
                _COMPILED[kind],
                longest,
                k.judge or constant(k.reason),
                lookahead=k.lookahead,
                fold=bool(k.anchors),
                anchors=k.anchors,
            )
        )
    return MultiPatternScanner(NAME, parts)

"""``secrets``: private keys, cloud and VCS tokens, JWTs and password assignments.

Each kind matches only as much of a secret as identifies it (a token's prefix and enough of
its body), so matches, and the text a stream holds back, stay short.
"""

from __future__ import annotations

import re

from guard_proxy.config.settings import SecretsSettings
from guard_proxy.guard.scanners._base import (
    MultiPatternScanner,
    PatternScanner,
    constant,
    max_width,
)

NAME = "secrets"

_B64URL = "A-Za-z0-9_-"

# kind -> (reason, pattern, flags). No pattern looks past its match.
KINDS: dict[str, tuple[str, str, int]] = {
    "private_key": (
        "private key",
        r"-----BEGIN (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY",
        0,
    ),
    "aws_access_key": (
        "AWS access key ID",
        r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}",
        0,
    ),
    "github_token": (
        "GitHub token",
        r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30}|github_pat_[A-Za-z0-9_]{22})",
        0,
    ),
    "gitlab_token": ("GitLab token", r"(?<![A-Za-z0-9_-])glpat-[A-Za-z0-9_-]{20}", 0),
    "slack_token": ("Slack token", r"(?<![A-Za-z0-9_-])xox[baprs]-[A-Za-z0-9-]{10}", 0),
    "google_api_key": ("Google API key", r"(?<![A-Za-z0-9_-])AIza[A-Za-z0-9_-]{35}", 0),
    "openai_api_key": (
        "OpenAI API key",
        r"(?<![A-Za-z0-9_-])sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20}|[A-Za-z0-9]{20})",
        0,
    ),
    "jwt": (
        "JSON Web Token",
        rf"(?<![{_B64URL}])eyJ[{_B64URL}]{{5,160}}\.eyJ[{_B64URL}]{{5}}",
        0,
    ),
    "password_assignment": (
        "password assignment",
        # password = "…" | passwd: '…' | secret=a value with a digit or symbol in its first 12
        r"(?<![A-Za-z0-9])(?:password|passwd|pwd|passphrase|secret)[\"']?[ \t]{0,3}(?::=|=>|[:=])"
        r"[ \t]{0,3}(?:\"[^\"\r\n]{4}|'[^'\r\n]{4}|[A-Za-z]{0,11}[0-9!@#^&+=?~|\\])",
        re.IGNORECASE,
    ),
}


def build(direction: str, settings: SecretsSettings) -> MultiPatternScanner | None:
    """The scanner, or ``None`` when it is off or has no kinds."""
    if not settings.enabled or not settings.kinds:
        return None
    parts = []
    for kind in dict.fromkeys(settings.kinds):
        reason, source, flags = KINDS[kind]
        longest = max_width(source, flags)
        assert longest is not None, kind
        parts.append(
            PatternScanner(
                NAME, re.compile(source, flags), longest, constant(reason), lookahead=False
            )
        )
    return MultiPatternScanner(NAME, parts)

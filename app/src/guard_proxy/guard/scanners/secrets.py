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

# kind -> (reason, pattern, anchors). Literals come first and boundary look-behinds after
# them, so ``re`` can skip ahead; ``password_assignment`` runs on lower-cased text at anchors.
KINDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "private_key": ("private key", r"-----BEGIN (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY", ()),
    "aws_access_key": (
        "AWS access key ID",
        r"A(?<![A-Za-z0-9]A)(?:KIA|SIA)[A-Z0-9]{16}",
        (),
    ),
    "github_token": (
        "GitHub token",
        r"g(?<![A-Za-z0-9_]g)(?:h[pousr]_[A-Za-z0-9]{30}|ithub_pat_[A-Za-z0-9_]{22})",
        (),
    ),
    "gitlab_token": ("GitLab token", r"glpat-(?<![A-Za-z0-9_-]glpat-)[A-Za-z0-9_-]{20}", ()),
    "slack_token": ("Slack token", r"xox(?<![A-Za-z0-9_-]xox)[baprs]-[A-Za-z0-9-]{10}", ()),
    "google_api_key": ("Google API key", r"AIza(?<![A-Za-z0-9_-]AIza)[A-Za-z0-9_-]{35}", ()),
    "openai_api_key": (
        "OpenAI API key",
        r"sk-(?<![A-Za-z0-9_-]sk-)(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20}|[A-Za-z0-9]{20})",
        (),
    ),
    "jwt": (
        "JSON Web Token",
        rf"eyJ(?<![{_B64URL}]eyJ)[{_B64URL}]{{5,160}}\.eyJ[{_B64URL}]{{5}}",
        (),
    ),
    "password_assignment": (
        "password assignment",
        # password = "..." | passwd: '...' | secret=a value with a digit or symbol in its first 12
        r"(?<![a-z0-9])(?:pass(?:word|wd|phrase)|pwd|secret)[\"']?[ \t]{0,3}(?::=|=>|[:=])"
        r"[ \t]{0,3}(?:\"[^\"\r\n]{4}|'[^'\r\n]{4}|[a-z]{0,11}[0-9!@#^&+=?~|\\])",
        ("pass", "pwd", "secret"),
    ),
}


def build(direction: str, settings: SecretsSettings) -> MultiPatternScanner | None:
    """The scanner, or ``None`` when it is off or has no kinds."""
    if not settings.enabled or not settings.kinds:
        return None
    parts = []
    for kind in dict.fromkeys(settings.kinds):
        reason, source, anchors = KINDS[kind]
        longest = max_width(source)
        assert longest is not None, kind
        parts.append(
            PatternScanner(
                NAME,
                re.compile(source),
                longest,
                constant(reason),
                lookahead=False,
                fold=bool(anchors),
                anchors=anchors,
            )
        )
    return MultiPatternScanner(NAME, parts)

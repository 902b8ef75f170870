"""Every credential format of ``secrets``: a format-valid fake is found (and its whole value
spanned for redaction), a near miss passes. The fakes are built here, never real keys."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest

from guard_proxy.config.settings import SECRET_ACTIONS, SECRET_KINDS, SecretsSettings
from guard_proxy.guard.redaction import Finder
from guard_proxy.guard.scanners import secrets

_rng = random.Random(26)
HEX = "0123456789abcdef"
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "_-"


def r(alphabet: str, n: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def letters(n: int) -> str:
    return r(string.ascii_letters, n)


AZURE = r(B64, 86)
JWT_HEAD = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
JWT = f"{JWT_HEAD}.eyJzdWIiOiIxMjM0NTY3ODkwIn0.{r(URLSAFE, 43)}"
KEY_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"

# kind -> (text with a fake, the value a redaction must cover, a near miss)
CASES: dict[str, tuple[str, str, str]] = {}


def case(kind: str, before: str, value: str, after: str, near: str) -> None:
    CASES[kind] = (f"{before}{value}{after}", value, near)


case(
    "private_key",
    '{"type": "service_account", "private_key": "',
    f"-----BEGIN PRIVATE KEY-----\\n{KEY_BODY}\\n-----END PRIVATE KEY-----",
    '\\n"}',
    f"-----BEGIN PUBLIC KEY-----\n{KEY_BODY}\n-----END PUBLIC KEY-----",
)
case(
    "aws_access_key",
    "id ",
    "AKIA" + r(string.ascii_uppercase + "234567", 16),
    " here",
    "id AKIA" + r(string.ascii_uppercase, 15) + " here",
)
case(
    "aws_secret_key",
    "aws_secret_access_key = ",
    r(B64, 40),
    "\n",
    "aws_secret_access_key = " + r(B64, 39) + "\n",
)
case(
    "azure_storage_key",
    "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=",
    AZURE + "==",
    ";EndpointSuffix=core.windows.net",
    f"AccountName=acme;AccountKey={AZURE[:-1]}==;",
)
case("github_token", "token: ", "ghp_" + r(ALNUM, 36), "", "token: ghx_" + r(ALNUM, 36))
case("gitlab_token", "GITLAB ", "glpat-" + r(URLSAFE, 20), " ok", "GITLAB glpat-" + r(ALNUM, 19))
case(
    "slack_token",
    "bot ",
    "xoxb-" + r(HEX, 12) + "-" + r(ALNUM, 24),
    " ok",
    "bot xoxq-" + r(HEX, 12),
)
case(
    "slack_webhook",
    "url https://",
    "hooks.slack.com/services/T0" + r(ALNUM, 8) + "/B0" + r(ALNUM, 8) + "/" + r(ALNUM, 24),
    " ok",
    "see https://hooks.slack.com/help/articles",
)
case("google_api_key", "key=", "AIza" + r(URLSAFE, 35), "&q=1", "key=AIza" + r(URLSAFE, 34))
case(
    "openai_api_key",
    "OPENAI ",
    "sk-proj-" + r(URLSAFE, 48),
    " ok",
    "OPENAI sk-" + r(ALNUM, 19) + " ok",
)
case(
    "anthropic_api_key",
    "x ",
    "sk-ant-api03-" + r(URLSAFE, 93) + "AA",
    " ok",
    "x sk-ant-api03-" + r(URLSAFE, 93) + "AB ok",
)
case("huggingface_token", "HF ", "hf_" + letters(34), " ok", "HF hf_" + letters(33) + " ok")
case(
    "stripe_live_key", "stripe ", "sk_live_" + r(ALNUM, 24), " ok", "stripe sk_test_" + r(ALNUM, 24)
)
case(
    "npm_token",
    "//registry.npmjs.org/:_authToken=",
    "npm_" + r(ALNUM, 36),
    "\n",
    "npm_" + r(ALNUM, 35) + "\n",
)
case(
    "pypi_token",
    "password = ",
    "pypi-AgEIcHlwaS5vcmc" + r(URLSAFE, 60),
    "\n",
    "pypi-AgEIcHlwaS5vcm" + r(URLSAFE, 60),
)
case(
    "rubygems_token", "GEM ", "rubygems_" + r(HEX, 48), " ok", "GEM rubygems_" + r(HEX, 47) + " ok"
)
case(
    "sendgrid_api_key",
    "SG ",
    "SG." + r(URLSAFE, 22) + "." + r(URLSAFE, 43),
    " ok",
    "SG SG." + r(URLSAFE, 22) + "." + r(URLSAFE, 42) + " ok",
)
case("twilio_api_key", "twilio ", "SK" + r(HEX, 32), " ok", "twilio SK" + r(HEX, 31) + " ok")
case("mailgun_api_key", "mg ", "key-" + r(HEX, 32), " ok", "mg key-" + r(HEX, 31) + " ok")
case("digitalocean_token", "DO ", "dop_v1_" + r(HEX, 64), " ok", "DO dop_v2_" + r(HEX, 64))
case("shopify_token", "shop ", "shpat_" + r(HEX, 32), " ok", "shop shpxx_" + r(HEX, 32))
case("databricks_token", "db ", "dapi" + r(HEX, 32), " ok", "db dapi" + r(HEX, 31) + " ok")
case(
    "grafana_token",
    "gf ",
    "glsa_" + r(ALNUM, 32) + "_" + r(HEX, 8),
    " ok",
    "gf glsa_" + r(ALNUM, 32) + "_" + r(HEX, 7) + " ok",
)
case(
    "postman_api_key",
    "pm ",
    "PMAK-" + r(HEX, 24) + "-" + r(HEX, 34),
    " ok",
    "pm PMAK-" + r(HEX, 24) + "-" + r(HEX, 33) + " ok",
)
case("linear_api_key", "lin ", "lin_api_" + r(ALNUM, 40), " ok", "lin lin_api_" + r(ALNUM, 39))
case("pulumi_token", "pul ", "pul-" + r(HEX, 40), " ok", "pul pul-" + r(HEX, 39) + " ok")
case(
    "hashicorp_vault_token",
    "VAULT_TOKEN=",
    "hvs." + r(URLSAFE, 90),
    "\n",
    "vault hvs." + r(URLSAFE, 89) + "\n",
)
case("jwt", "Authorization: Bearer ", JWT, "\n", f"header {JWT_HEAD} only")
case(
    "password_assignment",
    'db:\n  password: "',
    "hunter2!x",
    '"\n',
    "the password field is required",
)
case(
    "generic_secret_assignment",
    "export PAYMENT_API_KEY=",
    "Zx81kQ9mPq7LwR2tVb5N",
    "\n",
    "export PAYMENT_API_KEY=your_api_key_here\n",
)


def test_every_kind_has_a_case() -> None:
    assert set(CASES) == set(SECRET_KINDS) == set(secrets.KINDS) == set(SECRET_ACTIONS)


def _scanner(kind: str) -> secrets.MultiPatternScanner:
    scanner = secrets.build("input", SecretsSettings(kinds=(kind,), actions={kind: "block"}))
    assert scanner is not None
    return scanner


@pytest.mark.parametrize("kind", SECRET_KINDS)
def test_format_valid_fake_is_found_and_spanned(kind: str) -> None:
    text, value, _ = CASES[kind]
    finding = _scanner(kind).scan(text)
    assert finding is not None and finding.reason == secrets.KINDS[kind].reason
    spans = Finder([kind]).spans(text)
    assert [text[a:b] for _, a, b in spans] == [value]


@pytest.mark.parametrize("kind", SECRET_KINDS)
def test_near_miss_passes(kind: str) -> None:
    _, _, near = CASES[kind]
    assert _scanner(kind).scan(near) is None
    assert Finder([kind]).spans(near) == ()


@pytest.mark.parametrize("kind", SECRET_KINDS)
def test_docs_table_names_the_kind_and_its_source(kind: str) -> None:
    docs = Path(__file__).parents[3] / "docs" / "scanners.md"
    rows = [line for line in docs.read_text().splitlines() if line.startswith(f"| `{kind}` |")]
    assert len(rows) == 1, kind
    assert secrets.KINDS[kind].source.split(";")[0].split(",")[0].strip() in rows[0]

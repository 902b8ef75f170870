"""Secrets in Redis and Sentinel files: the character set assert.yml allows,
the quoting of the templates (read back by real Redis and Sentinel processes),
and redis-config-check never printing a line of a file that holds a secret."""

from __future__ import annotations

import copy
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    ASSERT_BASE,
    ROOT,
    SENTINEL_BASE,
    Servers,
    checks_task,
    free_port,
    redis_cli,
    run_assert_cases,
    run_playbook,
    wait_until,
)

# Every character the guard allows besides letters and digits (no '{{' or '{%':
# play variables are templates).
PUNCTUATION = "!#$%&()*+,-./:;<=>?@[]^_`|~{x}"
MARK = "Zq7Secret"  # never to appear in any output

# (variable or user field, bad character)
BAD = {
    "space": " ",
    "double_quote": '"',
    "single_quote": "'",
    "backslash": "\\",
    "newline": "\n",
    "tab": "\t",
    "non_ascii": "é",
}


def bad_secret(char: str) -> str:
    return f"{MARK}-long-enough{char}tail"


@pytest.fixture(scope="module")
def charset(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    cases: dict[str, dict[str, Any]] = {
        "good_plain": copy.deepcopy(ASSERT_BASE),
        "good_sentinel": copy.deepcopy(SENTINEL_BASE),
    }
    good = copy.deepcopy(SENTINEL_BASE)
    for key in ("redis_replication_password", "redis_sentinel_acl_password"):
        good[key] = f"Ab1{PUNCTUATION}"
    good["redis_admin_password"] = f"Cd2{PUNCTUATION}"
    good["redis_acl_users"][0]["password"] = f"Ef3{PUNCTUATION}"
    cases["good_punctuation"] = good
    for name, char in BAD.items():
        case = copy.deepcopy(ASSERT_BASE)
        case["redis_admin_password"] = bad_secret(char)
        cases[f"admin_{name}"] = case
    for key in (
        "redis_replication_password",
        "redis_sentinel_acl_password",
        "redis_sentinel_password",
        "redis_sentinel_client_password",
        "redis_sentinel_password_next",
    ):
        case = copy.deepcopy(SENTINEL_BASE)
        case[key] = bad_secret(" ")
        cases[key] = case
    case = copy.deepcopy(ASSERT_BASE)
    case["redis_acl_users"][0]["password"] = bad_secret('"')
    cases["acl_user_password"] = case
    case = copy.deepcopy(ASSERT_BASE)
    case["redis_acl_users"][0]["previous_password"] = bad_secret("\\")
    cases["acl_user_previous_password"] = case
    return run_assert_cases(tmp_path_factory.mktemp("charset"), cases)


@pytest.mark.parametrize("case", ["good_plain", "good_sentinel", "good_punctuation"])
def test_printable_ascii_secrets_pass(charset: tuple[dict[str, Any], str], case: str) -> None:
    assert charset[0][case]["ok"], charset[0][case]


@pytest.mark.parametrize("name", list(BAD))
def test_the_admin_password_is_refused_for_a_bad_character(
    charset: tuple[dict[str, Any], str], name: str
) -> None:
    result = charset[0][f"admin_{name}"]
    assert not result["ok"]
    assert (
        result["task"] == "Refuse Redis and Sentinel secrets with characters a secret may not hold"
    )
    assert "redis_admin_password holds a character other than printable ASCII" in " ".join(
        result["msgs"]
    )


@pytest.mark.parametrize(
    "key",
    [
        "redis_replication_password",
        "redis_sentinel_acl_password",
        "redis_sentinel_password",
        "redis_sentinel_client_password",
        "redis_sentinel_password_next",
    ],
)
def test_a_sentinel_mode_secret_is_refused_by_name(
    charset: tuple[dict[str, Any], str], key: str
) -> None:
    result = charset[0][key]
    assert not result["ok"]
    message = " ".join(result["msgs"])
    assert f"{key} holds a character other than printable ASCII" in message
    assert "Sentinel rewrites its passwords unquoted" in message


@pytest.mark.parametrize("case", ["acl_user_password", "acl_user_previous_password"])
def test_an_acl_user_password_is_refused_naming_the_user(
    charset: tuple[dict[str, Any], str], case: str
) -> None:
    result = charset[0][case]
    assert not result["ok"]
    assert result["task"] == "Refuse ACL user passwords with characters a secret may not hold"
    assert "Redis ACL user 'guard-proxy' holds a character" in " ".join(result["msgs"])


def test_no_secret_appears_in_the_output_or_the_messages(
    charset: tuple[dict[str, Any], str],
) -> None:
    results, output = charset
    assert MARK not in output
    assert all(MARK not in msg for result in results.values() for msg in result.get("msgs", []))


# --- quoting -----------------------------------------------------------------


def _load_filter() -> Any:
    path = ROOT / "roles/redis/filter_plugins/redis_config.py"
    spec = importlib.util.spec_from_file_location("redis_config_filter", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.redis_quote


@pytest.mark.parametrize(
    "value",
    ["plain", "a b", 'q"uote', "s'ingle", "back\\slash", "new\nline", "tab\tx", "ctl\x01x",
     "#hash", "é ü", "\\x41", ""],
)  # fmt: skip
def test_redis_quote_reads_back_unchanged_in_redis(
    value: str, servers: Servers, tmp_path: Path
) -> None:
    """Any string, even those the guard refuses, survives redis_quote: a real
    redis-server reads it back through CONFIG GET."""
    quote = _load_filter()
    conf = tmp_path / "quoted.conf"
    conf.write_text(f"masterauth {quote(value)}\n", encoding="utf-8")
    port = free_port()
    proc, log = servers.start(
        str(conf), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(tmp_path), log_name="quoted.log",
    )  # fmt: skip
    wait_until(
        lambda: proc.poll() is not None or redis_cli(port, "PING").stdout.strip() == "PONG",
        what="redis",
    )
    assert proc.poll() is None, log.read_text()
    reply = subprocess.run(
        ["redis-cli", "-p", str(port), "--no-raw", "CONFIG", "GET", "masterauth"],
        capture_output=True, check=True, timeout=10,
    )  # fmt: skip
    # --no-raw prints the value quoted the way Redis writes it itself
    # (sdscatrepr): decode that back to bytes.
    line = reply.stdout.decode().splitlines()[1]
    assert line.startswith('2) "') and line.endswith('"'), line
    assert _unrepr(line[4:-1]) == value.encode()


def _unrepr(text: str) -> bytes:
    out, i = bytearray(), 0
    simple = {"n": 10, "r": 13, "t": 9, "a": 7, "b": 8, "\\": 92, '"': 34}
    while i < len(text):
        if text[i] == "\\":
            if text[i + 1] == "x":
                out.append(int(text[i + 2 : i + 4], 16))
                i += 4
                continue
            out.append(simple[text[i + 1]])
            i += 2
            continue
        out += text[i].encode()
        i += 1
    return bytes(out)


# --- the templates, rendered by Ansible and read by Redis and Sentinel -----------

REPL_PASSWORD = f"Rp1{PUNCTUATION}"
SENT_ACL_PASSWORD = f"Sa2{PUNCTUATION}"
SENT_PASSWORD = f"Sp3{PUNCTUATION}"
ADMIN_PASSWORD = f"Ad4{PUNCTUATION}"
CLIENT_PASSWORD = f"Cl5{PUNCTUATION}"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("render")
    out = tmp / "out"
    out.mkdir()
    primary_port, replica_port, sentinel_port = free_port(), free_port(), free_port()
    variables = {
        **copy.deepcopy(SENTINEL_BASE),
        "redis_admin_password": ADMIN_PASSWORD,
        "redis_replication_password": REPL_PASSWORD,
        "redis_sentinel_acl_password": SENT_ACL_PASSWORD,
        "redis_sentinel_password": SENT_PASSWORD,
        "redis_sentinel_client_password": CLIENT_PASSWORD,
        "redis_server_version": "7.0.15",
        "redis_replication_address": "127.0.0.1",
        "redis_port": primary_port,
        "redis_sentinel_port": sentinel_port,
        "redis_sentinel_bind": ["127.0.0.1"],
        "redis_sentinel_service": "guard-cache",
        "redis_sentinel_quorum": 1,
        "_redis_runtime_dir": str(out),
        "_redis_sentinel_static_conf": str(out / "sentinel-static.conf"),
        "_redis_sentinel_acl_path": str(out / "sentinel-users.acl"),
        "_redis_primary": ["127.0.0.1", str(primary_port)],
    }
    templates = ROOT / "roles/redis/templates"
    files = [
        "users.acl",
        "replication.conf",
        "sentinel-users.acl",
        "sentinel-static.conf",
        "sentinel-runtime.conf",
    ]
    plays = [
        {
            "name": "Render the Redis and Sentinel files",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                checks_task("redis"),
                *[
                    {
                        "name": f"Render {name}",
                        "ansible.builtin.template": {
                            "src": str(templates / f"{name}.j2"),
                            "dest": str(out / name),
                            "mode": "0600",
                        },
                    }
                    for name in files
                ],
            ],
        }
    ]
    run = run_playbook(tmp, plays, extra_vars=variables)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr
    for password in (REPL_PASSWORD, SENT_ACL_PASSWORD, SENT_PASSWORD, ADMIN_PASSWORD, CLIENT_PASSWORD):
        assert password not in run.stdout + run.stderr
    return {
        "dir": out,
        "primary_port": primary_port,
        "replica_port": replica_port,
        "sentinel_port": sentinel_port,
    }


def test_secrets_are_written_double_quoted(rendered: dict[str, Any]) -> None:
    out = rendered["dir"]
    replication = (out / "replication.conf").read_text()
    assert f'masterauth "{REPL_PASSWORD}"' in replication.splitlines()
    static = (out / "sentinel-static.conf").read_text().splitlines()
    assert f"aclfile {out / 'sentinel-users.acl'}" in static
    assert not [line for line in static if line.startswith("requirepass")]
    assert f'sentinel sentinel-pass "{SENT_PASSWORD}"' in static
    runtime = (out / "sentinel-runtime.conf").read_text().splitlines()
    assert f'sentinel auth-pass guard-cache "{SENT_ACL_PASSWORD}"' in runtime
    acl = (out / "users.acl").read_text() + (out / "sentinel-users.acl").read_text()
    for password in (REPL_PASSWORD, SENT_ACL_PASSWORD, SENT_PASSWORD, ADMIN_PASSWORD, CLIENT_PASSWORD):
        assert password not in acl  # digests only


def _start_primary(servers: Servers, rendered: dict[str, Any], tmp: Path) -> int:
    port = rendered["primary_port"]
    data = tmp / "primary"
    data.mkdir()
    proc, log = servers.start(
        "--port", str(port), "--bind", "127.0.0.1", "--aclfile", str(rendered["dir"] / "users.acl"),
        "--save", "", "--appendonly", "no", "--dir", str(data), log_name="primary.log",
    )  # fmt: skip
    wait_until(
        lambda: (
            proc.poll() is not None
            or redis_cli(port, "PING", password=ADMIN_PASSWORD, user="default").stdout.strip()
            == "PONG"
        ),
        what="the primary",
    )
    assert proc.poll() is None, log.read_text()
    return port


def test_a_replica_authenticates_with_the_rendered_masterauth(
    rendered: dict[str, Any], servers: Servers, tmp_path: Path
) -> None:
    primary = _start_primary(servers, rendered, tmp_path)
    replica = rendered["replica_port"]
    conf = tmp_path / "replica.conf"
    conf.write_text(
        f"include {rendered['dir'] / 'replication.conf'}\n"
        f'port {replica}\nbind 127.0.0.1\nsave ""\nappendonly no\ndir {tmp_path}\n'
        f"replicaof 127.0.0.1 {primary}\n"
    )
    proc, log = servers.start(str(conf), log_name="replica.log")

    def link_up() -> bool:
        assert proc.poll() is None, log.read_text()
        return "master_link_status:up" in redis_cli(replica, "INFO", "replication").stdout

    wait_until(link_up, what="the replica's link to the primary")
    acl_log = redis_cli(primary, "ACL", "LOG", password=ADMIN_PASSWORD, user="default")
    assert "auth" not in acl_log.stdout


def test_the_sentinel_reads_its_passwords_also_after_rewriting_its_file(
    rendered: dict[str, Any], servers: Servers, tmp_path: Path
) -> None:
    """The ACL users and auth-pass as rendered work; Sentinel then rewrites its file
    (auth-pass unquoted, no user copied into it) and, restarted from it, still
    authenticates both ways; the client user may ask for the primary and nothing else."""
    primary = _start_primary(servers, rendered, tmp_path)
    port = rendered["sentinel_port"]
    runtime = tmp_path / "sentinel.conf"
    shutil.copy(rendered["dir"] / "sentinel-runtime.conf", runtime)

    def start() -> subprocess.Popen[bytes]:
        proc, log = servers.start(
            str(runtime), "--sentinel", "--supervised", "no", "--pidfile",
            str(tmp_path / "sentinel.pid"), log_name="sentinel.log",
        )  # fmt: skip
        wait_until(
            lambda: (
                proc.poll() is not None
                or redis_cli(port, "PING", password=SENT_PASSWORD).stdout.strip() == "PONG"
            ),
            what="the Sentinel",
        )
        assert proc.poll() is None, log.read_text()
        return proc

    def sentinel_logged_in() -> bool:
        clients = redis_cli(primary, "CLIENT", "LIST", password=ADMIN_PASSWORD, user="default")
        return " user=sentinel " in clients.stdout

    def as_client(*args: str) -> str:
        out = redis_cli(port, *args, password=CLIENT_PASSWORD, user="guard-proxy")
        return out.stdout + out.stderr

    proc = start()
    assert "NOAUTH" in redis_cli(port, "PING").stdout + redis_cli(port, "PING").stderr
    wait_until(sentinel_logged_in, what="the Sentinel's login on the primary")
    assert as_client("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "guard-cache").split() == [
        "127.0.0.1", str(primary)]  # fmt: skip
    assert "guard-cache" in as_client("SENTINEL", "MASTERS")
    for command in (["SENTINEL", "FAILOVER", "guard-cache"], ["SENTINEL", "SET", "guard-cache",
                    "quorum", "2"], ["SENTINEL", "CONFIG", "GET", "*"], ["ACL", "LIST"]):  # fmt: skip
        assert "NOPERM" in as_client(*command), command
    redis_cli(port, "SENTINEL", "FLUSHCONFIG", password=SENT_PASSWORD)
    servers.stop(proc)
    rewritten = runtime.read_text()
    assert "sentinel myid" in rewritten  # rewritten by the Sentinel
    assert not [line for line in rewritten.splitlines() if line.startswith(("user ", "requirepass"))]
    kill = redis_cli(
        primary, "CLIENT", "KILL", "USER", "sentinel", password=ADMIN_PASSWORD, user="default"
    )
    assert kill.returncode == 0, kill.stderr
    start()
    wait_until(sentinel_logged_in, what="the restarted Sentinel's login on the primary")
    acl_log = redis_cli(primary, "ACL", "LOG", password=ADMIN_PASSWORD, user="default")
    assert "auth" not in acl_log.stdout


# --- redis-config-check --------------------------------------------------------

CHECK = ROOT / "roles/redis/files/redis-config-check"


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0:
        pytest.skip("redis-config-check runs redis-server as the redis user: needs root")
    return subprocess.run(
        ["sh", str(CHECK), *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_config_check_withholds_the_line_of_a_file_with_a_secret(tmp_path: Path) -> None:
    conf = tmp_path / "candidate.conf"
    conf.write_text(f'port 0\nmasterauth "{MARK} unbalanced\n')
    run = _check("--conf", str(conf))
    assert run.returncode == 1
    assert MARK not in run.stdout + run.stderr
    assert f"{conf}:2: masterauth ... (rest of the line withheld" in run.stderr
    assert "Unbalanced quotes" in run.stderr


def test_config_check_withholds_a_value_on_a_line_of_its_own(tmp_path: Path) -> None:
    conf = tmp_path / "candidate.conf"
    conf.write_text(f"port 0\nrequirepass x\n{MARK}-fragment\n")
    run = _check("--conf", str(conf))
    assert run.returncode == 1
    assert MARK not in run.stdout + run.stderr
    assert f"{conf}:3: (not shown)" in run.stderr


def test_config_check_withholds_acl_operations_that_hold_a_password(tmp_path: Path) -> None:
    acl = tmp_path / "users.acl"
    acl.write_text(f"user default on nopass ~* +@all\nuser app on #{MARK} ~x +bogus\n")
    run = _check("--acl", str(acl))
    assert run.returncode == 1
    assert MARK not in run.stdout + run.stderr
    assert "users.acl:2:" in run.stderr


def test_config_check_still_shows_lines_of_a_file_without_secrets(tmp_path: Path) -> None:
    conf = tmp_path / "candidate.conf"
    conf.write_text("port 0\nmaxmemory-policy bogus-policy\n")
    run = _check("--conf", str(conf))
    assert run.returncode == 1
    assert ">>> 'maxmemory-policy bogus-policy'" in run.stderr

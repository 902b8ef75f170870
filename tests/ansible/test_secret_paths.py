"""The paths by which a Redis or Sentinel secret could leave the host or reach a process
list, each exercised with the role's own task against real processes: the Sentinel
probe of primary.yml (TLS only, plain text only in the explicit migration mode), the
runtime-file render of replication.yml under ``--check --diff`` after Redis rewrote
``masterauth`` into it, and the password task of sentinel.yml (argv of every command
it runs, recorded by shims on PATH)."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import (
    ROOT,
    SENTINEL_BASE,
    TOOLS,
    Servers,
    ansible_env,
    free_port,
    redis_cli,
    run_playbook,
    wait_until,
)

SENT = "Sent1nel-Passw0rd-For-Tests"
SENT_ACL = "Sent1nel-ACL-Passw0rd-Tests"
REPL = "Repl1cation-Passw0rd-Tests"


def role_task(file: str, name: str) -> dict[str, Any]:
    """The task called ``name`` in roles/redis/tasks/``file``, as the role has it."""
    tasks = yaml.safe_load((ROOT / "roles/redis/tasks" / file).read_text())
    found = [task for task in tasks if task.get("name") == name]
    assert len(found) == 1, f"{file} has no single task {name!r}"
    return copy.deepcopy(found[0])


def play(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": "Secret paths", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]


# --- primary.yml: no plain-text AUTH towards a Sentinel with TLS on ---------------


class RecordingListener:
    """A TCP listener that records every byte it receives and answers nothing: what a
    peer that dropped its TLS port (or an attacker in its place) would see."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = int(self.sock.getsockname()[1])
        self.received = bytearray()
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(0.5)
                try:
                    while chunk := conn.recv(4096):
                        self.received += chunk
                except (TimeoutError, ConnectionError):
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[RecordingListener]:
    rec = RecordingListener()
    try:
        yield rec
    finally:
        rec.close()


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and a client certificate for redis-cli --tls (the host's pair)."""
    d = tmp_path_factory.mktemp("ca")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=30)

    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=test-ca")  # fmt: skip
    openssl("req", *ec, "-keyout", "redis.key", "-out", "redis.csr", "-subj", "/CN=localhost")
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    openssl("x509", "-req", "-in", "redis.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "ext", "-out", "redis.crt")  # fmt: skip
    return d


def _ask_sentinels(tmp: Path, ca: Path, port: int, migration: bool) -> tuple[dict[str, Any], str]:
    out = tmp / "view.json"
    variables = {
        **copy.deepcopy(SENTINEL_BASE),
        "redis_sentinel_password": SENT,
        "redis_replication_address": "127.0.0.1",
        "redis_sentinel_port": port,
        "redis_tls_enabled": True,
        "redis_tls_migration": migration,
        "_redis_tls_ca_file": str(ca / "ca.crt"),
        "_redis_tls_cert_file": str(ca / "redis.crt"),
        "_redis_tls_key_file": str(ca / "redis.key"),
    }
    tasks = [
        {
            "name": "Find the primary (roles/redis/tasks/primary.yml)",
            "ansible.builtin.include_role": {"name": "redis", "tasks_from": "primary"},
        },
        {
            "name": "Record the view",
            "ansible.builtin.copy": {
                "dest": str(out),
                "mode": "0600",
                "content": "{{ {'primary': _redis_primary,"
                " 'known': _redis_view_known} | to_json }}",
            },
        },
    ]
    run = run_playbook(tmp, play(tasks), extra_vars=variables)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr
    return yaml.safe_load(out.read_text()), run.stdout + run.stderr


def test_with_tls_a_sentinel_is_never_asked_in_plain_text(
    tmp_path: Path, ca: Path, listener: RecordingListener
) -> None:
    """The Sentinel's TLS port answers no TLS (dropped, or not TLS): the probe gives up
    with the inventory's primary, and the password never crossed the wire."""
    view, output = _ask_sentinels(tmp_path, ca, listener.port, migration=False)
    assert listener.connections >= 1  # the TLS attempt reached the listener
    assert b"\x16\x03" in listener.received[:8]  # it was a TLS ClientHello
    assert SENT.encode() not in listener.received
    assert b"AUTH" not in listener.received
    assert view == {"primary": ["127.0.0.1", "6379"], "known": False}
    assert SENT not in output


def test_the_migration_mode_asks_in_plain_text_too(
    tmp_path: Path, ca: Path, listener: RecordingListener
) -> None:
    """redis_tls_migration is the one, explicit way to the plain-text question."""
    _ask_sentinels(tmp_path, ca, listener.port, migration=True)
    assert listener.connections >= 2
    assert b"AUTH" in listener.received


# --- replication.yml: no masterauth in a --check --diff ---------------------------


def test_check_diff_of_the_runtime_file_after_a_failover_prints_no_password(
    tmp_path: Path, servers: Servers
) -> None:
    """A real Redis rewrites its runtime file the way Sentinel makes it after a failover
    (CONFIG REWRITE with the replication password in masterauth); the role's render of
    that file in a dry run with --diff must show no line of it."""
    runtime = tmp_path / "runtime.conf"
    include = tmp_path / "replication.conf"
    include.write_text("")
    port = free_port()
    runtime.write_text(
        f'include {include}\nport {port}\nbind 127.0.0.1\nsave ""\nappendonly no\ndir {tmp_path}\n'
    )
    proc, log = servers.start(str(runtime), log_name="redis.log")
    wait_until(
        lambda: proc.poll() is not None or redis_cli(port, "PING").stdout.strip() == "PONG",
        what="redis",
    )
    assert proc.poll() is None, log.read_text()
    for args in (["CONFIG", "SET", "masterauth", REPL], ["REPLICAOF", "127.0.0.1", "1"],
                 ["CONFIG", "REWRITE"]):  # fmt: skip
        assert redis_cli(port, *args).stdout.strip() == "OK", args
    servers.stop(proc)
    assert REPL in runtime.read_text()  # what a failover leaves in the file

    task = role_task(
        "replication.yml", "Write the runtime configuration (includes and current replicaof)"
    )
    template = task["ansible.builtin.template"]
    template["src"] = str(ROOT / "roles/redis/templates/redis-runtime.conf.j2")
    del template["owner"], template["group"]
    task.pop("when")
    variables = {
        "redis_no_log": True,
        "redis_conf_path": str(tmp_path / "redis.conf"),
        "_redis_replication_conf": str(include),
        "_redis_runtime_conf": str(runtime),
        "_redis_primary": ["127.0.0.1", str(port)],
        "redis_replication_address": "127.0.0.1",
        "redis_port": port,
    }
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(yaml.safe_dump(play([task])))
    (tmp_path / "vars.yml").write_text(yaml.safe_dump(variables))
    run = subprocess.run(
        [str(TOOLS / "bin/ansible-playbook"), "-i", "localhost,", "-c", "local", "--check",
         "--diff", "-e", f"ansible_python_interpreter={TOOLS / 'bin/python'}", "-e",
         f"@{tmp_path / 'vars.yml'}", str(playbook)],
        cwd=tmp_path, env=ansible_env(tmp_path), capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert "changed=1" in output  # the dry run would drop the rewritten lines
    assert REPL not in output
    assert "masterauth" not in output


# --- sentinel.yml: no password in the argv of any command -------------------------

SHIMMED = ("grep", "redis-cli", "sed", "awk", "cut", "tr", "timeout", "printf", "cat")


def _shims(tmp: Path) -> tuple[Path, Path]:
    """A directory of wrappers that log their argv, then run the real command."""
    shims, log = tmp / "shims", tmp / "argv.log"
    shims.mkdir()
    for name in SHIMMED:
        real = subprocess.run(
            ["sh", "-c", f"command -v {name}"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if not real.startswith("/"):
            continue
        shim = shims / name
        shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "{name} $*" >> {log}\nexec {real} "$@"\n')
        shim.chmod(0o755)
    return shims, log


@pytest.fixture
def sentinel(tmp_path: Path, servers: Servers) -> tuple[int, Path]:
    """A real Sentinel (plain text, password required) watching a primary that is not
    there; its file holds an outdated auth-pass."""
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\nrequirepass {SENT}\n"
        f"sentinel monitor guard-cache 127.0.0.1 {free_port()} 1\n"
        "sentinel auth-pass guard-cache Old-Passw0rd-Before-Rotation\n"
    )
    proc, log = servers.start(str(conf), "--sentinel", log_name="sentinel.log")
    wait_until(
        lambda: (
            proc.poll() is not None
            or redis_cli(port, "PING", password=SENT).stdout.strip() == "PONG"
        ),
        what="the Sentinel",
    )
    assert proc.poll() is None, log.read_text()
    return port, conf


def test_the_sentinel_password_task_puts_no_password_in_any_argv(
    tmp_path: Path, sentinel: tuple[int, Path]
) -> None:
    port, conf = sentinel
    shims, log = _shims(tmp_path)
    task = role_task(
        "sentinel.yml", "Apply the Sentinel's passwords (towards the other Sentinels and Redis)"
    )
    task["environment"] = {"PATH": f"{shims}:{os.environ['PATH']}"}
    variables = {
        "redis_no_log": True,
        "redis_sentinel_port": port,
        "redis_sentinel_service": "guard-cache",
        "redis_sentinel_password": SENT,
        "redis_sentinel_acl_password": SENT_ACL,
        "_redis_sentinel_runtime_conf": str(conf),
        "_redis_cli_tls": "",
        # The flavour's CLI (roles/redis/vars/flavour-redis.yml; the shims wrap it).
        "_redis_cli": "redis-cli",
        "_redis_sentinel_runs": True,
    }
    first = run_playbook(tmp_path, play([task]), extra_vars=variables)
    assert first.returncode == 0 and "changed=1" in first.stdout, first.stdout[-3000:]
    # The Sentinel persisted the new auth-pass; the second run finds it (grep) and
    # changes nothing.
    assert SENT_ACL in conf.read_text()
    second = run_playbook(tmp_path, play([task]), extra_vars=variables)
    assert second.returncode == 0 and "changed=0" in second.stdout, second.stdout[-3000:]
    argv = log.read_text()
    assert "grep " in argv and "redis-cli " in argv  # the shims saw the commands
    assert SENT_ACL not in argv
    assert SENT not in argv

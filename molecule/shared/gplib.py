"""Helpers shared by the Molecule scenarios' testinfra tests.

Hosts are podman containers reached with testinfra's ``podman://`` backend, whose
commands run through nsenter (nsenter.py).
Secrets read from a host travel to another only through ``podman exec -i``'s
stdin, never on a command line, so the process-list checks stay meaningful.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import nsenter  # noqa: F401  (podman:// hosts run their commands through nsenter)
import yaml



@dataclass(frozen=True)
class Flavour:
    """The names of one server flavour as Debian packages it (roles/redis/vars/flavour-*.yml)."""

    name: str
    user: str
    server_package: str
    sentinel_package: str
    server_unit: str
    sentinel_unit: str
    conf_dir: str
    conf: str
    data_dir: str
    cli: str

    @property
    def runtime_conf(self) -> str:
        """The file the server starts from in Sentinel mode (the role's _redis_runtime_conf)."""
        return f"{self.conf_dir}/runtime/{self.conf.rsplit('/', 1)[1]}"


FLAVOURS = {
    "redis": Flavour(
        name="redis",
        user="redis",
        server_package="redis-server",
        sentinel_package="redis-sentinel",
        server_unit="redis-server.service",
        sentinel_unit="redis-sentinel.service",
        conf_dir="/etc/redis",
        conf="/etc/redis/redis.conf",
        data_dir="/var/lib/redis",
        cli="redis-cli",
    ),
    "valkey": Flavour(
        name="valkey",
        user="valkey",
        server_package="valkey-server",
        sentinel_package="valkey-sentinel",
        server_unit="valkey-server.service",
        sentinel_unit="valkey-sentinel.service",
        conf_dir="/etc/valkey",
        conf="/etc/valkey/valkey.conf",
        data_dir="/var/lib/valkey",
        cli="valkey-cli",
    ),
}
# The flavour a scenario deploys (redis_server_flavour in its inventory), from its
# molecule.yml (verifier env GP_REDIS_FLAVOUR); Redis when unset.
FLAVOUR = FLAVOURS[os.environ.get("GP_REDIS_FLAVOUR", "redis")]
# The other flavour: never installed on the scenario's hosts.
OTHER_FLAVOUR = next(f for f in FLAVOURS.values() if f is not FLAVOUR)

PROXY_CONFIG = "/etc/guard-proxy/config.yaml"
PROXY_UNIT = "guard-proxy.service"
REDIS_UNIT = FLAVOUR.server_unit
REDIS_CONF = FLAVOUR.conf
CACHE_PREFIX = "guard:"
SECRET_DIR = "/run/gp-test"

# Requests through a proxy (run inside its host) until a stop file appears (bounded: at most
# max_seconds and max_requests); prints {"ok": n, "failed": n, "errors": [...]}.
TRAFFIC_SCRIPT = r"""
import json, os, sys, time, urllib.request, urllib.error
url, stop, max_seconds, max_requests = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
ok = failed = 0
errors = []
deadline = time.monotonic() + max_seconds
i = 0
while not os.path.exists(stop) and time.monotonic() < deadline and i < max_requests:
    i += 1
    body = json.dumps({"model": "llama3.2", "prompt": f"ECHO:traffic {i % 7}", "stream": False}).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
            ok += 1
    except Exception as exc:
        failed += 1
        errors.append(repr(exc)[:200])
    time.sleep(0.05)
print(json.dumps({"ok": ok, "failed": failed, "errors": errors[:5]}))
"""

# Steady traffic for rolling updates, run inside a host until a stop file appears: PLAIN
# clients each send a non-streamed request every ~20 ms on a new connection (alternating
# the native and the OpenAI API), STREAMS clients each run "SLOW" streams (10 s with the
# Molecule fake) back to back. A stream is complete when its last line says done and no
# line carries an error. When FIRST is given, the first stream's first line creates it.
# argv: url stop plain streams max_seconds [first]; prints one JSON line.
ROLLING_TRAFFIC_SCRIPT = r"""
import json, os, sys, threading, time, urllib.request
url, stop, plain, streams, max_seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
first = sys.argv[6] if len(sys.argv) > 6 else ""
deadline = time.monotonic() + max_seconds
lock = threading.Lock()
res = {"ok": 0, "failed": 0, "streams_complete": 0, "streams_broken": 0, "errors": []}
def note(key, error=None):
    with lock:
        res[key] += 1
        if error and len(res["errors"]) < 10:
            res["errors"].append(error[:300])
def running():
    return not os.path.exists(stop) and time.monotonic() < deadline
def post(path, body, timeout):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Connection": "close"})
    return urllib.request.urlopen(req, timeout=timeout)
def plain_client(n):
    i = 0
    while running():
        i += 1
        try:
            if i % 2:
                body = {"model": "llama3.2", "prompt": f"ECHO:rolling {n} {i % 5}", "stream": False}
                with post("/api/generate", body, 30) as r:
                    ok = r.status == 200 and "response" in json.loads(r.read())
            else:
                body = {"model": "llama3.2", "messages": [{"role": "user", "content": f"ECHO:rolling {n} {i % 5}"}]}
                with post("/v1/chat/completions", body, 30) as r:
                    ok = r.status == 200 and "choices" in json.loads(r.read())
            note("ok") if ok else note("failed", "unexpected answer")
        except Exception as exc:
            note("failed", repr(exc))
        time.sleep(0.02)
def stream_client(n):
    while running():
        body = {"model": "llama3.2", "prompt": f"SLOW stream {n}", "stream": True}
        last = None
        try:
            with post("/api/generate", body, 60) as r:
                for raw in r:
                    if not raw.strip():
                        continue
                    last = json.loads(raw)
                    if first and not os.path.exists(first):
                        open(first, "w").close()
                    if "error" in last:
                        break
            if last and last.get("done") and "error" not in last:
                note("streams_complete")
            else:
                note("streams_broken", f"last line: {last!r}")
        except Exception as exc:
            note("streams_broken", repr(exc))
threads = [threading.Thread(target=plain_client, args=(n,)) for n in range(plain)]
threads += [threading.Thread(target=stream_client, args=(n,)) for n in range(streams)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(res))
"""

# A stdlib HTTP client run inside a host (the minbase image has no curl).
# argv: method url json-body-or-empty timeout; prints one JSON line.
_HTTP = r"""
import json, sys, urllib.request, urllib.error
method, url, body, timeout = sys.argv[1:5]
data = body.encode() if body else None
req = urllib.request.Request(url, data=data, method=method)
if data is not None:
    req.add_header("Content-Type", "application/json")
try:
    with urllib.request.urlopen(req, timeout=float(timeout)) as r:
        status, headers, body = r.status, dict(r.headers), r.read().decode()
except urllib.error.HTTPError as e:
    status, headers, body = e.code, dict(e.headers), e.read().decode()
except Exception as e:  # refused, reset, timeout: status 0
    status, headers, body = 0, {}, repr(e)
print(json.dumps({"status": status, "headers": headers, "body": body}))
"""


def run_in_order(items: list[Any], order: tuple[str, ...]) -> None:
    """Sort a scenario's collected tests by module, in ``order`` (a conftest's explicit list:
    the later modules stop, fail over or re-deploy what the earlier ones only read). A module
    missing from the list is an error, so a new file is placed on purpose, not by its name."""
    unknown = sorted({item.path.name for item in items} - set(order))
    if unknown:
        raise RuntimeError(f"test modules not in the scenario's ORDER (tests/conftest.py): {unknown}")
    items.sort(key=lambda item: order.index(item.path.name))


def run_playbook(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``ansible-playbook`` from the project root against this scenario's hosts, as Molecule
    runs it (its inventory directory, its ansible.cfg through ``ANSIBLE_CONFIG``); output
    captured, no colours. Paths in ``args`` are relative to the project root."""
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    return subprocess.run(
        ["ansible-playbook", "-i", inventory, *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
    )


def name_of(host: Any) -> str:
    """The podman container name behind a testinfra host."""
    return str(host.backend.name)


def podman_exec_stdin(container: str, command: str, data: str) -> None:
    """Run ``sh -c command`` in a container with ``data`` on its stdin."""
    subprocess.run(
        ["podman", "exec", "-i", container, "sh", "-c", command],
        input=data.encode(),
        check=True,
        capture_output=True,
        timeout=60,
    )


def http(host: Any, method: str, url: str, body: Any = None, timeout: float = 15) -> dict[str, Any]:
    """One HTTP request made from inside ``host``; returns status, headers, body, json."""
    payload = json.dumps(body) if body is not None else ""
    cmd = host.run("python3 -c %s %s %s %s %s", _HTTP, method, url, payload, str(timeout))
    assert cmd.rc == 0, f"HTTP client failed on {name_of(host)}: {cmd.stderr[-500:]}"
    result: dict[str, Any] = json.loads(cmd.stdout.strip().splitlines()[-1])
    try:
        result["json"] = json.loads(result["body"])
    except ValueError:
        result["json"] = None
    return result


def proxy_config(host: Any) -> dict[str, Any]:
    """The proxy's YAML configuration as rendered on ``host``."""
    data = yaml.safe_load(host.file(PROXY_CONFIG).content_string) or {}
    assert isinstance(data, dict)
    return data


def proxy_url(host: Any) -> str:
    """Base URL of the proxy as reachable from inside its own host: https:// when its
    listener serves TLS (server.tls_cert_file; the host must trust the issuing CA)."""
    server = proxy_config(host).get("server") or {}
    addr = str(server.get("host", "127.0.0.1"))
    if addr in ("0.0.0.0", "::", ""):
        addr = "127.0.0.1"
    if ":" in addr:
        addr = f"[{addr}]"
    scheme = "https" if server.get("tls_cert_file") else "http"
    return f"{scheme}://{addr}:{int(server.get('port', 8080))}"


def _env_file_value(text: str, key: str) -> str | None:
    for line in text.splitlines():
        m = re.match(rf"^\s*(?:export\s+)?{key}=(.*)$", line)
        if m:
            return m.group(1).strip().strip("'\"")
    return None


def proxy_redis_credentials(host: Any) -> tuple[str, str]:
    """(username, password) the proxy uses for Redis, read from its files.

    The password comes from redis.password_file, or from the unit's
    EnvironmentFile/credential as REDIS_PASSWORD.
    """
    redis = proxy_config(host).get("redis") or {}
    user = str(redis.get("username") or "")
    pw = str(redis.get("password") or "")
    pw_file = str(redis.get("password_file") or "")
    if pw_file.startswith("%d/") or "${CREDENTIALS_DIRECTORY}" in pw_file:
        pw_file = ""
    if pw_file:
        pw = host.file(pw_file).content_string.rstrip("\n")
    if not pw:
        env_files = host.run(
            "systemctl show -P EnvironmentFiles %s; systemctl cat %s", PROXY_UNIT, PROXY_UNIT
        ).stdout
        for path in re.findall(r"(/\S+)", env_files):
            if path.startswith("/etc/") and host.file(path).is_file:
                value = _env_file_value(host.file(path).content_string, "REDIS_PASSWORD")
                if value:
                    pw = value
                    break
                user = user or _env_file_value(host.file(path).content_string, "REDIS_USERNAME") or ""
        if not pw:
            creds = re.findall(r"LoadCredential=\S*redis\S*:(/\S+)", env_files)
            if creds:
                pw = host.file(creds[0]).content_string.rstrip("\n")
    assert pw, "could not find the proxy's Redis password on the host"
    return user or "default", pw


def redis_cli(host: Any, args: str, *params: str, user: str = "", password: str = "") -> Any:
    """Run the flavour's CLI (redis-cli, valkey-cli) on ``host`` against 127.0.0.1,
    authenticating via REDISCLI_AUTH (both read it) from a 0600 file (never ``-a``): the
    secret is never on a command line. With TLS on that host (tls-port in redis.conf),
    over TLS with the host's own files."""
    port = redis_port(host)
    tls = redis_tls_args(host)
    if password:
        podman_exec_stdin(
            name_of(host),
            f"umask 077; mkdir -p {SECRET_DIR}; cat > {SECRET_DIR}/redis-pass",
            password,
        )
        prefix = f'REDISCLI_AUTH="$(cat {SECRET_DIR}/redis-pass)" '
        auth = f"--user {user} " if user else ""
    else:
        prefix, auth = "", ""
    return host.run(
        prefix + f"{FLAVOUR.cli} --no-auth-warning -h 127.0.0.1 -p {port} {tls}{auth}" + args, *params
    )


def redis_port(host: Any, conf_path: str = REDIS_CONF) -> int:
    """The port Redis (or, given its file, the Sentinel) serves clients on: tls-port when
    TLS is on (then `port 0`), else port."""
    conf = host.file(conf_path).content_string
    tls = re.search(r"^tls-port\s+(\d+)", conf, re.M)
    if tls and int(tls.group(1)):
        return int(tls.group(1))
    m = re.search(r"^port\s+(\d+)", conf, re.M)
    return int(m.group(1)) if m else 6379


def redis_tls_files(host: Any, conf_path: str = REDIS_CONF) -> dict[str, str]:
    """tls-ca-cert-file, tls-cert-file and tls-key-file of a host whose Redis (or Sentinel,
    given its file) has TLS on; {} without TLS."""
    conf = host.file(conf_path).content_string
    tls = re.search(r"^tls-port\s+(\d+)", conf, re.M)
    if not (tls and int(tls.group(1))):
        return {}
    return dict(re.findall(r"^(tls-(?:ca-cert|cert|key)-file)\s+(\S+)", conf, re.M))


def redis_tls_args(host: Any, conf_path: str = REDIS_CONF, client_cert: bool = True) -> str:
    """redis-cli's TLS arguments for the host's own Redis (or Sentinel), with a trailing
    space; "" without TLS. ``client_cert`` also presents the host's certificate."""
    files = redis_tls_files(host, conf_path)
    if not files:
        return ""
    args = f"--tls --cacert {files['tls-ca-cert-file']} "
    if client_cert:
        args += f"--cert {files['tls-cert-file']} --key {files['tls-key-file']} "
    return args


def main_pid(host: Any, unit: str) -> int:
    return int(host.run("systemctl show -P MainPID %s", unit).stdout.strip() or 0)


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.5) -> Any:
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    return last


def exposure(host: Any, unit: str) -> float:
    """The overall exposure score from ``systemd-analyze security UNIT``."""
    out = host.run("systemd-analyze security --no-pager %s", unit).stdout
    m = re.search(r"Overall exposure level for \S+:\s*([0-9]+(?:\.[0-9]+)?)", out)
    assert m, f"no exposure line in systemd-analyze output:\n{out[-800:]}"
    return float(m.group(1))


def root_mount_options(host: Any, pid: int) -> set[str]:
    """Mount options of ``/`` as seen by process ``pid`` (from its mountinfo)."""
    for line in host.file(f"/proc/{pid}/mountinfo").content_string.splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[4] == "/":
            return set(fields[5].split(","))
    return set()


def mount_sandbox_enforced(host: Any) -> bool:
    """Whether systemd on ``host`` gives a service a read-only ``/`` (ProtectSystem=strict with
    PrivateUsers=yes), asked with a throw-away unit. In these unprivileged podman hosts systemd
    252 (Debian 12) does; systemd 257 (Debian 13) sets up the user namespace but skips the
    mount namespace without a word (no CAP_SYS_ADMIN outside it), like any host without
    PrivateUsers (shared/docs/systemd-test-hosts.md). The unit's command has no ``$``:
    systemd-run expands ``$NAME`` in it (252 has no --expand-environment=no), which turned an
    awk program's ``$5`` into nothing and this into False on every release."""
    out = host.run(
        "systemd-run --quiet --wait --pipe --collect -p PrivateUsers=yes -p ProtectSystem=strict "
        "cat /proc/self/mountinfo"
    )
    assert out.rc == 0, out.stdout + out.stderr
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[4] == "/":
            return "ro" in fields[5].split(",")
    raise AssertionError(f"no / in the throw-away unit's mountinfo on {name_of(host)}:\n{out.stdout[-800:]}")


def process_sandbox(host: Any, pid: int) -> dict[str, str]:
    """What the kernel says about ``pid``'s sandbox: effective capabilities, no_new_privs,
    seccomp mode, and whether it has a user namespace of its own (not PID 1's)."""
    status = dict(
        line.split(":\t", 1) for line in host.file(f"/proc/{pid}/status").content_string.splitlines()
        if ":\t" in line
    )
    own_userns = host.run(
        "test \"$(readlink /proc/%s/ns/user)\" != \"$(readlink /proc/1/ns/user)\"", str(pid)
    ).rc == 0
    return {
        "CapEff": status.get("CapEff", "").strip(),
        "NoNewPrivs": status.get("NoNewPrivs", "").strip(),
        "Seccomp": status.get("Seccomp", "").strip(),
        "own_user_namespace": str(own_userns),
    }


def release_major(host: Any) -> str:
    """The Debian major release of ``host`` ("12", "13"), from its own os-release."""
    return str(host.system_info.release).split(".")[0]


def upstream_version(version: str) -> str:
    """The upstream part of a Debian package or build version: "2.42.0+ds-5+deb12u1",
    "2.42.0+ds" and "1:2.42.0-1" all give "2.42.0"."""
    return version.split(":", 1)[-1].split("-", 1)[0].split("+", 1)[0].split("~", 1)[0]


def role_release_claim(role: str, host: Any) -> str:
    """What ``role`` says it was tested with on ``host``'s release: the value of
    ``_<role>_tested_platforms`` (roles/<role>/vars/main.yml) for the host's own
    distribution and major release, e.g. "trixie, HAProxy 3.0"."""
    vars_file = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "roles", role, "vars", "main.yml")
    with open(vars_file, encoding="utf-8") as f:
        platforms = yaml.safe_load(f)[f"_{role}_tested_platforms"]
    key = f"{host.system_info.distribution.capitalize()}-{release_major(host)}"
    assert key in platforms, f"{name_of(host)} runs {key}, not a release the {role} role names"
    return str(platforms[key])


def assert_sandbox_applied(host: Any, pid: int) -> bool:
    """The unit's sandbox holds in the running process ``pid``: what the kernel enforces on
    every release (no effective capabilities, no_new_privs, a seccomp filter, a user namespace
    of its own), and, wherever systemd can set one up in these hosts, its own mount namespace
    with a read-only ``/``. systemd 257 (Debian 13) cannot (mount_sandbox_enforced): accepted
    there only, so a Debian 12 host without it still fails. Returns whether the mount sandbox
    was checked."""
    assert process_sandbox(host, pid) == {
        "CapEff": "0000000000000000",
        "NoNewPrivs": "1",
        "Seccomp": "2",
        "own_user_namespace": "True",
    }, f"pid {pid} on {name_of(host)}"
    if not mount_sandbox_enforced(host):
        assert release_major(host) == "13", f"no mount sandbox on {name_of(host)}"
        return False
    ns = host.run("readlink /proc/%s/ns/mnt /proc/1/ns/mnt", str(pid)).stdout.split()
    assert len(ns) == 2 and ns[0] != ns[1], f"mount namespaces {ns}: sandbox not in force"
    assert "ro" in root_mount_options(host, pid)
    return True


def cmdlines(host: Any) -> list[str]:
    """Every process's command line on ``host`` (NULs turned into spaces)."""
    out = host.run(
        "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\" 2>/dev/null; echo; done"
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


# A TCP connect made from inside a host; exit 0 once connected, 1 on a refusal or timeout.
_TCP_CONNECT = r"""
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except OSError as exc:
    print(repr(exc))
    sys.exit(1)
print("connected")
"""


def tcp_connects(client: Any, host: str, port: int, timeout: float = 3) -> bool:
    """Whether ``client`` opens a TCP connection to ``host``:``port`` within ``timeout`` s."""
    return bool(client.run("python3 -c %s %s %s %s", _TCP_CONNECT, host, str(port), str(timeout)).rc == 0)


def nft_counter(host: Any, table: str, name: str) -> int:
    """Packets counted so far by the named nftables counter ``name`` of ``table`` (inet)."""
    out = host.check_output("nft -j list counter inet %s %s", table, name)
    for item in json.loads(out)["nftables"]:
        if "counter" in item:
            return int(item["counter"]["packets"])
    raise AssertionError(f"no counter {name} in table inet {table} on {name_of(host)}: {out}")

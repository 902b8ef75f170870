#!/usr/bin/env bash
# Preflight for local systemd test hosts: prove, in seconds, that two podman
# hosts on one named network resolve each other's names and reach each other,
# which every multi-host scenario and `make deploy-local` rely on.
#
# Starts two throw-away containers (plain processes from the base image, no
# systemd) on a throw-away network, removes them again, and on failure prints
# one line starting with "preflight:" that says what is missing.
#
# Usage: scripts/preflight-hosts.sh   (uses GP_PODMAN_DIR, like the other scripts)
set -euo pipefail
# shellcheck source=lib/env.sh
. "$(dirname "$0")/lib/env.sh"

tag="gp-preflight-$$"
net="$tag"
server="$tag-b"
client="$tag-a"

cleanup() {
  podman rm -f -t 0 "$client" "$server" >/dev/null 2>&1 || true
  podman network rm -f "$net" >/dev/null 2>&1 || true
}

fail() {
  echo "preflight: $*" >&2
  cleanup
  exit 1
}

command -v podman >/dev/null || fail "podman is not installed (scripts/setup-test-hosts.sh installs it)"
command -v runc >/dev/null || fail "runc is not installed (apt-get install runc)"
gp_podman_env
podman image exists "$GP_IMAGE" \
  || fail "base image $GP_IMAGE is missing (scripts/setup-test-hosts.sh builds it)"

backend="$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null || true)"
[[ "$backend" == netavark ]] \
  || fail "podman's network backend is '${backend:-unknown}', not netavark: its networks have no DNS, so hosts cannot resolve each other (apt-get install netavark aardvark-dns)"
aardvark=""
for candidate in /usr/lib/podman/aardvark-dns /usr/libexec/podman/aardvark-dns; do
  [[ -x "$candidate" ]] && aardvark="$candidate" && break
done
[[ -n "$aardvark" ]] \
  || fail "aardvark-dns is not installed: podman networks have no DNS (apt-get install aardvark-dns)"

trap cleanup EXIT
podman network create "$net" >/dev/null || fail "podman network create failed"
dns="$(podman network inspect -f '{{.DNSEnabled}}' "$net" 2>/dev/null || true)"
[[ "$dns" == true ]] || fail "podman created network $net without DNS (dns_enabled=$dns)"

# B answers one TCP connection with "ok"; A resolves B by name and reads it.
podman run -d --name "$server" --hostname "$server" --network "$net" "$GP_IMAGE" \
  python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000))
s.listen(1)
s.settimeout(30)
c, _ = s.accept()
c.sendall(b"ok")
c.close()
' >/dev/null || fail "could not start a container from $GP_IMAGE on network $net"

rc=0
out="$(timeout 40 podman run --rm --name "$client" --network "$net" "$GP_IMAGE" \
  python3 -c '
import socket, sys, time
name = sys.argv[1]
deadline = time.monotonic() + 15
while True:
    try:
        addr = socket.getaddrinfo(name, 7000, socket.AF_INET, socket.SOCK_STREAM)[0][4]
        break
    except OSError as exc:
        if time.monotonic() > deadline:
            print(f"RESOLVE {exc}")
            sys.exit(3)
        time.sleep(0.2)
while True:
    try:
        with socket.create_connection(addr, timeout=2) as c:
            print("REACHED", c.recv(2).decode())
            sys.exit(0)
    except OSError as exc:
        if time.monotonic() > deadline:
            print(f"CONNECT {addr[0]} {exc}")
            sys.exit(4)
        time.sleep(0.2)
' "$server" 2>&1)" || rc=$?

case "$rc" in
  0) [[ "$out" == *"REACHED ok"* ]] || fail "host $client reached $server but got no answer ($out)" ;;
  3) fail "host $client cannot resolve $server on a podman network (${out#RESOLVE }): aardvark-dns is not answering" ;;
  4) fail "host $client resolves $server but cannot reach it (${out#CONNECT }): check the host's firewall and ip_forward" ;;
  *) fail "the client container failed (rc=$rc): ${out:-no output}" ;;
esac
gp_log "preflight: podman hosts resolve and reach each other by name (backend $backend)"

#!/usr/bin/env bash
# Deploy the whole stack onto local systemd hosts and print where the proxy answers.
#
#   scripts/deploy-local.sh            create/start the hosts of inventories/local as
#                                      podman containers, add a fake Ollama, run site.yml
#   scripts/deploy-local.sh --destroy  remove those containers and their network
#
# The hosts run Debian 13 (trixie) unless DEBIAN_RELEASE says otherwise:
#   DEBIAN_RELEASE=bookworm scripts/deploy-local.sh   (or make deploy-local DEBIAN_RELEASE=bookworm)
# deploys onto Debian 12 hosts; any release of $GP_RELEASES (scripts/lib/env.sh) works.
# Hosts already created on another release are refused: --destroy them first.
#
# Options: --no-fake-ollama (ollama.url must then reach a real Ollama: a proxy
# without an upstream is not ready and the play fails), -- ARGS passes
# ARGS to ansible-playbook (e.g. -- --check --diff).
#
# The hosts live in their own podman instance (.work/podman-local), so Molecule's
# same-named test hosts never touch them. Works on a fresh Debian 12 machine:
# scripts/setup-test-hosts.sh installs podman, the tools and the base image first.
set -euo pipefail
# shellcheck source=lib/env.sh
. "$(dirname "$0")/lib/env.sh"

INVENTORY="$GP_ROOT/inventories/local"
VAULT_PASS="$INVENTORY/vault-password.demo.txt"
NETWORK="gp-local"
LABEL="io.guard-proxy.deploy-local=1"
fake_ollama=1
destroy=0
extra=()
while (($#)); do
  case "$1" in
    --destroy) destroy=1 ;;
    --no-fake-ollama) fake_ollama=0 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

DEBIAN_RELEASE="${DEBIAN_RELEASE:-trixie}"
if [[ " $GP_RELEASES " != *" $DEBIAN_RELEASE "* ]]; then
  echo "DEBIAN_RELEASE=$DEBIAN_RELEASE: not one of the releases with a base image ($GP_RELEASES)" >&2
  exit 2
fi
GP_IMAGE="$(gp_image "$DEBIAN_RELEASE")"
export DEBIAN_RELEASE GP_IMAGE

MAIN_PODMAN_DIR="$GP_PODMAN_DIR"
export GP_PODMAN_DIR="$GP_WORK/podman-local"

# Inventory host names (= container names) of a group, "all" by default.
# Hosts in no group are left out: a stray file in the inventory folder (a vault
# password file, say) is read by Ansible as an INI inventory of one host.
inventory_hosts() {  # inventory_hosts [GROUP]
  ansible-inventory -i "$INVENTORY" --list 2>/dev/null | python3 -c '
import json, sys
inv = json.load(sys.stdin)
group = sys.argv[1] if len(sys.argv) > 1 else "all"
def hosts(g):
    node = inv.get(g, {})
    out = list(node.get("hosts", []))
    for child in node.get("children", []):
        if child != "ungrouped":
            out += hosts(child)
    return out
print("\n".join(dict.fromkeys(hosts(group))))
' "$@"
}

ours() { [[ "$(podman container inspect -f '{{ index .Config.Labels "io.guard-proxy.deploy-local" }}' "$1" 2>/dev/null)" == 1 ]]; }

do_destroy() {
  local h
  for h in $(inventory_hosts); do
    if podman container exists "$h" && ours "$h"; then
      gp_log "removing $h"
      podman rm -f -t 10 "$h" >/dev/null
    fi
  done
  podman network exists "$NETWORK" && podman network rm "$NETWORK" >/dev/null || true
  gp_log "local hosts removed"
}

ensure_image() {
  podman image exists "$GP_IMAGE" && return 0
  gp_log "copying $GP_IMAGE into the deploy-local podman instance"
  (
    export GP_PODMAN_DIR="$MAIN_PODMAN_DIR"
    gp_podman_env
    podman save -q "$GP_IMAGE"
  ) | podman load -q >/dev/null
}

ensure_host() {
  local h="$1"
  if podman container exists "$h"; then
    ours "$h" || { echo "container $h exists but was not made by deploy-local" >&2; return 1; }
    local image
    image="$(podman container inspect -f '{{.ImageName}}' "$h")"
    if [[ "$image" != "$GP_IMAGE" ]]; then
      echo "host $h runs $image, not $GP_IMAGE (DEBIAN_RELEASE=$DEBIAN_RELEASE): remove the" \
        "local hosts first (make destroy-local), or set DEBIAN_RELEASE to their release" >&2
      return 1
    fi
    [[ "$(podman container inspect -f '{{.State.Running}}' "$h")" == true ]] || podman start "$h" >/dev/null
    return 0
  fi
  gp_log "creating host $h"
  podman run -d --name "$h" --hostname "$h" --network "$NETWORK" \
    --label "$LABEL" --systemd always "$GP_IMAGE" /sbin/init >/dev/null
}

wait_booted() {
  local h="$1" state
  for _ in $(seq 60); do
    state="$(podman exec "$h" systemctl is-system-running 2>/dev/null || true)"
    [[ "$state" == running || "$state" == degraded ]] && return 0
    sleep 1
  done
  echo "host $h did not finish booting (state: $state)" >&2
  return 1
}

print_endpoints() {
  local h ip port bind url backend
  echo
  echo "guard-proxy is deployed:"
  for h in $(inventory_hosts guard_proxy); do
    ip="$(podman container inspect -f "{{ (index .NetworkSettings.Networks \"$NETWORK\").IPAddress }}" "$h")"
    read -r bind port < <(podman exec "$h" python3 -c '
import re, sys
text = open("/etc/guard-proxy/config.yaml").read()
server = text.split("server:", 1)[1] if "server:" in text else ""
host = re.search(r"^\s+host:\s*\"?([^\"\s]+)", server, re.M)
port = re.search(r"^\s+port:\s*(\d+)", server, re.M)
print(host.group(1) if host else "127.0.0.1", port.group(1) if port else "8080")
' 2>/dev/null || echo "127.0.0.1 8080")
    if [[ "$bind" == 127.* || "$bind" == localhost ]]; then
      url="http://127.0.0.1:$port (inside $h only: podman exec $h ...)"
    else
      url="http://$ip:$port"
    fi
    backend="$(podman exec "$h" python3 -c '
import json, sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/cache/health", timeout=5) as r:
        print(json.load(r).get("active_backend", "?"))
except Exception as exc:
    print(f"unknown ({exc.__class__.__name__})")
' "$port" 2>/dev/null || echo unknown)"
    echo "  $h: $url  (cache: $backend)"
  done
  # The front door: HAProxy on the hosts of the `loadbalancer` group.
  local lb front="" lbport up total
  for lb in $(inventory_hosts loadbalancer); do
    ip="$(podman container inspect -f "{{ (index .NetworkSettings.Networks \"$NETWORK\").IPAddress }}" "$lb")"
    lbport="$(podman exec "$lb" sh -c \
      "sed -n '/^frontend guard_proxy_front/,/^\$/s/^ *bind [^:]*:\([0-9]*\).*/\1/p' /etc/haproxy/haproxy.cfg" \
      2>/dev/null | head -n1)"
    up=0 total=0
    for h in $(inventory_hosts guard_proxy); do
      total=$((total + 1))
      if podman exec "$lb" /usr/local/sbin/haproxy-server show "guard_proxy/$h" 2>/dev/null | grep -q ' UP,'; then
        up=$((up + 1))
      fi
    done
    front="http://$ip:${lbport:-8080}"
    echo "front door: $front  (HAProxy on $lb, $up of $total proxies up)"
  done
  [[ -n "$front" ]] && url="$front"
  [[ -n "${url:-}" ]] || return 0
  echo
  echo "Try it (from this machine):"
  echo "  curl -s ${url%% *}/health"
  echo "  curl -s ${url%% *}/api/generate -d '{\"model\":\"llama3.2\",\"prompt\":\"ECHO:hello\",\"stream\":false}'"
  echo "Podman settings for this instance: CONTAINERS_CONF=$CONTAINERS_CONF CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF"
  echo "Remove the hosts: scripts/deploy-local.sh --destroy"
}

main() {
  if ((destroy)); then
    gp_tools_env
    do_destroy
    return 0
  fi
  GP_PODMAN_DIR="$MAIN_PODMAN_DIR" "$GP_ROOT/scripts/setup-test-hosts.sh"
  gp_tools_env
  export ANSIBLE_ROLES_PATH="$GP_ROOT/roles"
  cd "$GP_ROOT"
  ensure_image
  # The hosts of this instance must resolve each other (proxy -> redis1).
  "$GP_ROOT/scripts/preflight-hosts.sh"
  podman network exists "$NETWORK" || podman network create "$NETWORK" >/dev/null
  local h hosts
  hosts="$(inventory_hosts)"
  [[ -n "$hosts" ]] || { echo "no hosts in $INVENTORY" >&2; return 1; }
  for h in $hosts; do ensure_host "$h"; done
  for h in $hosts; do wait_booted "$h"; done
  gp_log "ansible-playbook -i inventories/local site.yml (hosts on $DEBIAN_RELEASE)"
  # Same podman connection as Molecule's, with pipelining (one exec per task):
  # a second inventory source sets it per host (host vars beat group vars, and
  # delegation to localhost keeps its local connection).
  local fast_inv="$GP_WORK/deploy-local-connection.yml"
  {
    echo "# Written by scripts/deploy-local.sh"
    echo "all:"
    echo "  hosts:"
    for h in $hosts; do echo "    $h: {ansible_connection: podman}"; done
  } > "$fast_inv"
  local fast=(-i "$fast_inv")
  export ANSIBLE_CONNECTION_PLUGINS="$GP_ROOT/molecule/shared/plugins/connection" ANSIBLE_PIPELINING=true
  # The fake upstream first: a proxy is not ready without one.
  if ((fake_ollama)); then
    gp_log "fake Ollama upstream on each proxy host"
    ansible-playbook -i "$INVENTORY" --vault-password-file "$VAULT_PASS" "${fast[@]}" \
      molecule/shared/fake_ollama.yml "${extra[@]}"
  fi
  ansible-playbook -i "$INVENTORY" --vault-password-file "$VAULT_PASS" "${fast[@]}" site.yml "${extra[@]}"
  print_endpoints
}

main

#!/usr/bin/env bash
# Prepare this machine for local systemd test hosts (Molecule + podman).
#
# Idempotent; every step is skipped when already done:
#   1. Debian packages: podman, runc, netavark, aardvark-dns, iptables (what
#      netavark sets up its bridges and NAT with), debootstrap,
#      python3-venv (Debian's podman depends on none of runc, netavark or
#      aardvark-dns; without the last two its networks have no DNS).
#   2. podman settings under .work/podman (CONTAINERS_CONF, nothing in /etc).
#   3. vm.overcommit_memory=1 on this machine (Redis's start-up warning is
#      about the host kernel's value, which containers cannot change).
#   4. Base images localhost/debian-systemd:<release> for each release in
#      $GP_RELEASES (bookworm and trixie: Debian 12 and 13), built with
#      debootstrap from the mirror this machine's apt already uses (never pulled).
#   5. The pinned tool venv (.venv-tools) from requirements/tools.txt, and
#      promtool in it (scripts/setup-promtool.sh: extracted from Debian's
#      prometheus package, which is never installed).
#   6. Preflight (scripts/preflight-hosts.sh): two throw-away hosts on a
#      throw-away network must resolve and reach each other by name.
#   7. .env.yml (git-ignored) in the repository root: the podman settings of
#      step 2 and the network tag, which Molecule reads from the project
#      directory, so a plain `molecule test [-s SCENARIO]` with the tools venv
#      active finds the base image.
#
# Usage: scripts/setup-test-hosts.sh [--no-image] [--no-tools] [--rebuild-image]
set -euo pipefail

# shellcheck source=lib/env.sh
. "$(dirname "$0")/lib/env.sh"

want_image=1
want_tools=1
rebuild_image=0
for arg in "$@"; do
  case "$arg" in
    --no-image) want_image=0 ;;
    --no-tools) want_tools=0 ;;
    --rebuild-image) rebuild_image=1 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

APT_PACKAGES=(podman runc netavark aardvark-dns iptables debootstrap python3-venv)

# The Debian mirror this machine uses, read from its own apt sources.
# Prints "MAIN_URI SECURITY_URI".
host_mirrors() {
  local uris=() u main="" sec=""
  if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
    mapfile -t uris < <(awk 'tolower($1)=="uris:" {for(i=2;i<=NF;i++) print $i}' \
      /etc/apt/sources.list.d/debian.sources)
  fi
  if ((${#uris[@]} == 0)) && [[ -r /etc/apt/sources.list ]]; then
    mapfile -t uris < <(awk '$1=="deb" {for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; break}}' \
      /etc/apt/sources.list)
  fi
  for u in "${uris[@]}"; do
    u="${u%/}"
    if [[ "$u" == *-security ]]; then
      [[ -n "$sec" ]] || sec="$u"
    else
      [[ -n "$main" ]] || main="$u"
    fi
  done
  [[ -n "$main" ]] || { echo "no Debian mirror found in the host's apt sources" >&2; return 1; }
  [[ -n "$sec" ]] || sec="${main}-security"
  printf '%s %s\n' "$main" "$sec"
}

# build_image RELEASE: localhost/debian-systemd:RELEASE (Debian's codename).
build_image() {
  local release="$1" image log
  image="$(gp_image "$release")"
  log="$GP_WORK/debootstrap-$release.log"
  if ((rebuild_image == 0)) && podman image exists "$image"; then
    gp_log "image $image present"
    return 0
  fi
  local main sec rootfs t0
  read -r main sec < <(host_mirrors)
  rootfs="$GP_WORK/rootfs-build-$release"
  rm -rf "$rootfs"
  mkdir -p "$rootfs"
  t0=$SECONDS
  gp_log "debootstrap $release (minbase) into $rootfs"
  # python3-packaging/python3-venv: what Ansible's pip module and the proxy
  # role need; pre-installed only to save time, the roles still install them.
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,python3,python3-apt,iproute2,procps,ca-certificates,python3-venv,python3-packaging \
    "$release" "$rootfs" "$main" >"$log" 2>&1 \
    || { tail -20 "$log" >&2; return 1; }

  rm -f "$rootfs/etc/apt/sources.list"
  cat > "$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $main
Suites: $release $release-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $sec
Suites: $release-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  : > "$rootfs/etc/machine-id"
  rm -f "$rootfs/var/lib/dbus/machine-id" "$rootfs/etc/hostname"
  # Units that race converge for the dpkg lock or make no sense in a container.
  local unit
  for unit in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
              fstrim.timer e2scrub_reap.service getty@tty1.service console-getty.service \
              systemd-pstore.service systemd-logind.service; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
  done
  # Fresh package lists for all three suites: a host with none makes apt's
  # cache_valid_time logic guess, and a new container's first DNS lookups race.
  printf 'Acquire::Languages "none";\n' > "$rootfs/etc/apt/apt.conf.d/90-no-translations"
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  chroot "$rootfs" apt-get update -qq >>"$log" 2>&1 \
    || { tail -20 "$log" >&2; return 1; }
  : > "$rootfs/etc/resolv.conf"
  rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
         "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +

  gp_log "podman import -> $image"
  tar -C "$rootfs" -c . | podman import -q \
    --change 'CMD ["/sbin/init"]' \
    --change 'ENV container=podman' \
    --change 'STOPSIGNAL SIGRTMIN+3' \
    - "$image" >/dev/null
  rm -rf "$rootfs"
  gp_log "image $image built in $((SECONDS - t0)) s"
}

# Every release's image, built side by side (network- and disk-bound).
build_images() {
  local release pids=() rc=0 pid
  for release in $GP_RELEASES; do
    build_image "$release" & pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  return "$rc"
}

setup_tools() {
  local req="$GP_ROOT/requirements/tools.txt" stamp want have py
  stamp="$GP_TOOLS/.requirements.sha256"
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  # Python 3.11: ansible-core 2.19 is the newest line that supports it.
  py="$(gp_python311)"
  if [[ -x "$GP_TOOLS/bin/python" ]] && ! "$GP_TOOLS/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    gp_log "tools venv is not Python 3.11: recreating"
    rm -rf "$GP_TOOLS"
  fi
  have="$(cat "$stamp" 2>/dev/null || true)"
  if [[ "$have" == "$want" ]]; then
    gp_log "tools venv up to date"
    return 0
  fi
  [[ -x "$GP_TOOLS/bin/python" ]] || "$py" -m venv "$GP_TOOLS"
  gp_log "tools venv: installing requirements/tools.txt"
  "$GP_TOOLS/bin/python" -m pip install -q --disable-pip-version-check -r "$req" \
    >"$GP_WORK/pip-tools.log" 2>&1 \
    || { grep -v '^WARNING: Location' "$GP_WORK/pip-tools.log" | tail -20 >&2; return 1; }
  "$GP_TOOLS/bin/python" -m pip check >/dev/null
  "$GP_TOOLS/bin/python" - "$req" <<'PY'
import sys
from importlib.metadata import version
bad = []
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, pin = line.split("==")
    name = name.split("[")[0]
    if version(name) != pin:
        bad.append(f"{name} {version(name)} != {pin}")
if bad:
    sys.exit("tools venv does not match requirements/tools.txt: " + "; ".join(bad))
PY
  printf '%s\n' "$want" > "$stamp"
}

# .env.yml: Molecule reads it from the project directory and interpolates
# molecule.yml with it (provisioner env -> ansible-playbook, podman, testinfra).
write_molecule_env() {
  local tmp="$GP_ROOT/.env.yml.tmp"
  cat > "$tmp" <<EOF
---
# Written by scripts/setup-test-hosts.sh (make setup); git-ignored, do not edit.
# Molecule reads this file from the project directory: with it a plain
# \`molecule test [-s SCENARIO]\` uses this checkout's podman instance (.work/podman),
# where the base images (\$GP_RELEASES: $GP_RELEASES) are.
CONTAINERS_CONF: "$CONTAINERS_CONF"
CONTAINERS_STORAGE_CONF: "$CONTAINERS_STORAGE_CONF"
GP_NETWORK_TAG: "$GP_NETWORK_TAG"
EOF
  mv "$tmp" "$GP_ROOT/.env.yml"
}

main() {
  local t0=$SECONDS
  gp_apt_install "${APT_PACKAGES[@]}"
  gp_podman_env
  # Only for the project's own instance (not test-all.sh's per-scenario ones).
  [[ "$GP_PODMAN_DIR" != "$GP_WORK/podman" ]] || write_molecule_env
  if [[ "$(cat /proc/sys/vm/overcommit_memory)" != 1 ]]; then
    sysctl -q -w vm.overcommit_memory=1 || gp_log "could not set vm.overcommit_memory=1 (Redis will warn)"
  fi
  # The venv (PyPI) and the image (Debian mirror) are independent: in parallel.
  local tools_pid="" rc=0
  if ((want_tools)); then { setup_tools && "$GP_ROOT/scripts/setup-promtool.sh"; } & tools_pid=$!; fi
  if ((want_image)); then build_images || rc=1; fi
  if [[ -n "$tools_pid" ]]; then wait "$tools_pid" || rc=1; fi
  ((rc == 0)) || { echo "setup failed" >&2; return 1; }
  if ((want_image)); then "$GP_ROOT/scripts/preflight-hosts.sh" || return 1; fi
  gp_log "test hosts ready in $((SECONDS - t0)) s"
}

main

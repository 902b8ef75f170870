# shellcheck shell=bash
# Common environment for the test-host scripts. Source it; it defines no side
# effects beyond exporting variables and writing podman settings under .work/.
#
# Contract:
#   GP_ROOT      repository root (absolute)
#   GP_WORK      $GP_ROOT/.work (gitignored): podman storage, results
#   GP_TOOLS     pinned tool venv (molecule, ansible, testinfra, linters)
#   GP_RELEASES  the Debian releases (codenames) with a locally built systemd
#                base image localhost/debian-systemd:<release> (gp_image RELEASE)
#   GP_IMAGE     the image of the first of them (preflight, deploy-local's default)
#   GP_NETWORK_TAG  a short hash of the checkout: Molecule's podman networks are
#                gp-<scenario>-<tag>, so two checkouts' networks never share a name
#   GP_IMAGE_STORE  optional: another podman storage folder whose images this
#                instance may use read-only (test-all.sh's per-scenario instances
#                see the base image of .work/podman that way)
#   CONTAINERS_CONF / CONTAINERS_STORAGE_CONF point at files of our own:
#   nothing is written to /etc.

GP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GP_WORK="${GP_WORK:-$GP_ROOT/.work}"
GP_TOOLS="${GP_TOOLS:-$GP_ROOT/.venv-tools}"
GP_RELEASES="${GP_RELEASES:-bookworm trixie}"
gp_image() { printf 'localhost/debian-systemd:%s' "$1"; }
GP_IMAGE="${GP_IMAGE:-$(gp_image "${GP_RELEASES%% *}")}"
# One podman "instance" per folder: Molecule uses .work/podman, deploy-local
# .work/podman-local, so their same-named hosts never collide.
GP_PODMAN_DIR="${GP_PODMAN_DIR:-$GP_WORK/podman}"
GP_NETWORK_TAG="${GP_NETWORK_TAG:-$(printf '%s' "$GP_ROOT" | sha256sum | cut -c1-6)}"
export GP_ROOT GP_WORK GP_TOOLS GP_RELEASES GP_IMAGE GP_PODMAN_DIR GP_NETWORK_TAG

gp_log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# Runtime state belongs on tmpfs (/run) so a reboot never leaves stale state
# beside persistent storage; a short hash of the checkout keeps clones apart.
gp_runroot() {
  local tag
  tag="$(printf '%s' "$GP_PODMAN_DIR" | sha256sum | cut -c1-10)"
  printf '/run/gp-podman-%s' "$tag"
}

# podman's default ulimits (1048576) exceed what root may set here (no
# CAP_SYS_RESOURCE): use the hard limits this shell actually has.
gp_ulimits() {
  local nofile nproc pidmax
  nofile="$(ulimit -Hn)"
  nproc="$(ulimit -Hu)"
  pidmax="$(cat /proc/sys/kernel/pid_max)"
  [[ "$nofile" == unlimited ]] && nofile=1048576
  if [[ "$nproc" == unlimited ]] || (( pidmax < nproc )); then nproc="$pidmax"; fi
  printf '"nofile=%s:%s", "nproc=%s:%s"' "$nofile" "$nofile" "$nproc" "$nproc"
}

gp_write_podman_conf() {
  local runroot
  runroot="$(gp_runroot)"
  mkdir -p "$GP_PODMAN_DIR/storage" "$GP_PODMAN_DIR/networks" "$runroot"
  # crun fails on this hybrid cgroup layout; runc works. cgroupfs because
  # PID 1 on these machines is not systemd.
  cat > "$GP_PODMAN_DIR/containers.conf.tmp" <<EOF
# Written by scripts/lib/env.sh at run time; do not edit.
[containers]
default_ulimits = [$(gp_ulimits)]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$GP_PODMAN_DIR/events.log"
tmp_dir = "$runroot/libpod"

[network]
# netavark + aardvark-dns give named networks DNS (hosts resolve each other by
# name). Podman remembers the first backend it chose for a storage folder, so
# say it explicitly: a folder first used under CNI would otherwise stay there.
network_backend = "netavark"
network_config_dir = "$GP_PODMAN_DIR/networks"
EOF
  cat > "$GP_PODMAN_DIR/storage.conf.tmp" <<EOF
# Written by scripts/lib/env.sh at run time; do not edit.
[storage]
driver = "overlay"
graphroot = "$GP_PODMAN_DIR/storage"
runroot = "$runroot/storage"
$(if [[ -n "${GP_IMAGE_STORE:-}" && "$GP_IMAGE_STORE" != "$GP_PODMAN_DIR/storage" ]]; then
  printf '\n[storage.options]\nadditionalimagestores = ["%s"]\n' "$GP_IMAGE_STORE"
fi)
EOF
  mv "$GP_PODMAN_DIR/containers.conf.tmp" "$GP_PODMAN_DIR/containers.conf"
  mv "$GP_PODMAN_DIR/storage.conf.tmp" "$GP_PODMAN_DIR/storage.conf"
}

gp_podman_env() {
  gp_write_podman_conf
  export CONTAINERS_CONF="$GP_PODMAN_DIR/containers.conf"
  export CONTAINERS_STORAGE_CONF="$GP_PODMAN_DIR/storage.conf"
}

# Tools on PATH, podman configured, colours off so logs parse cleanly.
gp_tools_env() {
  gp_podman_env
  export PATH="$GP_TOOLS/bin:$PATH"
  export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-0}"
  export PY_COLORS="${PY_COLORS:-0}"
  export ANSIBLE_NOCOLOR="${ANSIBLE_NOCOLOR:-1}"
  export MOLECULE_NO_COLOR="${MOLECULE_NO_COLOR:-1}"
  export NO_COLOR="${NO_COLOR:-1}"
}

# Install Debian packages that are missing; apt is touched only when needed.
gp_apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
      || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  gp_log "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Set-up steps run side by side (test-all.sh): one apt-get at a time, and wait
  # for a dpkg lock another process holds instead of failing on it.
  (
    flock -w 1200 9 || { echo "apt: lock /run/gp-apt.lock busy for 20 min" >&2; exit 1; }
    apt-get -o DPkg::Lock::Timeout=900 update -qq
    apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  ) 9>/run/gp-apt.lock
}

# Valkey (valkey-server, valkey-tools) for the app tests that run against it
# (GUARD_TEST_REDIS_SERVER=/usr/bin/valkey-server). Debian 13 has it in main;
# Debian 12 only in bookworm-backports, which this adds as a source of its own
# (the mirror this machine already uses) with a pin that lets nothing but the
# valkey packages come from it: every other package of backports gets
# priority 1, so no upgrade or install ever picks it over bookworm's.
GP_BACKPORTS_SOURCES=/etc/apt/sources.list.d/gp-bookworm-backports.sources
GP_BACKPORTS_PIN=/etc/apt/preferences.d/gp-bookworm-backports
gp_apt_install_valkey() {
  local codename mirror
  codename="$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")"
  if [[ "$codename" == bookworm && ! -s "$GP_BACKPORTS_SOURCES" ]]; then
    mirror="$(awk 'tolower($1)=="uris:" {for(i=2;i<=NF;i++) print $i}' \
      /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep -v -- '-security/*$' | head -n1)"
    [[ -n "$mirror" ]] || mirror="$(awk '$1=="deb" {for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; break}}' \
      /etc/apt/sources.list 2>/dev/null | grep -v -- '-security/*$' | head -n1)"
    [[ -n "$mirror" ]] || { echo "no Debian mirror found in the apt sources" >&2; return 1; }
    gp_log "apt: adding bookworm-backports ($mirror), pinned to the valkey packages"
    cat > "$GP_BACKPORTS_PIN" <<'PIN'
# Written by guard-proxy's scripts/lib/env.sh (gp_apt_install_valkey): from
# bookworm-backports only Valkey, nothing else.
Package: *
Pin: release n=bookworm-backports
Pin-Priority: 1

Package: valkey-server valkey-tools valkey-sentinel
Pin: release n=bookworm-backports
Pin-Priority: 500
PIN
    cat > "$GP_BACKPORTS_SOURCES" <<SRC
# Written by guard-proxy's scripts/lib/env.sh (gp_apt_install_valkey); pinned
# in $GP_BACKPORTS_PIN to the valkey packages.
Types: deb
URIs: ${mirror%/}
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  gp_apt_install valkey-server valkey-tools
}

# The Python 3.11 to build venvs from: Debian's own when present.
gp_python311() {
  if [[ -x /usr/bin/python3.11 ]]; then echo /usr/bin/python3.11; return; fi
  command -v python3.11 || { echo "python3.11 not found" >&2; return 1; }
}

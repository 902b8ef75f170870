#!/usr/bin/env bash
# Put promtool (Debian 12's, from the `prometheus` package) into the tool venv's bin/,
# for `promtool check rules` / `promtool test rules` on monitoring/prometheus/.
#
# Only the one binary is extracted from the package (apt-get download + dpkg-deb), never
# installed: `apt-get install prometheus` would pull a dozen web UI packages, create a
# system user and enable and start a Prometheus server on :9090 on the CI machine. The
# .deb comes through apt, so it is verified against the signed archive like any install,
# and it is the very build a monitoring host running Debian's Prometheus uses.
# Idempotent: skipped when the same package version is already in place.
set -euo pipefail

# shellcheck source=lib/env.sh
. "$(dirname "$0")/lib/env.sh"

PKG=prometheus
target="$GP_TOOLS/bin/promtool"
stamp="$GP_TOOLS/.promtool-version"

candidate() { apt-cache policy "$PKG" 2>/dev/null | awk '$1 == "Candidate:" {print $2}'; }

main() {
  local want tmp
  want="$(candidate)"
  if [[ -z "$want" || "$want" == "(none)" ]]; then
    gp_log "apt: no candidate for $PKG, updating the package lists"
    apt-get update -qq
    want="$(candidate)"
  fi
  [[ -n "$want" && "$want" != "(none)" ]] || { echo "no $PKG package in the apt sources" >&2; return 1; }
  if [[ -x "$target" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
    gp_log "promtool $want present"
    return 0
  fi
  mkdir -p "$GP_TOOLS/bin" "$GP_WORK"
  tmp="$(mktemp -d "$GP_WORK/promtool.XXXXXX")"
  trap 'rm -rf "$tmp"' RETURN
  # As root into a root-owned folder: no _apt sandbox (it could not write there).
  (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$PKG=$want" \
    >/dev/null 2>"$tmp/apt.log") \
    || { cat "$tmp/apt.log" >&2; return 1; }
  dpkg-deb --fsys-tarfile "$tmp"/"$PKG"_*.deb | tar -x -C "$tmp" ./usr/bin/promtool
  install -m 0755 "$tmp/usr/bin/promtool" "$target"
  "$target" --version >/dev/null 2>&1
  printf '%s\n' "$want" > "$stamp"
  gp_log "promtool $want installed in $target"
}

main

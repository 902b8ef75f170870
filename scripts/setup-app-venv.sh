#!/usr/bin/env bash
# Create or refresh the app's development venv (.venv): exactly the pins of
# app/requirements-test.lock (the runtime lock's versions plus the test extra,
# every file checked against its hash), then the app and its test harness
# (app/testing: guard_proxy_testing, shared by app/tests, bench/ and
# monitoring/render), both editable, without resolving anything. Plus the
# Debian packages the app tests need (a real redis-server, and valkey-server for
# the same Redis tests run against Valkey: from bookworm-backports on Debian 12,
# pinned to it alone; openssl for the TLS tests, which make their own CA).
# Idempotent: pip runs only when pyproject.toml or a lock changed since last time.
set -euo pipefail
# shellcheck source=lib/env.sh
. "$(dirname "$0")/lib/env.sh"

gp_apt_install redis-server python3-venv openssl
gp_apt_install_valkey
# Tests start their own redis-server; the packaged one is not needed running.
venv="$GP_ROOT/.venv"
stamp="$venv/.app-requirements.sha256"
lock="$GP_ROOT/app/requirements-test.lock"
want="$(cat "$GP_ROOT/app/pyproject.toml" "$GP_ROOT/app/testing/pyproject.toml" \
  "$GP_ROOT/app/requirements.lock" "$lock" \
  | sha256sum | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
  gp_log "app venv up to date"
  exit 0
fi
[[ -x "$venv/bin/python" ]] || "$(gp_python311)" -m venv "$venv"
gp_log "app venv: pip install --require-hashes -r app/requirements-test.lock, then -e app -e app/testing --no-deps"
mkdir -p "$GP_WORK"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
{ "${pip[@]}" --require-hashes -r "$lock" && "${pip[@]}" --no-deps -e "$GP_ROOT/app" -e "$GP_ROOT/app/testing" \
    && "$venv/bin/python" -m pip check; } >"$GP_WORK/pip-app.log" 2>&1 \
  || { grep -v '^WARNING: Location' "$GP_WORK/pip-app.log" | tail -20 >&2; exit 1; }
printf '%s\n' "$want" > "$stamp"

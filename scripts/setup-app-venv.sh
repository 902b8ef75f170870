#!/usr/bin/env bash
# Create or refresh the app's development venv (.venv) with the test extra,
# plus the Debian packages the app tests need (a real redis-server; openssl for
# the TLS tests, which make their own CA).
# Idempotent: pip runs only when app/pyproject.toml changed since last time.
set -euo pipefail
# shellcheck source=lib/env.sh
. "$(dirname "$0")/lib/env.sh"

gp_apt_install redis-server python3-venv openssl
# Tests start their own redis-server; the packaged one is not needed running.
venv="$GP_ROOT/.venv"
stamp="$venv/.app-requirements.sha256"
want="$({ cat "$GP_ROOT/app/pyproject.toml"; cat "$GP_ROOT/app/requirements-test.txt" 2>/dev/null || true; } \
  | sha256sum | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
  gp_log "app venv up to date"
  exit 0
fi
[[ -x "$venv/bin/python" ]] || "$(gp_python311)" -m venv "$venv"
gp_log "app venv: pip install -e app[test]"
mkdir -p "$GP_WORK"
if grep -q '^test *= *\[' "$GP_ROOT/app/pyproject.toml"; then
  spec=(-e "$GP_ROOT/app[test]")
else
  spec=(-e "$GP_ROOT/app")
  [[ -f "$GP_ROOT/app/requirements-test.txt" ]] && spec+=(-r "$GP_ROOT/app/requirements-test.txt")
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check "${spec[@]}" \
  >"$GP_WORK/pip-app.log" 2>&1 \
  || { grep -v '^WARNING: Location' "$GP_WORK/pip-app.log" | tail -20 >&2; exit 1; }
printf '%s\n' "$want" > "$stamp"

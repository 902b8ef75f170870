#!/usr/bin/env bash
# Regenerate the app's locks (make lock): every dependency pinned with the
# sha256 of each of its files on PyPI.
#   app/requirements.lock       what the app runs on (wheelhouse, deploys)
#   app/requirements-onnx.lock  the same pins plus the onnx extra (hosts with models)
#   app/requirements-test.lock  the onnx lock's pins plus the test extra (.venv)
# One universal resolution (environment markers kept, e.g. async-timeout for
# Python < 3.11.3, Debian 12's 3.11.2) that holds for every Python >= 3.11 and
# platform, so the controller's Python does not decide what a host gets.
# --generate-hashes lists every file of each pinned release, so the locks hold
# the wheels of Debian 12's Python 3.11 (cp311) and Debian 13's 3.13 (cp313)
# alike; installs with --require-hashes on either prove it (.venv here, the
# app-trixie suite, the wheelhouse of each Molecule scenario's hosts).
# Pins already in the files are kept unless pyproject.toml needs others; pass
# uv's own options to move them:
#   make lock LOCK_ARGS=--upgrade                  newest of everything
#   make lock LOCK_ARGS='--upgrade-package redis'  one package (and what it needs)
set -euo pipefail
# shellcheck source=lib/env.sh
. "$(dirname "$0")/lib/env.sh"

uv="$GP_TOOLS/bin/uv"
if [[ ! -x "$uv" ]]; then
  "$GP_ROOT/scripts/setup-test-hosts.sh" --no-image
fi
cd "$GP_ROOT/app"
common=(--universal --python-version 3.11 --generate-hashes --quiet
  --custom-compile-command "make lock")
# shellcheck disable=SC2086  # LOCK_ARGS holds separate options on purpose
"$uv" pip compile pyproject.toml "${common[@]}" -o requirements.lock ${LOCK_ARGS:-} "$@"
# Each lock is constrained to the one before: runtime -> onnx -> test, so tests run
# what deploys (with and without models).
# shellcheck disable=SC2086
"$uv" pip compile pyproject.toml --extra onnx -c requirements.lock "${common[@]}" \
  -o requirements-onnx.lock ${LOCK_ARGS:-} "$@"
# shellcheck disable=SC2086
"$uv" pip compile pyproject.toml --extra onnx --extra test -c requirements-onnx.lock \
  "${common[@]}" -o requirements-test.lock ${LOCK_ARGS:-} "$@"
for lock in requirements.lock requirements-onnx.lock requirements-test.lock; do
  gp_log "app/$lock: $(grep -c '^[a-z0-9]' "$lock") pins"
done

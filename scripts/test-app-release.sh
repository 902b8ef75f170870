#!/usr/bin/env bash
# Run the app's test suite on a Debian release's own Python and redis-server,
# inside a throw-away podman container of the release's base image
# (localhost/debian-systemd:RELEASE, scripts/setup-test-hosts.sh). Debian 13
# (trixie) gives Python 3.13 and Redis 8.0, where .venv on this machine
# (Debian 12) gives Python 3.11 and Redis 7.0: the same tests on both.
#
# Inside: apt installs python3-venv, redis-server and openssl (what
# setup-app-venv.sh installs here); a venv gets exactly app/requirements-test.lock
# (--require-hashes: a lock without this Python's wheel hashes fails here) and
# the app, editable, from a copy of app/, docs/ and monitoring/ (the checkout
# stays untouched and read-only to the container); then pytest writes JUnit XML to
# $GP_RESULTS_DIR/app-tests-RELEASE.xml. pip's download cache persists in
# .work/cache/pip-RELEASE, so a second run downloads nothing. Host network, as
# the tests here: they start redis-server and uvicorn on free loopback ports, and
# a podman network of this instance would take the default bridge and subnet
# (podman0, 10.88.0.0/16) that other instances on the machine may hold too.
#
# pip inside trusts what pip here trusts: the CA bundle of PIP_CERT (or
# REQUESTS_CA_BUNDLE, SSL_CERT_FILE, else Debian's /etc/ssl/certs/ca-certificates.crt)
# is mounted read-only and named by PIP_CERT; PIP_INDEX_URL passes through.
#
# Usage: scripts/test-app-release.sh [RELEASE] [PYTEST_ARGS...]   (RELEASE: trixie;
#   PYTEST_ARGS relative to app/, `tests` when none: e.g. tests/cli -x)
set -euo pipefail
# shellcheck source=lib/env.sh
. "$(dirname "$0")/lib/env.sh"

release="${1:-trixie}"
shift || true
image="$(gp_image "$release")"
results="${GP_RESULTS_DIR:-$GP_WORK/results}"
cache="$GP_WORK/cache/pip-$release"
name="gp-app-tests-$release-$GP_NETWORK_TAG"
mkdir -p "$results" "$cache"
gp_podman_env
if ! podman image exists "$image"; then
  echo "no image $image: run scripts/setup-test-hosts.sh" >&2
  exit 1
fi
ca="${PIP_CERT:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}"
pip_env=()
if [[ -f "$ca" ]]; then
  pip_env+=(--volume "$(realpath "$ca"):/etc/gp-host-ca.pem:ro" --env PIP_CERT=/etc/gp-host-ca.pem)
fi
[[ -z "${PIP_INDEX_URL:-}" ]] || pip_env+=(--env "PIP_INDEX_URL=$PIP_INDEX_URL")
# A container left by an interrupted run of this checkout (same name) goes first.
podman rm -f --ignore "$name" >/dev/null

gp_log "app tests on $release ($image)"
# The script runs in the container; "$@" are pytest's extra arguments.
podman run --rm --interactive --name "$name" \
  --network host \
  --volume "$GP_ROOT:/src:ro" \
  --volume "$cache:/root/.cache/pip" \
  --volume "$results:/results" \
  --env "JUNIT=/results/app-tests-$release.xml" \
  "${pip_env[@]}" \
  "$image" /bin/bash -s -- "$@" <<'EOF'
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do
  apt-get update -qq && apt-get install -y -qq --no-install-recommends \
    python3-venv redis-server openssl >/dev/null && break
  sleep 5
done
command -v redis-server >/dev/null
python3 --version
redis-server --version
# The app and what its tests read beside it (docs/, monitoring/), not the checkout's
# venvs, podman storage or git objects.
mkdir -p /tmp/repo
tar -C /src --exclude='*.egg-info' --exclude=build --exclude=dist --exclude=__pycache__ \
  --exclude='.*_cache' -c app docs monitoring | tar -C /tmp/repo -x
python3 -m venv /opt/venv
pip=(/opt/venv/bin/python -m pip install -q --disable-pip-version-check)
"${pip[@]}" --require-hashes -r /tmp/repo/app/requirements-test.lock
"${pip[@]}" --no-deps -e /tmp/repo/app -e /tmp/repo/app/testing
/opt/venv/bin/python -m pip check
cd /tmp/repo/app
exec /opt/venv/bin/python -m pytest -q -p no:cacheprovider --junitxml="$JUNIT" "${@:-tests}"
EOF

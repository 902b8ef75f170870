#!/usr/bin/env bash
# Run molecule from the repository root with this project's podman settings
# and pinned tools. Example: scripts/molecule.sh test -s default
set -euo pipefail
# shellcheck source=lib/env.sh
. "$(dirname "$0")/lib/env.sh"
# Idempotent and quick when everything is there; installs what is missing.
"$GP_ROOT/scripts/setup-test-hosts.sh" >&2
gp_tools_env
export GP_RESULTS_DIR="${GP_RESULTS_DIR:-$GP_WORK/results}"
mkdir -p "$GP_RESULTS_DIR"
cd "$GP_ROOT"
exec molecule "$@"

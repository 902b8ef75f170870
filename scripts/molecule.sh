#!/usr/bin/env bash
# Run molecule from the repository root with this project's podman settings
# and pinned tools. Example: scripts/molecule.sh test -s default
set -euo pipefail
# shellcheck source=lib/env.sh
. "$(dirname "$0")/lib/env.sh"
gp_tools_env
export GP_RESULTS_DIR="${GP_RESULTS_DIR:-$GP_WORK/results}"
mkdir -p "$GP_RESULTS_DIR"
cd "$GP_ROOT"
exec molecule "$@"
